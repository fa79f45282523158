//! The CronJob controller (Kubernetes' v2 controller): creates a Job for each scheduled
//! time of `spec.schedule` (in `spec.timeZone`, else the host's zone), honouring
//! `suspend`, `startingDeadlineSeconds` and `concurrencyPolicy`, keeps `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`, and deletes finished Jobs beyond the
//! history limits.
//!
//! ```text
//!  CronJob watch ─► store ────────────────────┐
//!  Job watch ─► store, Jobs with a CronJob owner┤ (owns)
//!                                              ▼
//!  reconcile(cj): fresh read ─► account for its Jobs (finished ones leave `active`,
//!     vanished ones too) ─► suspended / bad schedule or zone? stop ─► most recent due
//!     time (more than 100 missed: TooManyMissedTimes) ─► too late? MissSchedule ─► already
//!     made / Forbid with active? skip ─► Replace: delete active ─► create
//!     `<name>-<minutes since epoch>` ─► status ─► history cleanup ─► requeue at the next time
//! ```
//!
//! Job names are derived from the scheduled minute, so a time is never run twice even if
//! the controller restarts between creating the Job and writing the status.

pub mod schedule;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::controllers::CRONJOB;
use crate::error::{Error, Result, api_code, api_message};
use crate::job::tracking;
use crate::workload::claim::{controller_of, controller_ref};
use crate::workload::events::{Events, Kind};
use crate::workload::runner::{Retry, Runner, key};
use schedule::Schedule;

/// The annotation with a Job's scheduled time (RFC 3339, in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Added to every requeue, so the sync lands just after the scheduled time.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// The CronJob controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// CronJobs synced at once (`--concurrent-cron-job-syncs`).
    pub concurrency: u16,
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub jobs: Store<Job>,
    events: Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = CRONJOB, "starting controller");
    let (job_store, job_writer) = reflector::store::<Job>();
    let jobs = watcher(Api::<Job>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(job_writer)
        .touched_objects()
        .filter(|r| {
            let keep = match r {
                Ok(j) => controller_of(&j.metadata).is_some_and(|o| o.kind == "CronJob"),
                Err(_) => true,
            };
            std::future::ready(keep)
        });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        jobs: job_store,
        events: Events::start(client.clone(), CRONJOB),
    });
    let controller =
        Controller::new(Api::<CronJob>::all(client), watcher::Config::default()).owns_stream(jobs);
    Runner::new(CRONJOB, config.concurrency, Retry::default_rate_limiter())
        .run(controller, reconcile, ctx, shutdown)
        .await;
}

fn api_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| Error::Workload {
        action,
        object,
        source: Box::new(e),
    }
}

/// Syncs one CronJob from a fresh read.
pub async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action> {
    if ctx.jobs.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let k = key(&*cj);
    let api = Api::<CronJob>::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    let fresh = api
        .get_opt(&cj.name_any())
        .await
        .map_err(api_err("get cronjob", k.clone()))?;
    let Some(fresh) = fresh.filter(|f| f.metadata.uid == cj.metadata.uid) else {
        return Ok(Action::await_change());
    };
    let requeue = sync(&ctx, fresh, Timestamp::now()).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// The Job for the run at `scheduled` (Kubernetes' `getJobFromTemplate2`).
pub fn job_for(cj: &CronJob, scheduled: Timestamp, annotation_zone: &TimeZone) -> Job {
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP_ANNOTATION.to_string(),
        rfc3339_in(scheduled, annotation_zone),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), scheduled)),
            namespace: cj.namespace(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cj)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// `<cronjob>-<scheduled time in minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 in a zone: seconds precision, `Z` for a zero offset.
pub fn rfc3339_in(t: Timestamp, zone: &TimeZone) -> String {
    let z = t.to_zoned(zone.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Go's RFC 1123 with a numeric zone, in UTC (the `MissSchedule` message's format).
fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn finished_type(job: &Job) -> Option<&'static str> {
    if tracking::has_true(job, tracking::COMPLETE) {
        Some(tracking::COMPLETE)
    } else if tracking::has_true(job, tracking::FAILED) {
        Some(tracking::FAILED)
    } else {
        None
    }
}

