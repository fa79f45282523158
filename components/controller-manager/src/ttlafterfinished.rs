//! The TTL-after-finished controller: deletes a finished Job (`Complete` or `Failed`)
//! `spec.ttlSecondsAfterFinished` seconds after it finished, with its pods (foreground
//! propagation), as Kubernetes' `ttl-after-finished-controller`.
//!
//! The finish time is the transition time of the finishing condition. Before deleting, the
//! Job is read again and the deletion is made conditional on that read's resourceVersion,
//! so a Job whose TTL was changed (or that was restarted) meanwhile is not deleted.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::controllers::TTL_AFTER_FINISHED;
use crate::error::{Error, Result, api_code};
use crate::job::tracking;
use crate::workload::runner::{Retry, Runner, key};

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Jobs looked at in parallel (`--concurrent-ttl-after-finished-syncs`).
    pub concurrency: u16,
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = TTL_AFTER_FINISHED, "starting controller");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    let controller = Controller::new(Api::<Job>::all(client), watcher::Config::default());
    Runner::new(
        TTL_AFTER_FINISHED,
        config.concurrency,
        Retry::default_rate_limiter(),
    )
    .run(controller, reconcile, ctx, shutdown)
    .await;
}

/// When a Job with a TTL expires: `None` for Jobs without one, unfinished or being deleted.
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    if !tracking::is_finished(job) {
        return None;
    }
    let finished = tracking::finished_time(job)?;
    finished
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .ok()
}

fn left(at: Timestamp, now: Timestamp) -> Option<Duration> {
    let d = at.duration_since(now);
    (d > SignedDuration::ZERO).then(|| Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// Deletes the Job if its TTL has run out, else looks again when it will have.
pub async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(at) = expires_at(&job) else {
        return Ok(Action::await_change());
    };
    if let Some(wait) = left(at, Timestamp::now()) {
        return Ok(Action::requeue(wait));
    }
    let k = key(&*job);
    let api = Api::<Job>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    let api_err = |action| {
        let object = k.clone();
        move |e| Error::Workload {
            action,
            object,
            source: Box::new(e),
        }
    };
    // The cache may be stale: decide on the Job as it is now.
    let Some(fresh) = api
        .get_opt(&job.name_any())
        .await
        .map_err(api_err("get job"))?
    else {
        return Ok(Action::await_change());
    };
    let Some(at) = expires_at(&fresh) else {
        return Ok(Action::await_change());
    };
    if let Some(wait) = left(at, Timestamp::now()) {
        return Ok(Action::requeue(wait));
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&fresh.name_any(), &dp).await {
        Ok(_) => tracing::info!(job = %k, "deleted finished job after its ttlSecondsAfterFinished"),
        Err(e) if api_code(&e) == Some(404) => {}
        Err(e) => return Err(api_err("delete expired job")(e)),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_finished_jobs_with_a_ttl_expire() {
        let job = |v| serde_json::from_value::<Job>(v).expect("job");
        let done = json!({"type": "Complete", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"});
        let with = job(
            json!({"spec": {"template": {}, "ttlSecondsAfterFinished": 30},
            "status": {"conditions": [done.clone()]}}),
        );
        assert_eq!(
            expires_at(&with).map(|t| t.to_string()).as_deref(),
            Some("2024-01-01T00:00:30Z")
        );
        let without =
            job(json!({"spec": {"template": {}}, "status": {"conditions": [done.clone()]}}));
        assert_eq!(expires_at(&without), None);
        let running = job(json!({"spec": {"template": {}, "ttlSecondsAfterFinished": 0}}));
        assert_eq!(expires_at(&running), None);
        let failed = job(
            json!({"spec": {"template": {}, "ttlSecondsAfterFinished": 0},
            "status": {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}),
        );
        assert!(expires_at(&failed).is_some());
        let now: Timestamp = "2024-01-01T00:00:10Z".parse().expect("t");
        assert_eq!(
            left(expires_at(&with).expect("at"), now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(left(expires_at(&failed).expect("at"), now), None);
    }
}
