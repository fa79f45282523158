//! Pod status writes of the scheduler: the `PodScheduled` condition after a failed
//! attempt, `status.nominatedNodeName` after preemption, and the `DisruptionTarget`
//! condition on preemption victims. Written as strategic-merge patches of `pods/status`
//! (conditions merge by type), like client-go's `PatchPodStatus`.

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::cache::pod_info::PodInfo;
use crate::error::{Error, Result};

/// `v1.PodReasonUnschedulable`.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// `v1.PodReasonSchedulerError`.
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";

/// What to do with `status.nominatedNodeName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nomination {
    Keep,
    Set(String),
    Clear,
}

/// The `PodScheduled=False` condition a failed attempt writes.
pub fn unscheduled_condition(reason: &str, message: &str) -> PodCondition {
    PodCondition {
        type_: "PodScheduled".into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(Time(Timestamp::now())),
        last_probe_time: None,
        observed_generation: None,
    }
}

/// `podutil.UpdatePodCondition` as a decision: the condition to write, keeping the old
/// transition time when the status did not change, or `None` when nothing changed.
pub fn condition_update(old: Option<&PodCondition>, mut new: PodCondition) -> Option<PodCondition> {
    let Some(old) = old else {
        return Some(new);
    };
    if old.status == new.status {
        new.last_transition_time = old.last_transition_time.clone();
    }
    let same = old.status == new.status && old.reason == new.reason && old.message == new.message;
    (!same).then_some(new)
}

/// The strategic-merge patch body for a condition and a nomination change.
pub fn status_patch(condition: Option<&PodCondition>, nomination: &Nomination) -> Option<Value> {
    let mut status = serde_json::Map::new();
    if let Some(c) = condition {
        status.insert("conditions".into(), json!([c]));
    }
    match nomination {
        Nomination::Keep => {}
        Nomination::Set(n) => {
            status.insert("nominatedNodeName".into(), json!(n));
        }
        Nomination::Clear => {
            status.insert("nominatedNodeName".into(), Value::Null);
        }
    }
    (!status.is_empty()).then(|| json!({ "status": status }))
}

/// Writes the failed attempt's condition and nomination, skipping no-op writes.
pub async fn update_pod_status(
    client: Client,
    pod: &PodInfo,
    condition: PodCondition,
    nomination: Nomination,
) -> Result<()> {
    let nomination = match nomination {
        Nomination::Set(n) if n == pod.nominated_node_name => Nomination::Keep,
        Nomination::Clear if pod.nominated_node_name.is_empty() => Nomination::Keep,
        other => other,
    };
    let condition = condition_update(pod.scheduled_condition.as_ref(), condition);
    let Some(body) = status_patch(condition.as_ref(), &nomination) else {
        return Ok(());
    };
    patch_status(client, &pod.namespace, &pod.name, body).await
}

/// Marks a victim `DisruptionTarget` (reason `PreemptionByScheduler`) before deleting it.
pub async fn mark_preempted(client: Client, victim: &PodInfo, scheduler_name: &str) -> Result<()> {
    let condition = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some("PreemptionByScheduler".into()),
        message: Some(format!(
            "{scheduler_name}: preempting to accommodate a higher priority pod"
        )),
        last_transition_time: Some(Time(Timestamp::now())),
        last_probe_time: None,
        observed_generation: None,
    };
    let body = json!({"status": {"conditions": [condition]}});
    patch_status(client, &victim.namespace, &victim.name, body).await
}

async fn patch_status(client: Client, namespace: &str, name: &str, body: Value) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(body))
        .await
        .map(|_| ())
        .map_err(|e| Error::api("patch status of pod", format!("{namespace}/{name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_conditions_are_not_rewritten() {
        let old = unscheduled_condition(
            REASON_UNSCHEDULABLE,
            "0/1 nodes are available: 1 Too many pods.",
        );
        let same = unscheduled_condition(
            REASON_UNSCHEDULABLE,
            "0/1 nodes are available: 1 Too many pods.",
        );
        assert!(condition_update(Some(&old), same).is_none());
        let changed = unscheduled_condition(
            REASON_UNSCHEDULABLE,
            "0/2 nodes are available: 2 Too many pods.",
        );
        let written = condition_update(Some(&old), changed).expect("changed");
        assert_eq!(written.last_transition_time, old.last_transition_time);
        assert!(condition_update(None, old.clone()).is_some());
    }

    #[test]
    fn patches_merge_conditions_and_clear_nominations() {
        let c = unscheduled_condition(REASON_UNSCHEDULABLE, "m");
        let p = status_patch(Some(&c), &Nomination::Set("n1".into())).expect("patch");
        assert_eq!(p["status"]["nominatedNodeName"], "n1");
        assert_eq!(p["status"]["conditions"][0]["type"], "PodScheduled");
        assert_eq!(p["status"]["conditions"][0]["reason"], "Unschedulable");
        let clear = status_patch(None, &Nomination::Clear).expect("patch");
        assert!(clear["status"]["nominatedNodeName"].is_null());
        assert!(status_patch(None, &Nomination::Keep).is_none());
    }
}
