//! How admission plugins read other objects (service accounts, limit ranges, priority
//! classes, quotas): from the watch cache, as Kubernetes' plugins read their informers,
//! and from etcd while the cache is not loaded or does not hold the object yet.

use kadm_apimachinery::{ApiError, ResourceInfo, registry};
use serde_json::Value;

use crate::server::State;

/// The served resource `group/v1/plural` (every resource admission reads is registered).
pub fn resource(group: &str, plural: &str) -> Result<&'static ResourceInfo, ApiError> {
    registry::all()
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} is not registered")))
}

/// One object, from the cache when it holds it, else from etcd.
pub async fn get(
    state: &State,
    res: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let key = res.etcd_key(namespace, name);
    let cache = &state.cache;
    if let Some(entry) = cache
        .cacher(res)
        .filter(|_| cache.is_ready())
        .and_then(|c| c.get(&key))
    {
        return Ok(Some(entry.value()));
    }
    get_live(state, res, namespace, name).await
}

/// One object from etcd only (one the cache may not have caught up with).
pub async fn get_live(
    state: &State,
    res: &ResourceInfo,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    Ok(state
        .store
        .get(&res.etcd_key(namespace, name))
        .await?
        .map(|s| s.object))
}

/// Every object of `res` in `namespace` (all of them for a cluster-scoped resource), from
/// the cache once it is loaded, else from etcd.
pub async fn list(
    state: &State,
    res: &ResourceInfo,
    namespace: &str,
) -> Result<Vec<Value>, ApiError> {
    let cache = &state.cache;
    if let Some(cacher) = cache.cacher(res).filter(|_| cache.is_ready()) {
        return Ok(cacher
            .list(&res.etcd_key(namespace, ""), 0, |_| true)
            .items
            .iter()
            .map(|e| e.value())
            .collect());
    }
    list_live(state, res, namespace).await
}

/// Every object of `res` in `namespace`, from etcd.
pub async fn list_live(
    state: &State,
    res: &ResourceInfo,
    namespace: &str,
) -> Result<Vec<Value>, ApiError> {
    Ok(state
        .store
        .list(&res.etcd_key(namespace, ""), None, 0, 0)
        .await?
        .items
        .into_iter()
        .map(|s| s.object)
        .collect())
}
