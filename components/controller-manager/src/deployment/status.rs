//! A Deployment's status and conditions (Kubernetes' `calculateStatus`, `syncRolloutStatus`
//! and the condition helpers), without I/O.
//!
//! `Available` says whether at least replicas − maxUnavailable pods are available.
//! `Progressing` tracks the rollout against `progressDeadlineSeconds`: `NewReplicaSetCreated`
//! / `FoundNewReplicaSet` when the controller picks the new ReplicaSet, `ReplicaSetUpdated`
//! (its `lastUpdateTime` moving) whenever pods progress, `NewReplicaSetAvailable` when the
//! rollout completed, `ProgressDeadlineExceeded` (False) when nothing progressed for the
//! deadline, `DeploymentPaused`/`DeploymentResumed` (Unknown) around a pause.
//! `ReplicaFailure` mirrors a ReplicaSet's failure to create or delete pods.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::replicasets::{deployment_replicas, sum_available, sum_ready, sum_spec, sum_status};
use super::rollout::max_unavailable;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Go's `%q` for the names in condition messages.
pub fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A condition stamped `now` for both times (Kubernetes' `NewDeploymentCondition`).
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn remove(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// Kubernetes' `SetDeploymentCondition`: a condition with the same status and reason is
/// left as it is; the same status keeps its transition time; the new one goes last.
pub fn set(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = get(status, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove(status, &c.type_);
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Kubernetes' `HasProgressDeadline`: set and not MaxInt32.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

fn progress_deadline(d: &Deployment) -> SignedDuration {
    SignedDuration::from_secs(i64::from(
        d.spec
            .as_ref()
            .and_then(|s| s.progress_deadline_seconds)
            .unwrap_or(0),
    ))
}

/// Kubernetes' `calculateStatus`: counts over all ReplicaSets, `updatedReplicas` from the new
/// one, the existing conditions plus `Available`.
pub fn calculate(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = sum_available(all.iter().copied());
    let total = sum_spec(all.iter().copied());
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum_status(all.iter().copied())),
        updated_replicas: Some(sum_status(new_rs)),
        ready_replicas: Some(sum_ready(all.iter().copied())),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= deployment_replicas(d) - max_unavailable(d) {
        set(
            &mut status,
            condition(
                AVAILABLE,
                "True",
                MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set(
            &mut status,
            condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Kubernetes' `DeploymentComplete`: every replica updated and available, and the latest
/// generation observed.
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = deployment_replicas(d);
    n(status.updated_replicas) == replicas
        && n(status.replicas) == replicas
        && n(status.available_replicas) == replicas
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Kubernetes' `DeploymentProgressing`: more updated, ready or available pods, or fewer old
/// ones, than the Deployment's status shows.
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Kubernetes' `DeploymentTimedOut`: the Progressing condition has not moved for the
/// deadline.
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get(status, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + progress_deadline(d) < now),
    }
}

/// The `ReplicaFailure` condition to show: the new ReplicaSet's, else any old one's.
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_deref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new_rs
        .and_then(failure)
        .or_else(|| all.iter().find_map(|rs| failure(rs)))
}

/// Kubernetes' `syncRolloutStatus` without the write: the status after this sync of a
/// rolling or recreating Deployment.
pub fn rollout(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate(all, new_rs, d, now);
    if !has_progress_deadline(d) {
        remove(&mut status, PROGRESSING);
    }
    let current = d.status.as_ref().and_then(|s| get(s, PROGRESSING)).cloned();
    let complete_before = n(status.replicas) == n(status.updated_replicas)
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    let dname = d.metadata.name.clone().unwrap_or_default();
    let subject = |what: &str| match new_rs.and_then(|r| r.metadata.name.as_deref()) {
        Some(rs) => format!("ReplicaSet {} {what}", quoted(rs)),
        None => format!("Deployment {} {what}", quoted(&dname)),
    };
    if has_progress_deadline(d) && !complete_before {
        if complete(d, &status) {
            set(
                &mut status,
                condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE,
                    subject("has successfully progressed."),
                    now,
                ),
            );
        } else if progressing(d, &status) {
            let mut c = condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                subject("is progressing."),
                now,
            );
            // Progress moves lastUpdateTime even when the reason stays the same.
            if let Some(cur) = &current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove(&mut status, PROGRESSING);
            }
            set(&mut status, c);
        } else if timed_out(d, &status, now) {
            set(
                &mut status,
                condition(
                    PROGRESSING,
                    "False",
                    TIMED_OUT,
                    subject("has timed out progressing."),
                    now,
                ),
            );
        }
    }
    match replica_failure(all, new_rs) {
        Some(c) => set(&mut status, c),
        None => remove(&mut status, REPLICA_FAILURE),
    }
    status
}

/// Kubernetes' `requeueStuckDeployment`: when to look again so a rollout that stopped making
/// progress times out on time (no watch event would say so).
pub fn requeue_stuck(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let current = d.status.as_ref().and_then(|s| get(s, PROGRESSING))?;
    if !has_progress_deadline(d) || complete(d, new) || current.reason.as_deref() == Some(TIMED_OUT)
    {
        return None;
    }
    let since = current.last_update_time.as_ref()?.0;
    let after = (since + progress_deadline(d)).duration_since(now);
    Some(
        Duration::try_from(after)
            .unwrap_or_default()
            .max(Duration::from_secs(1)),
    )
}

/// Kubernetes' `checkPausedConditions`: the Progressing condition a pause or resume sets,
/// unless the rollout already timed out; `None` when nothing changes.
pub fn paused_update(d: &Deployment, now: Timestamp) -> Option<DeploymentStatus> {
    if !has_progress_deadline(d) {
        return None;
    }
    let mut status = d.status.clone().unwrap_or_default();
    let cond = get(&status, PROGRESSING);
    if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
        return None;
    }
    let paused_exists = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let c = if paused && !paused_exists {
        condition(
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused".into(),
            now,
        )
    } else if !paused && paused_exists {
        condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed".into(),
            now,
        )
    } else {
        return None;
    };
    set(&mut status, c);
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::super::replicasets::tests::rs;
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-01-01T01:00:00Z".parse().expect("now")
    }

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "progressDeadlineSeconds": 600, "selector": {},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {}},
            "status": status
        }))
        .expect("d")
    }

    #[test]
    fn counts_come_from_the_replicasets() {
        let d = deployment(json!({}));
        let old = rs("old", 1, 1, 1, "1");
        let new = rs("new", 3, 2, 2, "2");
        let s = calculate(&[&old, &new], Some(&new), &d, now());
        assert_eq!(s.replicas, Some(4));
        assert_eq!(s.updated_replicas, Some(3));
        assert_eq!(s.ready_replicas, Some(3));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(2));
        let a = get(&s, AVAILABLE).expect("available");
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("True", Some(MIN_AVAILABLE))
        );
    }

    #[test]
    fn complete_rollout_says_new_replicaset_available() {
        let d = deployment(
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                            "lastUpdateTime": "2024-01-01T00:59:00Z", "lastTransitionTime": "2024-01-01T00:50:00Z"}]}),
        );
        let new = rs("web-abc", 3, 3, 2, "2");
        let s = rollout(&[&new], Some(&new), &d, now());
        let p = get(&s, PROGRESSING).expect("progressing");
        assert_eq!(p.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        assert_eq!(
            p.last_transition_time,
            Some(Time("2024-01-01T00:50:00Z".parse().expect("t"))),
            "status stayed True"
        );
        assert!(requeue_stuck(&d, &s, now()).is_none());
    }

    #[test]
    fn progress_refreshes_last_update_time() {
        let d = deployment(json!({"replicas": 3, "updatedReplicas": 1,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                            "lastUpdateTime": "2024-01-01T00:30:00Z", "lastTransitionTime": "2024-01-01T00:10:00Z"}]}));
        let old = rs("old", 1, 1, 1, "1");
        let new = rs("new", 2, 1, 2, "2");
        let s = rollout(&[&old, &new], Some(&new), &d, now());
        let p = get(&s, PROGRESSING).expect("progressing");
        assert_eq!(p.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(p.last_update_time, Some(Time(now())));
        assert_eq!(
            p.last_transition_time,
            Some(Time("2024-01-01T00:10:00Z".parse().expect("t")))
        );
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let d = deployment(
            json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                            "lastUpdateTime": "2024-01-01T00:49:00Z", "lastTransitionTime": "2024-01-01T00:10:00Z"}]}),
        );
        let old = rs("old", 3, 3, 1, "1");
        let new = rs("web-new", 1, 0, 2, "2");
        let early = "2024-01-01T00:58:00Z".parse().expect("t");
        let s = rollout(&[&old, &new], Some(&new), &d, early);
        assert_eq!(
            get(&s, PROGRESSING).and_then(|c| c.reason.as_deref()),
            Some(RS_UPDATED)
        );
        assert_eq!(requeue_stuck(&d, &s, early), Some(Duration::from_secs(60)));
        let s = rollout(&[&old, &new], Some(&new), &d, now());
        let p = get(&s, PROGRESSING).expect("progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("False", Some(TIMED_OUT))
        );
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"web-new\" has timed out progressing.")
        );
    }

    #[test]
    fn availability_below_the_floor_is_reported() {
        let d = deployment(json!({}));
        let new = rs("new", 3, 2, 2, "2");
        let s = calculate(&[&new], Some(&new), &d, now());
        let a = get(&s, AVAILABLE).expect("available");
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("False", Some(MIN_UNAVAILABLE))
        );
    }

    #[test]
    fn replicaset_failures_surface_on_the_deployment() {
        let d = deployment(json!({}));
        let mut new = rs("new", 3, 0, 2, "2");
        new.status.as_mut().expect("status").conditions = Some(vec![serde_json::from_value(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota",
            "lastTransitionTime": "2024-01-01T00:00:00Z"}))
        .expect("c")]);
        let s = rollout(&[&new], Some(&new), &d, now());
        assert_eq!(
            get(&s, REPLICA_FAILURE).and_then(|c| c.reason.as_deref()),
            Some("FailedCreate")
        );
        let healthy = rs("new", 3, 0, 2, "2");
        let mut d2 = d.clone();
        d2.status = Some(s);
        let s2 = rollout(&[&healthy], Some(&healthy), &d2, now());
        assert!(get(&s2, REPLICA_FAILURE).is_none());
    }

    #[test]
    fn pause_and_resume_set_unknown_progressing() {
        let mut d = deployment(json!({}));
        d.spec.as_mut().expect("spec").paused = Some(true);
        let s = paused_update(&d, now()).expect("paused");
        assert_eq!(
            get(&s, PROGRESSING).and_then(|c| c.reason.as_deref()),
            Some(PAUSED)
        );
        d.status = Some(s);
        assert!(paused_update(&d, now()).is_none(), "already paused");
        d.spec.as_mut().expect("spec").paused = Some(false);
        let s = paused_update(&d, now()).expect("resumed");
        let p = get(&s, PROGRESSING).expect("p");
        assert_eq!(
            (p.status.as_str(), p.reason.as_deref()),
            ("Unknown", Some(RESUMED))
        );
    }
}