/// The zone the schedule is read in and the zone of the scheduled-time annotation.
/// `Err` carries the event message for an unknown `spec.timeZone`.
fn zones(cj: &CronJob) -> std::result::Result<(TimeZone, TimeZone), String> {
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        Some(name) => match TimeZone::get(name) {
            Ok(z) => Ok((z.clone(), z)),
            Err(e) => Err(format!("invalid timeZone: {name:?}: {e}")),
        },
        None => Ok((TimeZone::system(), TimeZone::UTC)),
    }
}

/// The earliest time runs are looked for after: the last scheduled run, else the creation.
fn earliest(cj: &CronJob) -> Timestamp {
    cj.status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

/// How long until the run after the most recent one (plus a small delta).
fn next_requeue(
    cj: &CronJob,
    sched: &Schedule,
    zone: &TimeZone,
    now: Timestamp,
) -> Option<Duration> {
    let from = match schedule::most_recent(sched, earliest(cj), now, zone) {
        Ok(d) => d.most_recent.unwrap_or_else(|| earliest(cj)),
        Err(_) => now,
    };
    let next = sched.next(from, zone)?;
    let wait = Duration::try_from(next.duration_since(now).max(SignedDuration::ZERO)).ok()?;
    Some(wait + NEXT_SCHEDULE_DELTA)
}

/// One sync of a (fresh) CronJob at `now`; returns when to look again.
pub async fn sync(ctx: &Ctx, mut cj: CronJob, now: Timestamp) -> Result<Option<Duration>> {
    let k = key(&cj);
    let ns = cj.namespace().unwrap_or_default();
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let regarding = cj.object_ref(&());
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let mut status = cj.status.clone().unwrap_or_default();
    let mut update = false;
    let in_active = |status: &CronJobStatus, uid: &Option<String>| {
        status.active.iter().flatten().any(|r| r.uid == *uid)
    };

    for j in &jobs {
        let active = in_active(&status, &j.metadata.uid);
        let finished = finished_type(j);
        if !active && finished.is_none() {
            ctx.events.record(
                regarding.clone(),
                Kind::Warning,
                "UnexpectedJob",
                "Sync",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    j.name_any()
                ),
            );
        } else if active && let Some(f) = finished {
            if let Some(list) = status.active.as_mut() {
                list.retain(|r| r.uid != j.metadata.uid);
            }
            ctx.events.record(
                regarding.clone(),
                Kind::Normal,
                "SawCompletedJob",
                "Sync",
                format!("Saw completed job: {}, status: {f}", j.name_any()),
            );
            update = true;
        } else if finished == Some(tracking::COMPLETE)
            && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone())
            && status
                .last_successful_time
                .as_ref()
                .is_none_or(|t| done.0 > t.0)
        {
            status.last_successful_time = Some(done);
            update = true;
        }
    }

    // Active references whose Job is gone (asked of the apiserver: the cache may lag).
    let children: HashSet<Option<String>> = jobs.iter().map(|j| j.metadata.uid.clone()).collect();
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    for r in status.active.clone().unwrap_or_default() {
        if children.contains(&r.uid) {
            continue;
        }
        let name = r.name.clone().unwrap_or_default();
        let found = jobs_api
            .get_opt(&name)
            .await
            .map_err(api_err("get job", format!("{ns}/{name}")))?;
        if found.is_none() {
            ctx.events.record(
                regarding.clone(),
                Kind::Normal,
                "MissingJob",
                "Sync",
                format!("Active job went missing: {name}"),
            );
            if let Some(list) = status.active.as_mut() {
                list.retain(|a| a.uid != r.uid);
            }
            update = true;
        }
    }

    let (requeue, status) = schedule_run(ctx, &cj, status, &mut update, now).await?;
    if update {
        cj = write_status(ctx, cj, status).await?;
    }
    if cleanup_history(ctx, &cj, &jobs).await {
        tracing::debug!(cronjob = %k, "finished jobs beyond the history limits deleted");
    }
    Ok(requeue)
}

