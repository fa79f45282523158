//! NodeUnschedulable filter: cordoned nodes (`spec.unschedulable`) take only pods that
//! tolerate the `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::cache::node_info::NodeData;
use crate::cache::pod_info::PodInfo;
use crate::framework::filter::taint_toleration::tolerated;
use crate::framework::{Plugin, Status};

pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

pub fn filter(pod: &PodInfo, node: &NodeData) -> Option<Status> {
    if !node.unschedulable {
        return None;
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    if tolerated(&pod.tolerations, &taint) {
        return None;
    }
    Some(Status::unresolvable(
        Plugin::NodeUnschedulable,
        ERR_REASON_UNSCHEDULABLE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::Code;
    use serde_json::json;

    #[test]
    fn cordoned_nodes_reject_unless_tolerated() {
        let obj: crate::objects::NodeObject = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}}),
        )
        .expect("node");
        let n = NodeData::from_object(&obj);
        let s = filter(&pod(json!({})), &n).expect("rejected");
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.reasons, [ERR_REASON_UNSCHEDULABLE]);
        let tolerant = pod(json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}));
        assert!(filter(&tolerant, &n).is_none());
        let schedulable = NodeData {
            unschedulable: false,
            ..n
        };
        assert!(filter(&pod(json!({})), &schedulable).is_none());
    }
}
