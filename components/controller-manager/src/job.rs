//! The Job controller: runs a Job's pods until `completions` of them succeeded (at most
//! `parallelism` at a time), replaces failed ones after an exponential back-off, and fails
//! the Job when more than `backoffLimit` pods failed or it ran past
//! `activeDeadlineSeconds` — with Kubernetes' conditions (`SuccessCriteriaMet` then
//! `Complete`, `FailureTarget` then `Failed`), status counters and events.
//!
//! ```text
//!  Job watch ─► store ────────────────────┐
//!  pod watch ─► pods with a Job controller ┤ (owns)
//!                                          ▼
//!  reconcile(job): fresh read ─► sync (job/sync.rs)
//!  Job gone ─► pods of it still holding the tracking finalizer are released
//! ```
//!
//! Every pod carries the `batch.kubernetes.io/job-tracking` finalizer until the Job has
//! counted it, so a finished pod is never lost or counted twice. Only `NonIndexed` Jobs
//! are run; Indexed ones get a warning event and are left alone.

pub mod backoff;
pub mod sync;
pub mod tracking;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::backoff::Failures;
use crate::controllers::JOB;
use crate::error::{Error, Result};
use crate::workload::claim::controller_of;
use crate::workload::events::{Events, Kind};

/// Kubernetes' pod-failure back-off: 10 s, doubling per failure, at most 10 minutes.
pub const DEFAULT_POD_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
pub const DEFAULT_POD_FAILURE_BACKOFF_MAX: Duration = Duration::from_secs(600);
/// Retry delays after failed syncs (Kubernetes' `DefaultJobApiBackOff`, `MaxJobApiBackOff`).
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The Job controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Jobs synced at once (`--concurrent-job-syncs`).
    pub concurrency: u16,
    /// First delay before failed pods are replaced; doubles per failure.
    pub pod_failure_backoff: Duration,
    /// Longest delay before failed pods are replaced.
    pub pod_failure_backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrency: 5,
            pod_failure_backoff: DEFAULT_POD_FAILURE_BACKOFF,
            pod_failure_backoff_max: DEFAULT_POD_FAILURE_BACKOFF_MAX,
        }
    }
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub settings: Config,
    pub events: Events,
    pub backoff: backoff::Store,
    failures: Failures,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = JOB, "starting controller");
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .filter(|r| {
            let keep = match r {
                Ok(p) => controller_of(&p.metadata).is_some_and(|o| o.kind == "Job"),
                Err(_) => true,
            };
            std::future::ready(keep)
        });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        events: Events::start(client.clone(), JOB),
        backoff: backoff::Store::default(),
        failures: Failures::default(),
        settings: config.clone(),
    });
    let gone = ctx.clone();
    Controller::new(Api::<Job>::all(client), watcher::Config::default())
        .owns_stream(pods)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(move |res| {
            let ctx = gone.clone();
            async move {
                match res {
                    Ok((obj, _)) => tracing::trace!(job = %obj, "synced"),
                    Err(controller::Error::ReconcilerFailed(_, _)) => {}
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        let ns = obj.namespace.clone().unwrap_or_default();
                        ctx.backoff.forget(&format!("{ns}/{}", obj.name));
                        if let Err(e) = release_orphans(&ctx, &ns, &obj.name).await {
                            tracing::warn!(namespace = %ns, job = %obj.name, error = %e, "could not release the pods of a deleted job");
                        }
                    }
                    Err(e) => tracing::warn!(controller = JOB, error = %e, "watch trouble, retrying"),
                }
            }
        })
        .await;
    tracing::info!(controller = JOB, "controller stopped");
}

/// Removes the tracking finalizer from pods whose Job (named `job`) is gone or finished
/// (Kubernetes' orphan-pod sync), so that they can be deleted.
pub async fn release_orphans(ctx: &Ctx, namespace: &str, job: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::Workload {
            action: "list pods of deleted job",
            object: format!("{namespace}/{job}"),
            source: Box::new(e),
        })?;
    let current = Api::<Job>::namespaced(ctx.client.clone(), namespace)
        .get_opt(job)
        .await
        .map_err(|e| Error::Workload {
            action: "get job",
            object: format!("{namespace}/{job}"),
            source: Box::new(e),
        })?;
    let held: Vec<Pod> = pods
        .items
        .into_iter()
        .filter(tracking::has_finalizer)
        .filter(|p| {
            controller_of(&p.metadata).is_some_and(|o| {
                o.kind == "Job"
                    && o.name == job
                    && current.as_ref().is_none_or(|j| {
                        j.metadata.uid.as_deref() != Some(o.uid.as_str())
                            || tracking::is_finished(j)
                    })
            })
        })
        .collect();
    if !held.is_empty() {
        tracing::info!(
            namespace,
            job,
            pods = held.len(),
            "releasing pods of a deleted job"
        );
    }
    sync::release_all(ctx, &held).await
}

/// Syncs one Job from a fresh read.
pub async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action> {
    let k = sync::key(&job);
    let api = Api::<Job>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let fresh = api
        .get_opt(&job.name_any())
        .await
        .map_err(|e| Error::Workload {
            action: "get job",
            object: k.clone(),
            source: Box::new(e),
        })?;
    let Some(fresh) = fresh.filter(|f| f.metadata.uid == job.metadata.uid) else {
        return Ok(Action::await_change());
    };
    let spec = fresh.spec.clone().unwrap_or_default();
    if spec
        .managed_by
        .as_deref()
        .is_some_and(|m| m != sync::MANAGED_BY)
    {
        return Ok(Action::await_change());
    }
    if spec.completion_mode.as_deref() == Some("Indexed") && !tracking::is_finished(&fresh) {
        ctx.events.record(
            fresh.object_ref(&()),
            Kind::Warning,
            "UnsupportedCompletionMode",
            "Sync",
            "Skipped Job sync because kadm does not run Indexed Jobs yet".into(),
        );
        return Ok(Action::await_change());
    }
    let action = sync::sync(&ctx, fresh).await?;
    ctx.failures.forget(&k);
    Ok(action)
}

/// Requeues a failed Job with exponential back-off.
pub fn error_policy(job: Arc<Job>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let k = sync::key(&job);
    let delay = crate::backoff::exponential(ctx.failures.record(&k), BACKOFF_BASE, BACKOFF_MAX);
    tracing::warn!(job = %k, error = %err, retry_in_ms = delay.as_millis() as u64, "job sync failed");
    Action::requeue(delay)
}
