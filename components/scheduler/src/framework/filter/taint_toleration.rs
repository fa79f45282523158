//! TaintToleration filter: a node's `NoSchedule` and `NoExecute` taints must all be
//! tolerated. Rejections name the first untolerated taint, as Kubernetes does.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::cache::node_info::NodeData;
use crate::cache::pod_info::PodInfo;
use crate::framework::{Plugin, Status};

/// `v1.Toleration.ToleratesTaint`: effects and keys must match where the toleration names
/// them; `Exists` ignores the value, `Equal` (or empty) compares it.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first `NoSchedule`/`NoExecute` taint none of the tolerations tolerates.
pub fn first_untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(tolerations, t))
}

pub fn filter(pod: &PodInfo, node: &NodeData) -> Option<Status> {
    let taint = first_untolerated(&node.taints, &pod.tolerations)?;
    Some(Status::unresolvable(
        Plugin::TaintToleration,
        format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::Code;
    use serde_json::json;

    fn node(taints: serde_json::Value) -> NodeData {
        let obj: crate::objects::NodeObject =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": taints}}))
                .expect("node");
        NodeData::from_object(&obj)
    }

    #[test]
    fn untolerated_control_plane_taint_is_reported_like_kubernetes() {
        let n =
            node(json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]));
        let s = filter(&pod(json!({"spec": {"containers": []}})), &n).expect("rejected");
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.reasons,
            ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
        );
        let tolerant = pod(json!({"spec": {"tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}));
        assert!(filter(&tolerant, &n).is_none());
    }

    #[test]
    fn prefer_no_schedule_never_rejects_and_values_must_match_for_equal() {
        let n = node(
            json!([{"key": "k", "value": "v", "effect": "PreferNoSchedule"},
                            {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
        );
        let wrong_value =
            pod(json!({"spec": {"tolerations": [{"key": "dedicated", "value": "cpu"}]}}));
        let s = filter(&wrong_value, &n).expect("rejected");
        assert_eq!(
            s.reasons,
            ["node(s) had untolerated taint {dedicated: gpu}"]
        );
        let right = pod(
            json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}]}}),
        );
        assert!(filter(&right, &n).is_none());
        let wrong_effect = pod(
            json!({"spec": {"tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        );
        assert!(filter(&wrong_effect, &n).is_some());
        let everything = pod(json!({"spec": {"tolerations": [{"operator": "Exists"}]}}));
        assert!(filter(&everything, &n).is_none());
    }
}
