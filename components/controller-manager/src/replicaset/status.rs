//! A ReplicaSet's status from the pods it owns (Kubernetes' `calculateStatus`).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::workload::{pods, selector};

/// The condition a ReplicaSet carries while it cannot create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const FAILED_CREATE: &str = "FailedCreate";
pub const FAILED_DELETE: &str = "FailedDelete";

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(rs: &ReplicaSet) -> i32 {
    rs.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// The new status: counts over `owned` (the active pods the ReplicaSet owns), and the
/// `ReplicaFailure` condition added when the last manage step failed (`manage_error`) and
/// removed once one succeeds. An existing failure condition is kept as it is.
pub fn calculate(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let template_selector: kube::core::Selector = template_labels.into_iter().collect();
    let min_ready = min_ready_seconds(rs);
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for p in owned {
        if selector::matches(&template_selector, p.metadata.labels.as_ref()) {
            labeled += 1;
        }
        if pods::is_ready(p) {
            ready += 1;
            if pods::is_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status
        .conditions
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_error {
        Some(message) if !has_failure => {
            let diff = owned.len() as i64 - i64::from(spec_replicas(rs));
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => FAILED_CREATE,
                std::cmp::Ordering::Greater => FAILED_DELETE,
                std::cmp::Ordering::Equal => "",
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(c) = status.conditions.as_mut() {
                c.retain(|c| c.type_ != REPLICA_FAILURE);
            }
        }
        _ => {}
    }
    status.replicas = i32::try_from(owned.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = Some(labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// Whether `new` differs from what the ReplicaSet shows (Kubernetes also writes when only
/// `observedGeneration` lags).
pub fn needs_update(rs: &ReplicaSet, new: &ReplicaSetStatus) -> bool {
    let old = rs.status.clone().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    let conditions = |s: &ReplicaSetStatus| s.conditions.clone().unwrap_or_default();
    old.replicas != new.replicas
        || z(old.fully_labeled_replicas) != z(new.fully_labeled_replicas)
        || z(old.ready_replicas) != z(new.ready_replicas)
        || z(old.available_replicas) != z(new.available_replicas)
        || rs.metadata.generation.unwrap_or(0) != old.observed_generation.unwrap_or(0)
        || conditions(&old) != conditions(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(min_ready: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "x"}}}},
            "status": {"replicas": 0, "observedGeneration": 1}
        }))
        .expect("rs")
    }

    fn pod(labels: serde_json::Value, ready_at: Option<&str>) -> Arc<Pod> {
        let conditions = match ready_at {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([{"type": "Ready", "status": "False"}]),
        };
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"labels": labels}, "status": {"conditions": conditions}}),
            )
            .expect("pod"),
        )
    }

    #[test]
    fn counts_labeled_ready_and_available() {
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().expect("now");
        let owned = vec![
            pod(
                json!({"app": "web", "tier": "x"}),
                Some("2024-01-01T00:00:00Z"),
            ),
            pod(json!({"app": "web"}), Some("2024-01-01T00:00:55Z")),
            pod(json!({"app": "web", "tier": "x"}), None),
        ];
        let s = calculate(&rs(10), &owned, None, now);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1), "one ready for only 5s of 10");
        assert!(needs_update(&rs(10), &s));
    }

    #[test]
    fn failure_condition_is_added_once_and_removed_on_success() {
        let now: Timestamp = "2024-01-01T00:00:00Z".parse().expect("now");
        let mut r = rs(0);
        let s = calculate(&r, &[], Some("pods \"web-x\" is forbidden: quota"), now);
        let c = &s.conditions.clone().expect("conditions")[0];
        assert_eq!(c.type_, REPLICA_FAILURE);
        assert_eq!(c.reason.as_deref(), Some(FAILED_CREATE));
        r.status = Some(s);
        let again = calculate(&r, &[], Some("another error"), now);
        let conditions = again.conditions.clone().expect("kept");
        assert_eq!(conditions.len(), 1);
        assert_eq!(
            conditions[0].message.as_deref(),
            Some("pods \"web-x\" is forbidden: quota")
        );
        r.status = Some(again);
        let ok = calculate(&r, &[], None, now);
        assert!(ok.conditions.unwrap_or_default().is_empty());
    }

    #[test]
    fn unchanged_status_with_current_generation_needs_no_write() {
        let mut r = rs(0);
        r.metadata.generation = Some(1);
        let s = calculate(&r, &[], None, "2024-01-01T00:00:00Z".parse().expect("now"));
        r.status = Some(s.clone());
        assert!(!needs_update(&r, &s));
    }
}
