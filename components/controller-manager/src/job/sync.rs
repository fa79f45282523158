//! One sync of one Job, in the order Kubernetes' `syncJob` works:
//!
//! ```text
//!  fresh Job + its pods (consistent list) ─► count: active, ready, terminating, newly
//!  finished (pods still holding the tracking finalizer), succeeded and failed so far
//!   ─► failed > backoffLimit / past activeDeadlineSeconds ─► FailureTarget: delete active pods
//!   ─► else manage: suspend (delete all) / too many (delete) / too few (create, after the
//!      failure back-off); enough succeeded and none active ─► SuccessCriteriaMet
//!   ─► track: finished pods' uids into status.uncountedTerminatedPods (write status),
//!      remove their finalizers, move them into succeeded/failed (write status)
//!   ─► nothing uncounted or terminating left ─► Complete / Failed (+ completionTime, event)
//! ```
//!
//! Counting through `uncountedTerminatedPods` before removing finalizers means a pod is
//! counted exactly once even if the controller stops between any two writes.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Ctx;
use super::tracking::{self, *};
use crate::error::{Error, Result, api_code, api_message};
use crate::workload::claim::controller_ref;
use crate::workload::events::Kind;
use crate::workload::pods;

/// Most pods created or deleted in one sync (Kubernetes' `MaxPodCreateDeletePerSync`).
pub const MAX_POD_WRITES: usize = 500;
/// Most uids in `status.uncountedTerminatedPods` (Kubernetes' `MaxUncountedPods`).
pub const MAX_UNCOUNTED: usize = 500;
/// The shortest requeue for a pod-failure back-off (Kubernetes' sync batch period).
const MIN_BACKOFF_REQUEUE: Duration = Duration::from_secs(1);
/// `spec.managedBy` of Jobs this controller handles (or unset).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

fn workload_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| Error::Workload {
        action,
        object,
        source: Box::new(e),
    }
}

pub fn key(job: &Job) -> String {
    format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any())
}

fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// The pods the Job controls, read consistently (so this sync sees the previous one's
/// creations and deletions).
pub async fn job_pods(ctx: &Ctx, job: &Job) -> Result<Vec<Pod>> {
    let ns = job.namespace().unwrap_or_default();
    let job_uid = job.metadata.uid.clone().unwrap_or_default();
    let mut lp = ListParams::default();
    if let Some(sel) = job.spec.as_ref().and_then(|s| s.selector.clone())
        && let Ok(sel) = Selector::try_from(sel)
    {
        let s = sel.to_string();
        if !s.is_empty() {
            lp = lp.labels(&s);
        }
    }
    let list = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(workload_err("list pods of job", key(job)))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            crate::workload::claim::controller_of(&p.metadata).is_some_and(|r| r.uid == job_uid)
        })
        .collect())
}

/// Removes the tracking finalizer (a strategic-merge `$deleteFromPrimitiveList`, so other
/// finalizers are untouched). A pod that is gone counts as done.
pub async fn remove_finalizer(ctx: &Ctx, pod: &Pod) -> Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(workload_err(
            "remove the tracking finalizer of pod",
            format!("{ns}/{}", pod.name_any()),
        )(e)),
    }
}

/// Removes the finalizers of all the Job's pods that still hold one (a finished Job).
pub async fn release_all(ctx: &Ctx, pods: &[Pod]) -> Result<()> {
    let results = join_all(
        pods.iter()
            .filter(|p| has_finalizer(p))
            .map(|p| remove_finalizer(ctx, p)),
    )
    .await;
    let errors: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::WorkloadErrors { errors })
    }
}

