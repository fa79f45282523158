//! State the apiserver guarantees at start: the system namespaces and the system
//! priority classes exist.
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

/// The built-in PriorityClasses (`system-node-critical`, `system-cluster-critical`), made
/// when missing and never changed afterwards, as Kubernetes' scheduling post-start hook.
pub async fn ensure_system_priority_classes(store: &Store) -> Result<()> {
    let pcs = registry::lookup("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| Error::Config("priorityclasses not registered".into()))?;
    for (name, value, description) in crate::admission::priority::SYSTEM_PRIORITY_CLASSES {
        let key = pcs.etcd_key("", name);
        if store.get(&key).await.map_err(store_err)?.is_some() {
            continue;
        }
        let mut obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": false,
            "description": description});
        strategy::prepare_create(pcs, &mut obj);
        if let WriteOutcome::Written(rev) = store.create(&key, &obj).await.map_err(store_err)? {
            tracing::info!(
                priorityclass = name,
                value,
                revision = rev,
                "created system priority class"
            );
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
