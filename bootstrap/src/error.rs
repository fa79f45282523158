//! The error of everything in `kadm-bootstrap`.
//!
//! One ordinary enum for the whole crate so callers (the CLI, the playbook runner) match on
//! one type and wrap it once; modules add variants here rather than growing their own error
//! types. Messages are lowercase, carry no trailing period, and end with what the operator can
//! do about it when there is something to do.

use std::path::{Path, PathBuf};

/// What can go wrong while bootstrapping a host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem call failed. The action and path are kept because a bare `io::Error`
    /// ("permission denied") does not tell the operator which file to look at.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// rcgen refused to generate a key or to build and sign a certificate.
    #[error("generate {what}: {source}")]
    Cert {
        what: String,
        #[source]
        source: rcgen::Error,
    },

    /// Some input (a PEM file, a certificate, a kubeconfig field) could not be understood.
    #[error("parse {what}: {reason}")]
    Parse { what: String, reason: String },

    /// A certificate was requested with parameters we cannot honour (e.g. a validity that
    /// overflows the calendar); caught before anything is signed.
    #[error("invalid {what}: {reason}")]
    InvalidCert { what: String, reason: String },

    /// The service CIDR from the cluster configuration is not a usable network.
    #[error("invalid service cidr {cidr:?}: {reason}; use a network such as 10.96.0.0/12")]
    InvalidCidr { cidr: String, reason: String },

    /// An extra subject alternative name is neither an IP address nor a DNS name.
    #[error("invalid subject alternative name {san:?}: {reason}; use an ip address or a dns name")]
    InvalidSan { san: String, reason: String },

    /// A file that bootstrap would create already exists but cannot be kept as it is (wrong
    /// CA, missing SAN, expired, key mismatch). Bootstrap never overwrites such files on its own:
    /// replacing a CA or a serving certificate under a running cluster breaks every client, so
    /// the operator decides.
    #[error("{path} {problem}; {remedy}")]
    Existing {
        path: PathBuf,
        problem: String,
        remedy: String,
    },

    /// Preflight found problems; nothing was changed.
    #[error("preflight failed, nothing was changed:\n  {}", .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n  "))]
    Preflight(Vec<crate::preflight::Failure>),

    /// A component did not become ready in time.
    #[error("{what} did not become ready within {}s; look at the logs in {} and re-run the command once fixed (finished steps are kept)", .after.as_secs(), .logs.display())]
    NotReady {
        what: String,
        after: std::time::Duration,
        logs: PathBuf,
    },

    /// A call to the cluster's API failed.
    #[error("{action}: {reason}")]
    Api { action: String, reason: String },

    /// An external command (systemctl, …) failed.
    #[error("running `{command}` failed: {detail}")]
    Command { command: String, detail: String },

    /// A command was asked to act on another node, which this host cannot reach yet.
    #[error(
        "node {node:?} is not this host ({this}); acting on other nodes arrives with `kadm join` \
         (issue 7): copy the archive to {node} and run the command there"
    )]
    RemoteNode { node: String, this: String },

    /// An image could not be built, or an image archive is not importable.
    #[error(transparent)]
    Image(Box<kadm_images::Error>),

    /// The host supervisor failed.
    #[error("supervisor: {0}")]
    Supervisor(#[source] Box<crate::supervisor::Error>),

    /// A kubeconfig could not be encoded or decoded as YAML.
    #[error("{action}: {source}")]
    Yaml {
        action: &'static str,
        #[source]
        source: serde_yaml::Error,
    },
}

impl From<kadm_images::Error> for Error {
    fn from(e: kadm_images::Error) -> Self {
        Error::Image(Box::new(e))
    }
}

impl From<crate::supervisor::Error> for Error {
    fn from(e: crate::supervisor::Error) -> Self {
        Error::Supervisor(Box::new(e))
    }
}

/// Result with the bootstrap error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds the `map_err` closure for an I/O call so each call site names its action and path
    /// in one short expression.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    /// Shorthand for [`Error::Parse`], whose fields are always built from displayable values.
    pub(crate) fn parse(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Parse {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Cert`].
    pub(crate) fn cert(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
        let what = what.into();
        move |source| Error::Cert { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_action_and_path() {
        let err = Error::io("read", Path::new("/etc/kadm/pki/ca.crt"))(std::io::Error::from(
            std::io::ErrorKind::NotFound,
        ));
        assert_eq!(
            err.to_string(),
            "read /etc/kadm/pki/ca.crt: entity not found"
        );
    }
}
