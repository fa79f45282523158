//! Errors of the kubelet: the CRI runtime, the apiserver, the host.

use std::path::PathBuf;

/// What can go wrong in kadm-kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag value that cannot work.
    #[error("invalid flag {flag}: {reason}")]
    InvalidFlag { flag: &'static str, reason: String },

    /// The CRI endpoint is not a unix socket address kadm can dial.
    #[error("container runtime endpoint {0:?} is not a unix socket (give unix:///path/to/socket)")]
    Endpoint(String),

    /// A CRI call failed at the runtime (or did not reach it).
    #[error("cri {op}: {}", .status.message())]
    Cri {
        op: &'static str,
        #[source]
        status: Box<tonic::Status>,
    },

    /// A CRI call did not answer within its deadline.
    #[error("cri {op}: no answer within {seconds} s (is containerd running?)")]
    CriTimeout { op: &'static str, seconds: u64 },

    /// The kubeconfig, signals, or another shared part of the process shell (kadm-base).
    #[error(transparent)]
    Base(#[from] kadm_base::Error),

    /// An apiserver call failed.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// Reading or writing a host file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A host fact the node status needs could not be determined.
    #[error("host facts: {0}")]
    Host(String),

    /// An object could not be encoded or decoded.
    #[error("encode {what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// A CRI error from a gRPC status.
    pub fn cri(op: &'static str, status: tonic::Status) -> Self {
        Error::Cri {
            op,
            status: Box::new(status),
        }
    }

    /// An apiserver error with what was being done to which object.
    pub fn api(action: &'static str, object: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            action,
            object: object.into(),
            source: Box::new(source),
        }
    }

    /// Whether the runtime said the sandbox, container or image does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Cri { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
