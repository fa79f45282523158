//! Pod predicates as Kubernetes' controllers read them, and pods made from a template.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_UNKNOWN: &str = "Unknown";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

/// The pod's `status.phase`, `""` when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Kubernetes' `IsPodActive`: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let p = phase(pod);
    p != PHASE_SUCCEEDED && p != PHASE_FAILED && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's `Ready` condition turned `True`; `None` when it is not ready. A ready
/// condition without a transition time counts as ready since an unknown time (`Some(None)`).
fn ready_condition(pod: &Pod) -> Option<Option<Timestamp>> {
    pod.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Kubernetes' `IsPodReady`: the `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some()
}

/// Since when the pod has been ready, if it is and the time is known.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod).flatten()
}

/// Kubernetes' `IsPodAvailable`: ready, and for longer than `min_ready_seconds` (a ready pod
/// without a transition time is available only when `min_ready_seconds` is 0).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_condition(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now,
    }
}

/// For a ready pod that is not available yet: how long until it is.
pub fn until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<SignedDuration> {
    if min_ready_seconds <= 0 || is_available(pod, min_ready_seconds, now) {
        return None;
    }
    let since = ready_since(pod)?;
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds));
    Some(at.duration_since(now).max(SignedDuration::ZERO))
}

/// The highest restart count of the pod's containers.
pub fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// The pod a workload creates from its template (Kubernetes' `GetPodFromTemplate`): the
/// template's labels, annotations, finalizers and spec, `generateName` `<owner>-`, and the
/// controller reference.
pub fn from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    namespace: &str,
    controller: OwnerReference,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            namespace: Some(namespace.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn active_excludes_finished_and_terminating() {
        assert!(is_active(&pod(json!({"status": {"phase": "Running"}}))));
        assert!(is_active(&pod(json!({}))));
        assert!(!is_active(&pod(json!({"status": {"phase": "Succeeded"}}))));
        assert!(!is_active(&pod(json!({"status": {"phase": "Failed"}}))));
        assert!(!is_active(&pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})
        )));
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
        ]}}));
        let t0: Timestamp = "2024-01-01T00:00:00Z".parse().expect("t");
        assert!(is_ready(&p));
        assert!(is_available(&p, 0, t0));
        assert!(!is_available(&p, 10, t0 + SignedDuration::from_secs(10)));
        assert!(is_available(&p, 10, t0 + SignedDuration::from_secs(11)));
        assert_eq!(
            until_available(&p, 10, t0 + SignedDuration::from_secs(4)),
            Some(SignedDuration::from_secs(6))
        );
        let not_ready =
            pod(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert!(!is_ready(&not_ready));
        assert!(!is_available(&not_ready, 0, t0));
    }

    #[test]
    fn pods_from_templates_carry_metadata_and_owner() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "a"}, "annotations": {"x": "y"}, "name": "ignored"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))
        .expect("template");
        let r = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let p = from_template(&t, "web", "ns", r);
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["metadata"]["generateName"], "web-");
        assert!(v["metadata"].get("name").is_none());
        assert_eq!(v["metadata"]["labels"]["app"], "a");
        assert_eq!(v["metadata"]["annotations"]["x"], "y");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(v["spec"]["containers"][0]["image"], "i");
    }
}
