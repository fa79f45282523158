//! Errors of the controller manager and its controllers.

use std::net::SocketAddr;

/// What can go wrong in kadm-controller-manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not in the list of known controllers (known: {known})", known = crate::controllers::known_names().join(", "))]
    UnknownController(String),

    #[error("bind the health server on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The kubeconfig, signals, leader election or the health endpoint (kadm-base).
    #[error(transparent)]
    Leader(#[from] kadm_base::Error),

    /// An apiserver call about one namespace failed.
    #[error("{action} namespace {name}: {source}")]
    Namespace {
        action: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// Deleting a namespace's content left errors behind (discovery or deletion);
    /// the namespace is retried with back-off.
    #[error("delete the content of namespace {namespace}: {}", .errors.join("; "))]
    Content {
        namespace: String,
        errors: Vec<String>,
    },

    #[error("finalize namespace {name}: it changed during each of {attempts} attempts")]
    FinalizeConflicts { name: String, attempts: usize },

    #[error(
        "namespace {name} was replaced by a new one (uid {found}, expected {expected}) while it was being finalized"
    )]
    UidChanged {
        name: String,
        expected: String,
        found: String,
    },

    /// An apiserver call of the garbage collector failed.
    #[error("{action} {object}: {source}")]
    GarbageCollector {
        action: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("{action} {object}: it changed during each of {attempts} attempts")]
    GarbageCollectorConflicts {
        action: &'static str,
        object: String,
        attempts: usize,
    },

    /// An owner reference names a kind discovery does not serve (yet): the object is not
    /// collected, and is looked at again with back-off.
    #[error(
        "{object} has an owner of a kind the apiserver does not serve: {api_version}, Kind={kind}"
    )]
    UnknownOwnerKind {
        object: String,
        api_version: String,
        kind: String,
    },

    #[error("orphan the dependents of {owner}: {}", .errors.join("; "))]
    Orphan { owner: String, errors: Vec<String> },

    /// An apiserver call of a workload controller (replicaset, deployment, …) failed.
    #[error("{action} {object}: {message}", message = crate::error::api_message(source))]
    Workload {
        action: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },

    /// Several writes of one workload sync failed (as Kubernetes aggregates them).
    #[error("{}", .errors.join("; "))]
    WorkloadErrors { errors: Vec<String> },

    /// A workload cannot adopt objects: it is being deleted or was replaced, as seen by a
    /// fresh read (Kubernetes' `RecheckDeletionTimestamp`).
    #[error("{0}")]
    CannotAdopt(String),

    /// Every name tried for a new ControllerRevision was taken by other data.
    #[error(
        "create a revision of {parent}: {attempts} names in a row were taken by other revisions"
    )]
    RevisionCollisions { parent: String, attempts: i32 },

    /// An apiserver call of a node controller (lifecycle, taint eviction, IPAM) failed.
    #[error("{action} {object}: {message}", message = crate::error::api_message(source))]
    NodeController {
        action: &'static str,
        object: String,
        #[source]
        source: Box<kube::Error>,
    },

    #[error("update {object}: it changed during each of {attempts} attempts")]
    NodeControllerConflicts { object: String, attempts: usize },

    /// Some pods of a not-ready node could not be marked not ready; retried next pass.
    #[error("mark the pods of node {node} not ready: {}", .errors.join("; "))]
    NodeControllerPods { node: String, errors: Vec<String> },

    #[error("--cluster-cidr {value:?}: {reason}")]
    ClusterCidr { value: String, reason: String },

    /// The CA bundle the root CA publisher publishes could not be read.
    #[error("read the root CA from {source_name}: {reason}")]
    RootCa { source_name: String, reason: String },
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message an apiserver gave for a failed call (as Go clients print a `StatusError`),
/// or the client error itself.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// The HTTP code of an apiserver error, if it was one.
pub fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether a controller's error is a 409 Conflict from a write based on a stale object.
pub fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Workload { source, .. } if api_code(source) == Some(409))
}
