//! NamespaceLifecycle: nothing is created in a namespace that does not exist (404
//! `namespaces "x" not found`) or is being deleted (403 with the `NamespaceTerminating`
//! cause), so the namespace controller can empty a namespace without new objects
//! appearing behind it. Deleting the system namespaces is refused by the delete handler.

use kadm_apimachinery::{ApiError, meta};
use serde_json::json;

use super::{Operation, Request, lookup};
use crate::server::State;

/// Checks a create of a namespaced object (namespaces themselves and cluster-scoped
/// objects pass).
pub async fn admit(state: &State, req: &Request<'_>) -> Result<(), ApiError> {
    if req.operation != Operation::Create || !req.res.namespaced() || req.namespace.is_empty() {
        return Ok(());
    }
    let namespaces = lookup::resource("", "namespaces")?;
    // Read from the watch cache, as Kubernetes reads its informer; one the cache does not
    // hold (yet) is read from etcd.
    let ns = lookup::get(state, namespaces, "", req.namespace)
        .await?
        .ok_or_else(|| ApiError::not_found("", "namespaces", req.namespace))?;
    if meta::deletion_timestamp(&ns).is_some()
        || ns.pointer("/status/phase") == Some(&json!("Terminating"))
    {
        return Err(ApiError::namespace_terminating(
            req.res.group,
            req.res.plural,
            req.name,
            req.namespace,
        ));
    }
    Ok(())
}
