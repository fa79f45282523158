//! The namespace controller: finishes what `kubectl delete namespace` starts.
//!
//! Deleting a namespace only marks it: the apiserver sets `deletionTimestamp` and
//! `status.phase=Terminating`, and `spec.finalizers: ["kubernetes"]` keeps the object. This
//! controller then, for every terminating namespace:
//!
//! ```text
//!  terminating ──► discover namespaced resources ──► delete each kind in the namespace
//!       ▲                                                     │
//!       │ requeue (estimate/2 + 1 s, or back-off on errors)   ▼
//!       └──── something left (finalizers, grace periods) ◄── list what is left, write
//!                                                            the status conditions
//!                     nothing left ──► PUT …/finalize without "kubernetes"
//!                                  ──► DELETE again if no finalizers remain → gone
//! ```
//!
//! Objects with finalizers of their own stay until their owners remove them; the namespace
//! says so in its `NamespaceFinalizersRemaining` condition meanwhile.

pub mod conditions;
pub mod content;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Failures;
use crate::error::{Error, Result, api_code};

/// The finalizer through which the namespace controller holds a namespace.
pub const FINALIZER: &str = "kubernetes";
/// `status.phase` of a namespace being deleted.
pub const TERMINATING: &str = "Terminating";
/// First retry delay after a failed sync; it doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest retry delay after failed syncs.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Conflicts tolerated in one finalize before the sync is retried as a whole.
const FINALIZE_ATTEMPTS: usize = 5;

/// The namespace controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often every namespace is reconciled even without changes (`--namespace-sync-period`).
    pub sync_period: Duration,
    /// Namespaces processed at once (`--concurrent-namespace-syncs`).
    pub concurrency: u16,
}

/// What every reconcile shares.
pub struct Ctx {
    pub client: Client,
    pub sync_period: Duration,
    /// Consecutive failures per namespace, for the back-off.
    failures: Failures,
}

impl Ctx {
    pub fn new(client: Client, sync_period: Duration) -> Self {
        Self {
            client,
            sync_period,
            failures: Failures::default(),
        }
    }
}

/// The retry delay after `failures` consecutive failed syncs of one namespace.
pub fn backoff(failures: u32) -> Duration {
    crate::backoff::exponential(failures, BACKOFF_BASE, BACKOFF_MAX)
}

/// How long to wait before looking again when `estimate_secs` of work is expected to remain
/// (Kubernetes waits half the estimate, plus one second).
pub fn remaining_requeue(estimate_secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(estimate_secs / 2 + 1).unwrap_or(1))
}

/// `spec.finalizers` without `token`, sorted and without duplicates (what `/finalize` gets).
pub fn finalizers_without(finalizers: &[String], token: &str) -> Vec<String> {
    let mut out: Vec<String> = finalizers.iter().filter(|f| *f != token).cloned().collect();
    out.sort();
    out.dedup();
    out
}

fn spec_finalizers(ns: &Namespace) -> &[String] {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or(&[])
}

fn ns_error(action: &'static str, name: &str) -> impl FnOnce(kube::Error) -> Error {
    let name = name.to_string();
    move |source| Error::Namespace {
        action,
        name,
        source: Box::new(source),
    }
}

/// Runs the controller until `shutdown` resolves (then waits for running syncs to finish).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api = Api::<Namespace>::all(client.clone());
    let ctx = Arc::new(Ctx::new(client, config.sync_period));
    tracing::info!(
        controller = crate::controllers::NAMESPACE,
        "starting controller"
    );
    Controller::new(api, watcher::Config::default())
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::trace!(namespace = %obj.name, "synced"),
                // Failed syncs were logged by the error policy.
                Err(controller::Error::ReconcilerFailed(_, _)) => {}
                // A requeued namespace that is gone meanwhile: the usual end of a deletion.
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(namespace = %obj.name, "namespace gone before its requeue");
                }
                Err(e) => tracing::warn!(error = %e, "namespace watch trouble, retrying"),
            }
        })
        .await;
    tracing::info!(
        controller = crate::controllers::NAMESPACE,
        "controller stopped"
    );
}

/// Reconciles one namespace: nothing to do unless it is being deleted.
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = ns.name_any();
    let action = if ns.metadata.deletion_timestamp.is_none() {
        Action::requeue(ctx.sync_period)
    } else {
        sync_terminating(&name, &ctx).await?
    };
    ctx.failures.forget(&name);
    Ok(action)
}

/// Requeues a failed namespace with exponential back-off.
pub fn error_policy(ns: Arc<Namespace>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let name = ns.name_any();
    let delay = backoff(ctx.failures.record(&name));
    tracing::warn!(namespace = %name, error = %err, retry_in_ms = delay.as_millis() as u64, "namespace sync failed");
    Action::requeue(delay)
}

