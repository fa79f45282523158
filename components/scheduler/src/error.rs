//! Errors of the scheduler process and its apiserver calls.

/// What can go wrong in kadm-scheduler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig, signals, leader election or the health endpoint (kadm-base).
    #[error(transparent)]
    Base(#[from] kadm_base::Error),

    #[error("start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("build the filter thread pool: {0}")]
    ThreadPool(String),

    #[error("invalid flag {flag}: {reason}")]
    InvalidFlag { flag: &'static str, reason: String },

    /// An apiserver call about one object failed.
    #[error("{action} {object}: {source}")]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// The error of an apiserver call `action` on `object`.
    pub fn api(action: &'static str, object: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            action,
            object: object.into(),
            source: Box::new(source),
        }
    }

    /// The HTTP code the apiserver answered, if the error is an apiserver answer.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message an apiserver gave for a failed call (as Go clients print a `StatusError`), or
/// the client error itself.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}
