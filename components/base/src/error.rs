//! Errors of the shared helpers (leader election, the health endpoint, the process shell).

use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong in kadm-base.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Leader-election timings or names that cannot work together.
    #[error("invalid leader election config: {0}")]
    InvalidConfig(String),

    /// A read or write of the lease failed at the apiserver.
    #[error("{action} lease {lease}: {source}")]
    Lease {
        action: &'static str,
        lease: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// An apiserver call on the lease did not answer in time.
    #[error("{action} lease {lease}: no answer within {timeout:?}")]
    LeaseTimeout {
        action: &'static str,
        lease: String,
        timeout: Duration,
    },

    /// This process held the lease and does not any more; it must stop leading.
    #[error("leadership of lease {lease} lost: {reason}")]
    LeadershipLost { lease: String, reason: String },

    /// The health endpoint could not listen on its address.
    #[error("bind the health server on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error("build an apiserver client from {path}: {source}")]
    Client {
        path: PathBuf,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("install the signal handler: {0}")]
    Signal(#[source] std::io::Error),

    #[error("the lease renewal task stopped unexpectedly: {0}")]
    RenewTask(String),

    /// The host name for the default identity could not be read.
    #[error("read the host name from {path}: {source}")]
    Hostname {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the apiserver refused a lease write because someone else wrote first
    /// (409: a stale resourceVersion, or a create racing another create).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Lease { source, .. } if matches!(source.as_ref(), kube::Error::Api(s) if s.code == 409))
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
