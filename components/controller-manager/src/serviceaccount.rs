//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount,
//! created when the namespace appears and again whenever someone deletes it (Kubernetes'
//! `serviceaccount-controller`; the token controller is separate and not part of it).
//!
//! ```text
//!  namespace watch ──────────────┐
//!                                ▼
//!  serviceaccount watch ─► store, and a deleted "default" ─► its namespace
//!                                ▼
//!  reconcile(ns): Active and no "default" in the store ─► create it (exists already: fine)
//! ```

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::backoff::Failures;
use crate::controllers::SERVICE_ACCOUNT;
use crate::error::{Error, Result, api_code};

/// The ServiceAccounts every namespace gets.
pub const MANAGED: &[&str] = &["default"];
/// First retry delay after a failed sync.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay after failed syncs.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub accounts: Store<ServiceAccount>,
    failures: Failures,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(client: Client, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    tracing::info!(controller = SERVICE_ACCOUNT, "starting controller");
    let (store, writer) = reflector::store::<ServiceAccount>();
    // Only deletions matter: a managed account that disappears is made again.
    let deleted = watcher(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .filter_map(|ev| async move {
        match ev {
            Ok(watcher::Event::Delete(sa)) if MANAGED.contains(&sa.name_any().as_str()) => {
                Some(Ok(sa))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        accounts: store,
        failures: Failures::default(),
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .watches_stream(deleted, |sa: ServiceAccount| {
            sa.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::trace!(namespace = %obj.name, "synced"),
                Err(controller::Error::ReconcilerFailed(_, _)) => {}
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(namespace = %obj.name, "namespace gone before its sync");
                }
                Err(e) => {
                    tracing::warn!(controller = SERVICE_ACCOUNT, error = %e, "watch trouble, retrying")
                }
            }
        })
        .await;
    tracing::info!(controller = SERVICE_ACCOUNT, "controller stopped");
}

/// Whether a namespace takes new ServiceAccounts: Kubernetes only fills `Active` ones.
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active")
}

/// Ensures the managed ServiceAccounts of one namespace.
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &name);
    for account in MANAGED {
        if ctx
            .accounts
            .get(&ObjectRef::new(account).within(&name))
            .is_some()
        {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some((*account).to_string()),
                namespace: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {
                tracing::info!(namespace = %name, serviceaccount = account, "created service account")
            }
            // 409: the cache had not seen it yet. 403: the namespace started terminating.
            Err(e) if matches!(api_code(&e), Some(409 | 403)) => {}
            Err(e) => {
                return Err(Error::Workload {
                    action: "create serviceaccount in",
                    object: format!("namespace {name}"),
                    source: Box::new(e),
                });
            }
        }
    }
    ctx.failures.forget(&name);
    Ok(Action::await_change())
}

/// Requeues a failed namespace with exponential back-off.
pub fn error_policy(ns: Arc<Namespace>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let name = ns.name_any();
    let delay = crate::backoff::exponential(ctx.failures.record(&name), BACKOFF_BASE, BACKOFF_MAX);
    tracing::warn!(namespace = %name, error = %err, retry_in_ms = delay.as_millis() as u64, "service account sync failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_active_namespaces_get_accounts() {
        let ns = |v| serde_json::from_value::<Namespace>(v).expect("namespace");
        assert!(is_active(&ns(
            json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}})
        )));
        assert!(!is_active(&ns(
            json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}})
        )));
        assert!(!is_active(&ns(json!({"metadata": {"name": "a",
            "deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Active"}}))));
        assert!(!is_active(&ns(json!({"metadata": {"name": "a"}}))));
    }
}