/// Decides whether a run is due and starts it. Returns the requeue and the new status.
async fn schedule_run(
    ctx: &Ctx,
    cj: &CronJob,
    mut status: CronJobStatus,
    update: &mut bool,
    now: Timestamp,
) -> Result<(Option<Duration>, CronJobStatus)> {
    let regarding = cj.object_ref(&());
    let ns = cj.namespace().unwrap_or_default();
    let spec = cj.spec.clone().unwrap_or_default();
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok((None, status));
    }
    let (zone, annotation_zone) = match zones(cj) {
        Ok(z) => z,
        Err(msg) => {
            ctx.events
                .record(regarding, Kind::Warning, "UnknownTimeZone", "Sync", msg);
            return Ok((None, status));
        }
    };
    if spec.suspend == Some(true) {
        return Ok((None, status));
    }
    if spec.schedule.contains("TZ") {
        ctx.events.record(
            regarding.clone(),
            Kind::Warning,
            "UnsupportedSchedule",
            "Sync",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        );
    }
    let sched = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.events.record(
                regarding,
                Kind::Warning,
                "UnparseableSchedule",
                "Sync",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return Ok((None, status));
        }
    };
    // The view of the CronJob with the status as it stands now.
    let mut view = cj.clone();
    view.status = Some(status.clone());

    let mut from = earliest(&view);
    if let Some(sds) = spec.starting_deadline_seconds
        && let Ok(deadline) = now.checked_sub(SignedDuration::from_secs(sds))
        && deadline > from
    {
        from = deadline;
    }
    let due = match schedule::most_recent(&sched, from, now, &zone) {
        Ok(d) => d,
        Err(e) => {
            ctx.events.record(
                regarding,
                Kind::Warning,
                "InvalidSchedule",
                "Sync",
                format!("invalid schedule: {} : {e}", spec.schedule),
            );
            return Ok((None, status));
        }
    };
    let Some(scheduled) = due.most_recent.filter(|t| *t <= now) else {
        return Ok((next_requeue(&view, &sched, &zone, now), status));
    };
    if due.too_many_missed {
        ctx.events.record(
            regarding.clone(),
            Kind::Warning,
            "TooManyMissedTimes",
            "Sync",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
        );
        tracing::info!(cronjob = %key(cj), "too many missed times");
    }
    if let Some(sds) = spec.starting_deadline_seconds
        && scheduled
            .checked_add(SignedDuration::from_secs(sds))
            .is_ok_and(|t| t < now)
    {
        ctx.events.record(
            regarding,
            Kind::Warning,
            "MissSchedule",
            "Sync",
            format!(
                "Missed scheduled time to start a job: {}",
                rfc1123z(scheduled)
            ),
        );
        return Ok((next_requeue(&view, &sched, &zone, now), status));
    }
    let name = job_name(&cj.name_any(), scheduled);
    let already = status
        .active
        .iter()
        .flatten()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
        || status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
    if already {
        return Ok((next_requeue(&view, &sched, &zone, now), status));
    }
    let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
    if policy == "Forbid" && status.active.as_ref().is_some_and(|a| !a.is_empty()) {
        ctx.events.record(
            regarding,
            Kind::Normal,
            "JobAlreadyActive",
            "Sync",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        );
        return Ok((next_requeue(&view, &sched, &zone, now), status));
    }
    let jobs_api = Api::<Job>::namespaced(ctx.client.clone(), &ns);
    if policy == "Replace" {
        for r in status.active.clone().unwrap_or_default() {
            let jname = r.name.clone().unwrap_or_default();
            let job = match jobs_api.get(&jname).await {
                Ok(j) => j,
                Err(e) => {
                    ctx.events.record(
                        regarding.clone(),
                        Kind::Warning,
                        "FailedGet",
                        "Sync",
                        format!("Get job: {}", api_message(&e)),
                    );
                    return Err(api_err("get job", format!("{ns}/{jname}"))(e));
                }
            };
            delete_job(ctx, cj, &job).await?;
            if let Some(list) = status.active.as_mut() {
                list.retain(|a| a.uid != job.metadata.uid);
            }
            *update = true;
        }
    }
    let job = job_for(cj, scheduled, &annotation_zone);
    let created = match jobs_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            ctx.events.record(
                regarding.clone(),
                Kind::Normal,
                "SuccessfulCreate",
                "Create",
                format!("Created job {}", j.name_any()),
            );
            tracing::info!(cronjob = %key(cj), job = %j.name_any(), scheduled = %scheduled, "created job");
            j
        }
        Err(e) if api_code(&e) == Some(409) => {
            // Made earlier by us (the status write was lost) or by someone else.
            let existing = jobs_api
                .get(&name)
                .await
                .map_err(api_err("get job", format!("{ns}/{name}")))?;
            let ours = controller_of(&existing.metadata)
                .is_some_and(|o| Some(&o.uid) == cj.metadata.uid.as_ref());
            if !ours
                || status
                    .active
                    .iter()
                    .flatten()
                    .any(|r| r.uid == existing.metadata.uid)
            {
                return Ok((None, status));
            }
            existing
        }
        Err(e) => {
            if api_code(&e) != Some(403) {
                ctx.events.record(
                    regarding,
                    Kind::Warning,
                    "FailedCreate",
                    "Create",
                    format!("Error creating job: {}", api_message(&e)),
                );
            }
            return Err(api_err("create job of cronjob", key(cj))(e));
        }
    };
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(job_ref(&created));
    status.last_schedule_time = Some(Time(scheduled));
    *update = true;
    view.status = Some(status.clone());
    Ok((next_requeue(&view, &sched, &zone, now), status))
}

