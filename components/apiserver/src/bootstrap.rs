//! State the apiserver guarantees at start: the system namespaces exist.
//! Idempotent, so every apiserver start (and every replica) runs it safely.

use kadm_apimachinery::{meta, registry};
use serde_json::json;

use crate::error::{Error, Result};
use crate::storage::{Store, StoreError, WriteOutcome};
use crate::strategy;

/// Namespaces Kubernetes creates at start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

pub async fn ensure_system_namespaces(store: &Store) -> Result<()> {
    let ns = registry::lookup("", "v1", "namespaces")
        .ok_or_else(|| Error::Config("namespaces not registered".into()))?;
    for name in SYSTEM_NAMESPACES {
        let key = ns.etcd_key("", name);
        let existing = store.get(&key).await.map_err(store_err)?;
        if existing.is_some() {
            continue;
        }
        let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}});
        strategy::prepare_create(ns, &mut obj);
        match store.create(&key, &obj).await.map_err(store_err)? {
            WriteOutcome::Written(rev) => tracing::info!(
                namespace = name,
                revision = rev,
                uid = meta::uid(&obj),
                "created system namespace"
            ),
            WriteOutcome::Conflict => {}
        }
    }
    Ok(())
}

fn store_err(e: StoreError) -> Error {
    match e {
        StoreError::Etcd(source) => Error::Etcd {
            endpoints: "etcd".into(),
            source,
        },
        StoreError::Other(e) => e,
    }
}
