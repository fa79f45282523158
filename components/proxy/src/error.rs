//! Errors of kadm-proxy.

use std::time::Duration;

/// What can go wrong in kadm-proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host command could not be started at all (missing binary, no permission).
    #[error(
        "run {command}: {source}; install it (Debian packages nftables, conntrack, iproute2) and run as root"
    )]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// A host command ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    /// A host command did not finish in time and was killed.
    #[error("{command} did not finish within {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },

    /// A flag value that cannot be used.
    #[error("invalid {flag} {value:?}: {reason}")]
    InvalidFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },

    /// The shared process helpers (kubeconfig, signals, health server) failed.
    #[error(transparent)]
    Base(#[from] kadm_base::Error),

    /// A watch cache could not be filled.
    #[error("wait for the {what} cache: {reason}")]
    Cache { what: &'static str, reason: String },

    /// A blocking sync task panicked or was cancelled.
    #[error("the sync task stopped unexpectedly: {0}")]
    SyncTask(String),
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