async fn write_status(ctx: &Ctx, mut cj: CronJob, status: CronJobStatus) -> Result<CronJob> {
    cj.status = Some(status);
    let api = Api::<CronJob>::namespaced(ctx.client.clone(), &cj.namespace().unwrap_or_default());
    api.replace_status(&cj.name_any(), &PostParams::default(), &cj)
        .await
        .map_err(api_err("update the status of cronjob", key(&cj)))
}

/// Deletes a Job and its pods in the background (Kubernetes' `jobControl.DeleteJob`).
async fn delete_job(ctx: &Ctx, cj: &CronJob, job: &Job) -> Result<()> {
    let ns = job.namespace().unwrap_or_default();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match Api::<Job>::namespaced(ctx.client.clone(), &ns)
        .delete(&job.name_any(), &dp)
        .await
    {
        Ok(_) => {}
        Err(e) if api_code(&e) == Some(404) => {}
        Err(e) => {
            ctx.events.record(
                cj.object_ref(&()),
                Kind::Warning,
                "FailedDelete",
                "Delete",
                format!("Deleted job: {}", api_message(&e)),
            );
            return Err(api_err("delete job", format!("{ns}/{}", job.name_any()))(e));
        }
    }
    ctx.events.record(
        cj.object_ref(&()),
        Kind::Normal,
        "SuccessfulDelete",
        "Delete",
        format!("Deleted job {}", job.name_any()),
    );
    Ok(())
}

/// Orders Jobs oldest first by start time (unstarted last), then by name.
fn by_start_time(a: &Arc<Job>, b: &Arc<Job>) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.name_any().cmp(&b.name_any()),
    }
}