/// Kubernetes' `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure` failures are
/// container restarts of pending and running pods.
fn past_backoff_limit_on_failure(job: &Job, all: &[Pod]) -> bool {
    let spec = job.spec.as_ref();
    let policy = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    let restarts: i32 = all
        .iter()
        .filter(|p| matches!(pods::phase(p), pods::PHASE_RUNNING | pods::PHASE_PENDING))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

/// How long until `activeDeadlineSeconds` runs out (zero or less: past it); `None` without
/// a deadline, before the start, or while suspended.
fn deadline_left(job: &Job, status: &JobStatus, now: Timestamp) -> Option<SignedDuration> {
    let ads = job.spec.as_ref()?.active_deadline_seconds?;
    let start = status.start_time.as_ref()?.0;
    if suspended(job) {
        return None;
    }
    let end = start.checked_add(SignedDuration::from_secs(ads)).ok()?;
    Some(end.duration_since(now))
}

/// Ranks active pods for deletion: not-ready before ready, unscheduled before scheduled,
/// newer before older.
fn deletion_order(a: &&Pod, b: &&Pod) -> std::cmp::Ordering {
    let rank = |p: &Pod| {
        (
            pods::is_ready(p),
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
            pods::phase(p) == pods::PHASE_RUNNING,
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        )
    };
    rank(a).cmp(&rank(b))
}

/// Deletes `victims`; with `release` the tracking finalizer goes first so the pod is not
/// counted as failed (suspension, scale-down). Returns (deleted, deleted ready, errors).
async fn delete_pods(
    ctx: &Ctx,
    job: &Job,
    victims: &[&Pod],
    release: bool,
) -> (usize, usize, Vec<String>) {
    let ns = job.namespace().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let ns = &ns;
    let results = join_all(victims.iter().map(|p| {
        let api = api.clone();
        async move {
            if release && has_finalizer(p) {
                remove_finalizer(ctx, p).await?;
            }
            match api.delete(&p.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => {
                    ctx.events.record(
                        job.object_ref(&()),
                        Kind::Warning,
                        "FailedDelete",
                        "Delete",
                        format!("Error deleting: {}", api_message(&e)),
                    );
                    return Err(workload_err("delete pod", format!("{ns}/{}", p.name_any()))(e));
                }
            }
            ctx.events.record(
                job.object_ref(&()),
                Kind::Normal,
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {}", p.name_any()),
            );
            Ok::<bool, Error>(pods::is_ready(p))
        }
    }))
    .await;
    let mut deleted = 0;
    let mut deleted_ready = 0;
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(ready) => {
                deleted += 1;
                deleted_ready += usize::from(ready);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (deleted, deleted_ready, errors)
}

/// Creates `count` pods from the template, in slow-start batches (1, 2, 4, …) that stop at
/// the first failure. Returns how many were created, and the errors.
async fn create_pods(ctx: &Ctx, job: &Job, count: usize) -> (usize, Vec<String>) {
    let ns = job.namespace().unwrap_or_default();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pods::from_template(&template, &job.name_any(), &ns, controller_ref(job));
    let finalizers = pod.metadata.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.to_string());
    }
    let mut created = 0;
    let mut errors = Vec::new();
    let mut batch = 1;
    while created < count && errors.is_empty() {
        let n = batch.min(count - created);
        let pp = PostParams::default();
        let results = join_all((0..n).map(|_| api.create(&pp, &pod))).await;
        for r in results {
            match r {
                Ok(p) => {
                    created += 1;
                    ctx.events.record(
                        job.object_ref(&()),
                        Kind::Normal,
                        "SuccessfulCreate",
                        "Create",
                        format!("Created pod: {}", p.name_any()),
                    );
                }
                // The namespace is being deleted: every creation fails from now on.
                Err(e) if api_code(&e) == Some(403) => return (created, errors),
                Err(e) => {
                    ctx.events.record(
                        job.object_ref(&()),
                        Kind::Warning,
                        "FailedCreate",
                        "Create",
                        format!("Error creating: {}", api_message(&e)),
                    );
                    errors.push(workload_err("create pod of job", key(job))(e).to_string());
                }
            }
        }
        batch *= 2;
    }
    (created, errors)
}

/// The counters of one sync.
struct Counts {
    active: usize,
    ready: usize,
    terminating: usize,
    succeeded: i32,
}

