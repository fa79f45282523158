//! How the Job controller reads pods and Job conditions: Kubernetes' tracking finalizer,
//! which pods count as failed, when a pod finished, and the condition bookkeeping
//! (`ensureJobConditionStatus`).

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::workload::pods;

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUSPENDED: &str = "Suspended";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";

pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_COMPLETIONS: &str = "CompletionsReached";
pub const MESSAGE_COMPLETIONS: &str = "Reached expected number of succeeded pods";

/// Whether the pod still carries the tracking finalizer.
pub fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Kubernetes' `onlyReplaceFailedPods`: with `podReplacementPolicy: Failed` (or a pod
/// failure policy) a terminating pod is neither failed nor replaced until it is `Failed`.
pub fn only_replace_failed(job: &Job) -> bool {
    job.spec.as_ref().is_some_and(|s| {
        s.pod_replacement_policy.as_deref() == Some("Failed") || s.pod_failure_policy.is_some()
    })
}

/// Kubernetes' `isPodFailed`: phase `Failed`, or — unless only failed pods are replaced —
/// deleted before it succeeded (it will never get to report).
pub fn is_failed(pod: &Pod, job: &Job) -> bool {
    let phase = pods::phase(pod);
    if phase == pods::PHASE_FAILED {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase != pods::PHASE_SUCCEEDED
}

/// Kubernetes' `CountTerminatingPods` predicate: being deleted and not yet finished.
pub fn is_terminating(pod: &Pod) -> bool {
    let phase = pods::phase(pod);
    pod.metadata.deletion_timestamp.is_some()
        && phase != pods::PHASE_FAILED
        && phase != pods::PHASE_SUCCEEDED
}

/// When the pod finished (Kubernetes' `getFinishedTime`): the latest container
/// termination, else when it stopped being ready, else its deletion, else its creation.
pub fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let from_containers = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    from_containers
        .or_else(|| {
            status?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "False")?
                .last_transition_time
                .as_ref()
                .map(|t| t.0)
        })
        .or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the Job has the condition `type_` with status `True`.
pub fn has_true(job: &Job, type_: &str) -> bool {
    condition(job, type_).is_some_and(|c| c.status == "True")
}

/// The True condition of `type_`, if any.
pub fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    condition(job, type_).filter(|c| c.status == "True")
}

/// Kubernetes' `IsJobFinished`: `Complete` or `Failed` is `True`.
pub fn is_finished(job: &Job) -> bool {
    has_true(job, COMPLETE) || has_true(job, FAILED)
}

/// When the Job finished: the transition time of its `Complete`/`Failed` condition.
pub fn finished_time(job: &Job) -> Option<Timestamp> {
    [COMPLETE, FAILED]
        .iter()
        .filter_map(|t| true_condition(job, t))
        .find_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// A new condition, both timestamps `now`.
pub fn new_condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: Some(reason.to_string()).filter(|r| !r.is_empty()),
        message: Some(message.to_string()).filter(|m| !m.is_empty()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Kubernetes' `ensureJobConditionStatus`: sets the condition of `type_` to `status` (with
/// reason and message) if it differs; a missing condition is only added when `True`.
/// Returns whether anything changed.
pub fn ensure(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status
            && c.reason.as_deref().unwrap_or("") == reason
            && c.message.as_deref().unwrap_or("") == message
        {
            return false;
        }
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.to_string();
        c.reason = Some(reason.to_string()).filter(|r| !r.is_empty());
        c.message = Some(message.to_string()).filter(|m| !m.is_empty());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    if status != "True" {
        return false;
    }
    conditions.push(new_condition(type_, reason, message, now));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn job(v: serde_json::Value) -> Job {
        serde_json::from_value(v).expect("job")
    }

    #[test]
    fn deleted_unfinished_pods_count_as_failed_unless_only_failed_are_replaced() {
        let deleted = pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Running"}}),
        );
        let default = job(json!({"spec": {"template": {}}}));
        let only_failed = job(json!({"spec": {"template": {}, "podReplacementPolicy": "Failed"}}));
        assert!(is_failed(&deleted, &default));
        assert!(!is_failed(&deleted, &only_failed));
        assert!(is_terminating(&deleted));
        let failed = pod(json!({"status": {"phase": "Failed"}}));
        assert!(is_failed(&failed, &only_failed));
        assert!(!is_terminating(&failed));
        let succeeded_deleted = pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Succeeded"}}),
        );
        assert!(!is_failed(&succeeded_deleted, &default));
    }

    #[test]
    fn finish_time_prefers_container_termination() {
        let p = pod(
            json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Failed",
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2024-01-01T00:00:09Z"}],
                "containerStatuses": [
                    {"name": "a", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:05Z"}}},
                    {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:07Z"}}}]}}),
        );
        assert_eq!(
            finished_at(&p).map(|t| t.to_string()).as_deref(),
            Some("2024-01-01T00:00:07Z")
        );
        let bare = pod(json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}}));
        assert_eq!(
            finished_at(&bare).map(|t| t.to_string()).as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
    }

    #[test]
    fn conditions_are_added_only_when_true_and_updated_on_change() {
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().expect("t");
        let later: Timestamp = "2024-01-01T00:01:00Z".parse().expect("t");
        let mut c = Vec::new();
        assert!(!ensure(
            &mut c,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(ensure(
            &mut c,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure(
            &mut c,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            later
        ));
        assert!(ensure(
            &mut c,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            later
        ));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, "False");
        assert_eq!(c[0].last_transition_time, Some(Time(later)));
    }
}