/// The finished Jobs to delete: beyond `successfulJobsHistoryLimit` (Complete) and
/// `failedJobsHistoryLimit` (Failed), oldest first.
pub fn beyond_history(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<Arc<Job>> {
    let spec = cj.spec.clone().unwrap_or_default();
    let mut by_kind: BTreeMap<&str, Vec<Arc<Job>>> = BTreeMap::new();
    for j in jobs {
        if let Some(t) = finished_type(j) {
            by_kind.entry(t).or_default().push(j.clone());
        }
    }
    let mut out = Vec::new();
    for (kind, limit) in [
        (tracking::COMPLETE, spec.successful_jobs_history_limit),
        (tracking::FAILED, spec.failed_jobs_history_limit),
    ] {
        let (Some(limit), Some(mut list)) = (limit, by_kind.remove(kind)) else {
            continue;
        };
        let excess = list
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        list.sort_by(by_start_time);
        out.extend(list.into_iter().take(excess));
    }
    out
}

/// Deletes finished Jobs beyond the history limits; returns whether any went.
async fn cleanup_history(ctx: &Ctx, cj: &CronJob, jobs: &[Arc<Job>]) -> bool {
    let mut any = false;
    for j in beyond_history(cj, jobs) {
        if j.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match delete_job(ctx, cj, &j).await {
            Ok(()) => any = true,
            Err(e) => {
                tracing::warn!(cronjob = %key(cj), job = %j.name_any(), error = %e, "could not delete an old job")
            }
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    fn cronjob(extra: serde_json::Value) -> CronJob {
        let mut v = json!({"metadata": {"name": "backup", "namespace": "n", "uid": "cj-uid"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {
                "metadata": {"labels": {"app": "backup"}, "annotations": {"note": "x"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}});
        if let (Some(spec), Some(e)) = (v["spec"].as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                spec.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(v).expect("cronjob")
    }

    #[test]
    fn jobs_are_named_by_minute_and_carry_the_scheduled_time() {
        let cj = cronjob(json!({}));
        let t = ts("2024-05-05T10:05:00Z");
        let job = job_for(&cj, t, &TimeZone::UTC);
        assert_eq!(job.metadata.name.as_deref(), Some("backup-28581725"));
        let ann = job.metadata.annotations.clone().expect("annotations");
        assert_eq!(
            ann.get(SCHEDULED_TIMESTAMP_ANNOTATION).map(String::as_str),
            Some("2024-05-05T10:05:00Z")
        );
        assert_eq!(ann.get("note").map(String::as_str), Some("x"));
        assert_eq!(
            job.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("backup")
        );
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("CronJob", "cj-uid", Some(true))
        );
        let berlin = TimeZone::get("Europe/Berlin").expect("zone");
        assert_eq!(rfc3339_in(t, &berlin), "2024-05-05T12:05:00+02:00");
        assert_eq!(rfc1123z(t), "Sun, 05 May 2024 10:05:00 +0000");
    }

    #[test]
    fn history_limits_keep_the_newest_finished_jobs() {
        let cj = cronjob(json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}));
        let job = |name: &str, start: &str, cond: Option<&str>| {
            let conditions = cond.map_or(json!([]), |c| json!([{"type": c, "status": "True"}]));
            Arc::new(
                serde_json::from_value::<Job>(json!({"metadata": {"name": name},
                    "status": {"startTime": start, "conditions": conditions}}))
                .expect("job"),
            )
        };
        let jobs = vec![
            job("c", "2024-01-01T00:03:00Z", Some("Complete")),
            job("a", "2024-01-01T00:01:00Z", Some("Complete")),
            job("b", "2024-01-01T00:02:00Z", Some("Complete")),
            job("f", "2024-01-01T00:02:30Z", Some("Failed")),
            job("r", "2024-01-01T00:00:30Z", None),
        ];
        let mut names: Vec<String> = beyond_history(&cj, &jobs)
            .iter()
            .map(|j| j.name_any())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "f"]);
    }

    #[test]
    fn zones_come_from_the_spec_and_unknown_ones_are_reported() {
        let (z, ann) = zones(&cronjob(json!({"timeZone": "Asia/Tokyo"}))).expect("zone");
        assert_eq!(z.iana_name(), Some("Asia/Tokyo"));
        assert_eq!(ann.iana_name(), Some("Asia/Tokyo"));
        let err = zones(&cronjob(json!({"timeZone": "Mars/Base"}))).expect_err("unknown");
        assert!(err.starts_with("invalid timeZone: \"Mars/Base\""), "{err}");
        let (_, ann) = zones(&cronjob(json!({}))).expect("zone");
        assert_eq!(ann, TimeZone::UTC);
    }

    #[test]
    fn requeue_aims_just_after_the_next_run() {
        let mut cj = cronjob(json!({}));
        cj.metadata.creation_timestamp = Some(Time(ts("2024-05-05T10:01:00Z")));
        let sched = Schedule::parse("*/5 * * * *").expect("parses");
        let wait =
            next_requeue(&cj, &sched, &TimeZone::UTC, ts("2024-05-05T10:03:00Z")).expect("wait");
        assert_eq!(wait, Duration::from_secs(120) + NEXT_SCHEDULE_DELTA);
    }
}
