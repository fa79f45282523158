//! Errors of the apiserver process itself (start-up, TLS, storage plumbing).
//! Errors answered to clients are `kadm_apimachinery::ApiError`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot reach etcd at {endpoints}: {source}; check that etcd runs and the --etcd-* flags point at it"
    )]
    Etcd {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "stored object at {key} is not valid json ({reason}); restore it from a backup or delete the key"
    )]
    Corrupt { key: String, reason: String },
    #[error("tls: {0}")]
    Tls(String),
    #[error("bind {addr}: {source}; is another apiserver already listening there?")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("invalid flag: {0}")]
    Config(String),
    /// `--encryption-provider-config` cannot be used, or a stored value cannot be decrypted.
    #[error(transparent)]
    Encryption(#[from] crate::encryption::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
