//! NodeAffinity filter: `spec.nodeSelector` and the required node affinity
//! (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`; terms ORed, expressions ANDed).

use crate::cache::node_info::NodeData;
use crate::cache::pod_info::PodInfo;
use crate::framework::{Plugin, Status};

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub fn filter(pod: &PodInfo, node: &NodeData, node_name: &str) -> Option<Status> {
    if pod.matches_node_selector(&node.labels, node_name) {
        return None;
    }
    Some(Status::unresolvable(Plugin::NodeAffinity, ERR_REASON_POD))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use serde_json::json;

    fn node(labels: serde_json::Value) -> NodeData {
        let obj: crate::objects::NodeObject =
            serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}}))
                .expect("node");
        NodeData::from_object(&obj)
    }

    #[test]
    fn node_selector_must_match_every_label() {
        let p = pod(json!({"spec": {"nodeSelector": {"disk": "ssd", "zone": "a"}}}));
        assert!(
            filter(
                &p,
                &node(json!({"disk": "ssd", "zone": "a", "x": "y"})),
                "n"
            )
            .is_none()
        );
        let s = filter(&p, &node(json!({"disk": "ssd"})), "n").expect("rejected");
        assert_eq!(s.reasons, [ERR_REASON_POD]);
    }

    #[test]
    fn required_affinity_terms_are_ored_and_combine_with_the_selector() {
        let p = pod(
            json!({"spec": {"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
                {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]}}}}}),
        );
        assert!(filter(&p, &node(json!({"disk": "ssd", "zone": "b"})), "n").is_none());
        assert!(filter(&p, &node(json!({"disk": "ssd", "gpu": "1"})), "n").is_none());
        assert!(filter(&p, &node(json!({"disk": "ssd", "zone": "c"})), "n").is_some());
        assert!(filter(&p, &node(json!({"zone": "a"})), "n").is_some());
    }
}
