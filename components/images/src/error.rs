//! The error of everything in `kadm-images`.

use std::path::PathBuf;

/// What can go wrong while building or inspecting an image archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host file could not be read or an output file written; the path says which.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Writing the in-memory tar or gzip stream failed (only a bug or exhausted memory).
    #[error("encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The image definition itself is unusable (empty name, a relative image path, …).
    #[error("invalid image {name:?}: {reason}")]
    InvalidImage { name: String, reason: String },

    /// An archive handed to kadm is not an image archive it can import.
    #[error("{path}: {reason}")]
    InvalidArchive { path: PathBuf, reason: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
