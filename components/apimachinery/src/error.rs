//! Errors of the machinery itself (not API errors returned to clients: those are
//! [`crate::status::ApiError`]).

/// What can go wrong inside the machinery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid yaml: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("invalid patch: {0}")]
    Patch(String),
}

/// Result with the machinery's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