/// Kubernetes' `manageJob`: creates or deletes pods toward the wanted number of active ones.
/// Returns errors and, while failures back off, when to look again.
async fn manage(
    ctx: &Ctx,
    job: &Job,
    active_pods: &[&Pod],
    c: &mut Counts,
    record: super::backoff::Record,
    now: Timestamp,
) -> (Vec<String>, Option<Duration>) {
    let spec = job.spec.clone().unwrap_or_default();
    if suspended(job) {
        let (deleted, ready, errors) = delete_pods(ctx, job, active_pods, true).await;
        c.active -= deleted;
        c.terminating += deleted;
        c.ready = c.ready.saturating_sub(ready);
        return (errors, None);
    }
    let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let want = match spec.completions {
        None if c.succeeded > 0 => c.active,
        None => parallelism,
        Some(n) => usize::try_from(n - c.succeeded)
            .unwrap_or(0)
            .min(parallelism),
    };
    if c.active > want {
        let mut victims: Vec<&Pod> = active_pods.to_vec();
        victims.sort_by(deletion_order);
        victims.truncate((c.active - want).min(MAX_POD_WRITES));
        let (deleted, ready, errors) = delete_pods(ctx, job, &victims, true).await;
        c.active -= deleted;
        c.terminating += deleted;
        c.ready = c.ready.saturating_sub(ready);
        return (errors, None);
    }
    let blocking = if only_replace_failed(job) {
        c.terminating
    } else {
        0
    };
    let diff = want.saturating_sub(blocking + c.active);
    if diff == 0 {
        return (Vec::new(), None);
    }
    let wait = record.remaining(
        ctx.settings.pod_failure_backoff,
        ctx.settings.pod_failure_backoff_max,
        now,
    );
    if !wait.is_zero() {
        tracing::debug!(job = %key(job), wait_ms = wait.as_millis() as u64, "replacing failed pods after the back-off");
        return (Vec::new(), Some(wait.max(MIN_BACKOFF_REQUEUE)));
    }
    let (created, errors) = create_pods(ctx, job, diff.min(MAX_POD_WRITES)).await;
    c.active += created;
    (errors, None)
}

fn is_type(c: &Option<JobCondition>, t: &str) -> bool {
    c.as_ref().is_some_and(|c| c.type_ == t)
}

fn same_counts(old: &JobStatus, c: &Counts) -> bool {
    old.active.unwrap_or(0) as usize == c.active
        && old.ready == Some(c.ready as i32)
        && old.terminating == Some(c.terminating as i32)
}

/// Moves uids whose pods no longer hold the finalizer (or are gone) from the uncounted
/// lists into the counters. Returns whether anything moved.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let unc = status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let mut changed = false;
    for (list, counter) in [
        (&mut unc.succeeded, &mut status.succeeded),
        (&mut unc.failed, &mut status.failed),
    ] {
        let before = list.as_ref().map_or(0, Vec::len);
        if let Some(l) = list.as_mut() {
            l.retain(|u| with_finalizer.contains(u));
        }
        let moved = before - list.as_ref().map_or(0, Vec::len);
        if moved > 0 {
            *counter = Some(counter.unwrap_or(0) + moved as i32);
            changed = true;
        }
    }
    changed
}

/// Writes the status; the Job comes back with its new resourceVersion.
async fn flush(ctx: &Ctx, job: &mut Job, status: &JobStatus) -> Result<()> {
    job.status = Some(status.clone());
    let api = Api::<Job>::namespaced(ctx.client.clone(), &job.namespace().unwrap_or_default());
    *job = api
        .replace_status(&job.name_any(), &PostParams::default(), job)
        .await
        .map_err(workload_err("update the status of job", key(job)))?;
    Ok(())
}