async fn sync_terminating(name: &str, ctx: &Ctx) -> Result<Action> {
    let api = Api::<Namespace>::all(ctx.client.clone());
    // Act on the newest state: other finalizers or an earlier pass may have moved on.
    let Some(ns) = api.get_opt(name).await.map_err(ns_error("get", name))? else {
        return Ok(Action::await_change());
    };
    let Some(deleted_at) = ns.metadata.deletion_timestamp.clone() else {
        return Ok(Action::requeue(ctx.sync_period));
    };
    if !spec_finalizers(&ns).iter().any(|f| f == FINALIZER) {
        // Our part is done; the namespace goes once every other finalizer is done too.
        if spec_finalizers(&ns).is_empty() {
            delete_namespace(&api, &ns).await?;
        }
        return Ok(Action::await_change());
    }
    tracing::debug!(namespace = name, "deleting namespace content");
    let report = content::delete_all(&ctx.client, name, deleted_at.0).await;
    let ns = update_status(&api, ns, &report).await;
    if report.discovery_error.is_some() || !report.content_errors.is_empty() {
        let mut errors: Vec<String> = report.discovery_error.iter().cloned().collect();
        errors.extend(report.content_errors.iter().cloned());
        return Err(Error::Content {
            namespace: name.to_string(),
            errors,
        });
    }
    if !report.done() {
        let wait = remaining_requeue(report.estimate_secs);
        tracing::info!(namespace = name, remaining = ?report.remaining, finalizers = ?report.finalizers, wait_s = wait.as_secs(), "content remaining in namespace, waiting");
        return Ok(Action::requeue(wait));
    }
    let Some(finalized) = finalize(&api, ns).await? else {
        return Ok(Action::await_change());
    };
    tracing::info!(namespace = name, "namespace content deleted and finalized");
    if spec_finalizers(&finalized).is_empty() {
        delete_namespace(&api, &finalized).await?;
    }
    Ok(Action::await_change())
}

/// Writes `status.phase=Terminating` and the owned conditions when they changed. Like
/// Kubernetes, a failed write is only logged: the next pass writes them again. Returns the
/// newest namespace known.
async fn update_status(
    api: &Api<Namespace>,
    mut ns: Namespace,
    report: &content::Report,
) -> Namespace {
    let name = ns.name_any();
    let status = ns.status.get_or_insert_with(Default::default);
    let mut changed = status.phase.as_deref() != Some(TERMINATING);
    status.phase = Some(TERMINATING.to_string());
    let now = Time(Timestamp::now());
    changed |= conditions::apply(
        status.conditions.get_or_insert_with(Vec::new),
        &conditions::wanted(report),
        &now,
    );
    if !changed {
        return ns;
    }
    match api.replace_status(&name, &PostParams::default(), &ns).await {
        Ok(updated) => updated,
        Err(e) => {
            tracing::warn!(namespace = %name, error = %e, "couldn't update the namespace's status conditions");
            ns
        }
    }
}

/// Removes [`FINALIZER`] from `spec.finalizers` through the `finalize` subresource, retrying
/// on conflicts with the newest namespace. `None` when the namespace is gone.
async fn finalize(api: &Api<Namespace>, mut ns: Namespace) -> Result<Option<Namespace>> {
    let name = ns.name_any();
    let uid = ns.metadata.uid.clone().unwrap_or_default();
    for _ in 0..FINALIZE_ATTEMPTS {
        let remaining = finalizers_without(spec_finalizers(&ns), FINALIZER);
        ns.spec.get_or_insert_with(Default::default).finalizers = Some(remaining);
        match api
            .replace_subresource("finalize", &name, &PostParams::default(), &ns)
            .await
        {
            Ok(done) => return Ok(Some(done)),
            Err(e) if api_code(&e) == Some(404) => return Ok(None),
            Err(e) if api_code(&e) == Some(409) => {
                let Some(newer) = api.get_opt(&name).await.map_err(ns_error("get", &name))? else {
                    return Ok(None);
                };
                let found = newer.metadata.uid.clone().unwrap_or_default();
                if found != uid {
                    return Err(Error::UidChanged {
                        name,
                        expected: uid,
                        found,
                    });
                }
                ns = newer;
            }
            Err(e) => return Err(ns_error("finalize", &name)(e)),
        }
    }
    Err(Error::FinalizeConflicts {
        name,
        attempts: FINALIZE_ATTEMPTS,
    })
}

/// Deletes a finalized namespace, guarded by its uid so a new namespace of the same name is
/// never hit. Already gone is fine.
async fn delete_namespace(api: &Api<Namespace>, ns: &Namespace) -> Result<()> {
    let name = ns.name_any();
    let dp = DeleteParams::default().preconditions(Preconditions {
        uid: ns.metadata.uid.clone(),
        resource_version: None,
    });
    match api.delete(&name, &dp).await {
        Ok(_) => {
            tracing::info!(namespace = %name, "namespace deleted");
            Ok(())
        }
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(ns_error("delete", &name)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalize_drops_only_our_token() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(finalizers_without(&f(&["kubernetes"]), FINALIZER).is_empty());
        assert_eq!(
            finalizers_without(&f(&["z.io/x", "kubernetes", "a.io/y", "z.io/x"]), FINALIZER),
            f(&["a.io/y", "z.io/x"])
        );
    }

    #[test]
    fn requeue_follows_kubernetes_estimate_rule() {
        assert_eq!(remaining_requeue(0), Duration::from_secs(1));
        assert_eq!(remaining_requeue(15), Duration::from_secs(8));
        assert_eq!(remaining_requeue(30), Duration::from_secs(16));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(30), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
