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
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::controllers::JOB;
use crate::error::{Error, Result};
use crate::workload::claim::controller_of;
use crate::workload::events::{Events, Kind};
use crate::workload::runner::{Retry, Runner};

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
        settings: config.clone(),
    });
    let controller =
        Controller::new(Api::<Job>::all(client), watcher::Config::default()).owns_stream(pods);
    let gone = |ctx: Arc<Ctx>, job: ObjectRef<DynamicObject>| async move {
        let ns = job.namespace.clone().unwrap_or_default();
        ctx.backoff.forget(&format!("{ns}/{}", job.name));
        if let Err(e) = release_orphans(&ctx, &ns, &job.name).await {
            tracing::warn!(namespace = %ns, job = %job.name, error = %e, "could not release the pods of a deleted job");
        }
    };
    Runner::new(
        JOB,
        config.concurrency,
        Retry::new(BACKOFF_BASE, BACKOFF_MAX),
    )
    .on_gone(gone)
    .run(controller, reconcile, ctx, shutdown)
    .await;
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
    Ok(action)
}