/// Syncs one Job; `job` is the fresh copy.
pub async fn sync(ctx: &Ctx, mut job: Job) -> Result<Action> {
    let k = key(&job);
    if is_finished(&job) {
        ctx.backoff.forget(&k);
        release_all(ctx, &job_pods(ctx, &job).await?).await?;
        return Ok(Action::await_change());
    }
    let all = job_pods(ctx, &job).await?;
    let now = Timestamp::now();
    let old_status = job.status.clone().unwrap_or_default();
    let mut st = old_status.clone();
    let unc = st.uncounted_terminated_pods.clone().unwrap_or_default();
    let unc_s: HashSet<String> = unc.succeeded.iter().flatten().cloned().collect();
    let unc_f: HashSet<String> = unc.failed.iter().flatten().cloned().collect();

    let active_pods: Vec<&Pod> = all.iter().filter(|p| pods::is_active(p)).collect();
    let new_succeeded: Vec<&Pod> = all
        .iter()
        .filter(|p| has_finalizer(p) && !unc_s.contains(&uid(p)))
        .filter(|p| pods::phase(p) == pods::PHASE_SUCCEEDED)
        .collect();
    let new_failed: Vec<&Pod> = all
        .iter()
        .filter(|p| has_finalizer(p) && !unc_f.contains(&uid(p)))
        .filter(|p| is_failed(p, &job))
        .collect();
    let mut c = Counts {
        active: active_pods.len(),
        ready: active_pods.iter().filter(|p| pods::is_ready(p)).count(),
        terminating: all.iter().filter(|p| is_terminating(p)).count(),
        succeeded: st.succeeded.unwrap_or(0) + (new_succeeded.len() + unc_s.len()) as i32,
    };
    let failed = st.failed.unwrap_or(0) + (new_failed.len() + unc_f.len()) as i32;
    let mut start_set = false;
    if st.start_time.is_none() && !suspended(&job) {
        st.start_time = Some(Time(now));
        start_set = true;
    }
    let record = ctx
        .backoff
        .get(&k)
        .with_finished(&new_succeeded, &new_failed);
    let spec = job.spec.clone().unwrap_or_default();
    let mut requeue: Option<Duration> = None;

    let mut finished: Option<JobCondition> = None;
    if let Some(met) = true_condition(&job, SUCCESS_CRITERIA_MET) {
        finished = Some(met.clone());
    } else if let Some(target) = true_condition(&job, FAILURE_TARGET) {
        finished = Some(new_condition(
            FAILED,
            target.reason.as_deref().unwrap_or(""),
            target.message.as_deref().unwrap_or(""),
            now,
        ));
    } else if failed > spec.backoff_limit.unwrap_or(6) || past_backoff_limit_on_failure(&job, &all)
    {
        finished = Some(new_condition(
            FAILURE_TARGET,
            REASON_BACKOFF_LIMIT,
            MESSAGE_BACKOFF_LIMIT,
            now,
        ));
    } else if let Some(left) = deadline_left(&job, &st, now) {
        if left <= SignedDuration::ZERO {
            finished = Some(new_condition(
                FAILURE_TARGET,
                REASON_DEADLINE,
                MESSAGE_DEADLINE,
                now,
            ));
        } else {
            requeue = Duration::try_from(left).ok();
        }
    }

    let mut errors = Vec::new();
    let mut suspend_changed = false;
    if finished.is_some() {
        let (deleted, ready, errs) = delete_pods(ctx, &job, &active_pods, false).await;
        if deleted != c.active {
            // Some pods are still running: finish once they are gone.
            finished = None;
        }
        c.active -= deleted;
        c.terminating += deleted;
        c.ready = c.ready.saturating_sub(ready);
        errors.extend(errs);
    } else {
        let mut managed = false;
        if job.metadata.deletion_timestamp.is_none() {
            let (errs, wait) = manage(ctx, &job, &active_pods, &mut c, record, now).await;
            errors.extend(errs);
            if let Some(w) = wait {
                requeue = Some(requeue.map_or(w, |r| r.min(w)));
            }
            managed = true;
        }
        let complete = match spec.completions {
            None => c.succeeded > 0 && c.active == 0,
            Some(n) => c.succeeded >= n && c.active == 0,
        };
        if complete {
            finished = Some(new_condition(
                SUCCESS_CRITERIA_MET,
                REASON_COMPLETIONS,
                MESSAGE_COMPLETIONS,
                now,
            ));
        } else if managed {
            let conditions = st.conditions.get_or_insert_with(Vec::new);
            if suspended(&job) {
                if tracking::ensure(
                    conditions,
                    SUSPENDED,
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    suspend_changed = true;
                    ctx.events.record(
                        job.object_ref(&()),
                        Kind::Normal,
                        "Suspended",
                        "Suspend",
                        "Job suspended".into(),
                    );
                }
            } else if tracking::ensure(
                conditions,
                SUSPENDED,
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                suspend_changed = true;
                ctx.events.record(
                    job.object_ref(&()),
                    Kind::Normal,
                    "Resumed",
                    "Resume",
                    "Job resumed".into(),
                );
                // activeDeadlineSeconds counts from the resumption.
                st.start_time = Some(Time(now));
            }
        }
    }

    // Track finished pods through uncountedTerminatedPods, then release them.
    let mut needs_flush = suspend_changed || start_set || !same_counts(&old_status, &c);
    st.active = Some(c.active as i32);
    st.ready = Some(c.ready as i32);
    st.terminating = Some(c.terminating as i32);
    let mut with_finalizer: HashSet<String> =
        all.iter().filter(|p| has_finalizer(p)).map(uid).collect();
    needs_flush |= clean_uncounted(&mut st, &with_finalizer);
    let mut release: Vec<&Pod> = Vec::new();
    let mut reached_max = false;
    {
        let unc = st
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        let succ = unc.succeeded.get_or_insert_with(Vec::new);
        let mut fail_list = unc.failed.clone().unwrap_or_default();
        let failing = is_type(&finished, FAILURE_TARGET) || is_type(&finished, FAILED);
        for pod in all.iter().filter(|p| has_finalizer(p)) {
            let considered_failed = is_failed(pod, &job);
            let can_release = job.metadata.deletion_timestamp.is_some()
                || finished.is_some()
                || pods::phase(pod) == pods::PHASE_SUCCEEDED
                || considered_failed;
            if !can_release {
                continue;
            }
            release.push(pod);
            let u = uid(pod);
            if pods::phase(pod) == pods::PHASE_SUCCEEDED && !fail_list.contains(&u) {
                if !succ.contains(&u) {
                    succ.push(u);
                    needs_flush = true;
                }
            } else if (considered_failed || failing) && !fail_list.contains(&u) {
                fail_list.push(u);
                needs_flush = true;
            }
            if succ.len() + fail_list.len() >= MAX_UNCOUNTED {
                reached_max = true;
                break;
            }
        }
        unc.failed = Some(fail_list);
    }
    let conditions = st.conditions.get_or_insert_with(Vec::new);
    if is_type(&finished, FAILURE_TARGET) {
        let target = finished.take().expect("checked");
        finished = Some(new_condition(
            FAILED,
            target.reason.as_deref().unwrap_or(""),
            target.message.as_deref().unwrap_or(""),
            now,
        ));
        conditions.push(target);
        needs_flush = true;
    } else if is_type(&finished, SUCCESS_CRITERIA_MET) {
        let met = finished.take().expect("checked");
        finished = Some(new_condition(
            COMPLETE,
            met.reason.as_deref().unwrap_or(""),
            met.message.as_deref().unwrap_or(""),
            now,
        ));
        if !conditions.iter().any(|c| c.type_ == SUCCESS_CRITERIA_MET) {
            conditions.push(met);
            needs_flush = true;
        }
    }
    if needs_flush {
        flush(ctx, &mut job, &st).await?;
        st = job.status.clone().unwrap_or_default();
        ctx.backoff.set(&k, record);
        needs_flush = false;
    }
    let released = join_all(
        release
            .iter()
            .map(|p| async move { (uid(p), remove_finalizer(ctx, p).await) }),
    )
    .await;
    for (u, r) in released {
        match r {
            Ok(()) => {
                with_finalizer.remove(&u);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    needs_flush |= clean_uncounted(&mut st, &with_finalizer);

    // Finished once every pod is counted and none is still terminating.
    let mut job_finished = false;
    if let Some(f) = &finished
        && !reached_max
    {
        let unc = st.uncounted_terminated_pods.clone().unwrap_or_default();
        let uncounted = unc.succeeded.map_or(0, |v| v.len()) + unc.failed.map_or(0, |v| v.len());
        if uncounted == 0 && c.terminating == 0 {
            let conditions = st.conditions.get_or_insert_with(Vec::new);
            tracking::ensure(
                conditions,
                &f.type_,
                "True",
                f.reason.as_deref().unwrap_or(""),
                f.message.as_deref().unwrap_or(""),
                now,
            );
            if f.type_ == COMPLETE {
                st.completion_time = Some(Time(now));
            }
            job_finished = true;
            needs_flush = true;
        }
    }
    if needs_flush {
        flush(ctx, &mut job, &st).await?;
    }
    if job_finished {
        ctx.backoff.forget(&k);
        let f = finished.expect("finished");
        if f.type_ == COMPLETE {
            if spec
                .completions
                .is_some_and(|n| st.succeeded.unwrap_or(0) > n)
            {
                ctx.events.record(
                    job.object_ref(&()),
                    Kind::Warning,
                    "TooManySucceededPods",
                    "Complete",
                    "Too many succeeded pods running after completion count reached".into(),
                );
            }
            ctx.events.record(
                job.object_ref(&()),
                Kind::Normal,
                "Completed",
                "Complete",
                "Job completed".into(),
            );
            tracing::info!(job = %k, succeeded = st.succeeded.unwrap_or(0), "job completed");
        } else {
            let reason = f.reason.clone().unwrap_or_default();
            let reason: &'static str = match reason.as_str() {
                REASON_BACKOFF_LIMIT => REASON_BACKOFF_LIMIT,
                REASON_DEADLINE => REASON_DEADLINE,
                _ => "Failed",
            };
            ctx.events.record(
                job.object_ref(&()),
                Kind::Warning,
                reason,
                "Fail",
                f.message.clone().unwrap_or_default(),
            );
            tracing::info!(job = %k, reason, failed = st.failed.unwrap_or(0), "job failed");
        }
    }
    if !errors.is_empty() {
        return Err(Error::WorkloadErrors { errors });
    }
    Ok(match requeue {
        Some(d) if !job_finished => Action::requeue(d),
        _ => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncounted_pods_without_finalizers_move_into_counters() {
        let mut st = JobStatus {
            succeeded: Some(2),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let with: HashSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut st, &with));
        assert_eq!(st.succeeded, Some(3));
        assert_eq!(st.failed, Some(1));
        let unc = st.uncounted_terminated_pods.clone().expect("uncounted");
        assert_eq!(unc.succeeded, Some(vec!["b".to_string()]));
        assert_eq!(unc.failed, Some(vec![]));
        assert!(!clean_uncounted(&mut st, &with));
    }

    #[test]
    fn deadlines_count_from_the_start_time() {
        let job: Job =
            serde_json::from_value(json!({"spec": {"activeDeadlineSeconds": 30, "template": {}}}))
                .expect("job");
        let start: Timestamp = "2024-01-01T00:00:00Z".parse().expect("t");
        let st = JobStatus {
            start_time: Some(Time(start)),
            ..Default::default()
        };
        assert_eq!(
            deadline_left(&job, &st, start + SignedDuration::from_secs(10)),
            Some(SignedDuration::from_secs(20))
        );
        assert!(
            deadline_left(&job, &st, start + SignedDuration::from_secs(31))
                .is_some_and(|d| d < SignedDuration::ZERO)
        );
        assert_eq!(deadline_left(&job, &JobStatus::default(), start), None);
    }

    #[test]
    fn on_failure_restarts_count_against_the_backoff_limit() {
        let job: Job = serde_json::from_value(json!({"spec": {"backoffLimit": 2,
            "template": {"spec": {"restartPolicy": "OnFailure", "containers": []}}}}))
        .expect("job");
        let pod = |restarts: i32| -> Pod {
            serde_json::from_value(json!({"status": {"phase": "Running", "containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": restarts}]}}))
            .expect("pod")
        };
        assert!(!past_backoff_limit_on_failure(&job, &[pod(1)]));
        assert!(past_backoff_limit_on_failure(&job, &[pod(1), pod(1)]));
    }
}
