//! NodeResourcesFit filter: the pod's requests (containers summed, init containers as the
//! maximum, overhead added) must fit into `allocatable` minus what the node's bound and
//! assumed pods request, and the node must have room for one more pod.
//!
//! Every shortfall is reported (`Insufficient cpu`, `Insufficient memory`, `Too many pods`,
//! …). A request larger than the node's whole allocatable cannot be met by preempting
//! anything, so that rejection is unresolvable.

use std::borrow::Cow;

use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::PodInfo;
use crate::framework::{Code, Plugin, Status};

pub const TOO_MANY_PODS: &str = "Too many pods";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let alloc = node.allocatable()?;
    let used = &node.requested;
    let req = &pod.requests;
    let mut reasons: Vec<Cow<'static, str>> = Vec::new();
    let mut unresolvable = false;
    if node.pods.len() as i64 + 1 > alloc.allowed_pods {
        reasons.push(TOO_MANY_PODS.into());
    }
    if !req.is_zero() {
        let mut check = |want: i64, have: i64, in_use: i64, reason: Cow<'static, str>| {
            if want > 0 && want > have - in_use {
                unresolvable |= want > have;
                reasons.push(reason);
            }
        };
        check(
            req.milli_cpu,
            alloc.milli_cpu,
            used.milli_cpu,
            "Insufficient cpu".into(),
        );
        check(
            req.memory,
            alloc.memory,
            used.memory,
            "Insufficient memory".into(),
        );
        check(
            req.ephemeral_storage,
            alloc.ephemeral_storage,
            used.ephemeral_storage,
            "Insufficient ephemeral-storage".into(),
        );
        for (name, want) in &req.scalar {
            check(
                *want,
                alloc.scalar(name),
                used.scalar(name),
                format!("Insufficient {name}").into(),
            );
        }
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Status {
        code: if unresolvable {
            Code::UnschedulableAndUnresolvable
        } else {
            Code::Unschedulable
        },
        plugin: Plugin::NodeResourcesFit,
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::node_info::NodeData;
    use crate::cache::pod_info::tests::pod;
    use serde_json::json;
    use std::sync::Arc;

    fn node(alloc: serde_json::Value) -> NodeInfo {
        let obj: crate::objects::NodeObject = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": alloc}}),
        )
        .expect("node");
        NodeInfo::new("n", Some(NodeData::from_object(&obj)))
    }

    fn requesting(name: &str, req: serde_json::Value) -> PodInfo {
        pod(
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "resources": {"requests": req}}]}}),
        )
    }

    #[test]
    fn requests_must_fit_the_remaining_allocatable() {
        let mut n =
            node(json!({"cpu": "2", "memory": "4Gi", "pods": "110", "example.com/gpu": "1"}));
        n.add_pod(Arc::new(requesting(
            "a",
            json!({"cpu": "1500m", "memory": "1Gi"}),
        )));
        assert!(
            filter(
                &requesting("b", json!({"cpu": "500m", "memory": "3Gi"})),
                &n
            )
            .is_none()
        );
        let s = filter(
            &requesting("c", json!({"cpu": "600m", "memory": "3500Mi"})),
            &n,
        )
        .expect("rejected");
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.reasons, ["Insufficient cpu", "Insufficient memory"]);
        let gpu = filter(&requesting("d", json!({"example.com/gpu": "2"})), &n).expect("rejected");
        assert_eq!(gpu.reasons, ["Insufficient example.com/gpu"]);
        assert_eq!(gpu.code, Code::UnschedulableAndUnresolvable);
    }

    #[test]
    fn requests_beyond_the_whole_node_are_unresolvable() {
        let n = node(json!({"cpu": "2", "memory": "4Gi", "pods": "110"}));
        let s = filter(&requesting("big", json!({"cpu": "3"})), &n).expect("rejected");
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.reasons, ["Insufficient cpu"]);
    }

    #[test]
    fn pod_count_is_checked_even_for_zero_requests() {
        let mut n = node(json!({"cpu": "2", "memory": "4Gi", "pods": "1"}));
        assert!(filter(&pod(json!({"spec": {"containers": [{"name": "c"}]}})), &n).is_none());
        n.add_pod(Arc::new(requesting("a", json!({}))));
        let s = filter(
            &pod(json!({"metadata": {"name": "z"}, "spec": {"containers": [{"name": "c"}]}})),
            &n,
        )
        .expect("rejected");
        assert_eq!(s.reasons, [TOO_MANY_PODS]);
    }

    #[test]
    fn init_containers_count_with_their_maximum() {
        let n = node(json!({"cpu": "1", "memory": "1Gi", "pods": "10"}));
        let p = pod(
            json!({"spec": {"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1500m"}}}],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}}),
        );
        assert_eq!(
            filter(&p, &n).map(|s| s.reasons),
            Some(vec!["Insufficient cpu".into()])
        );
        let overhead = pod(json!({"spec": {"overhead": {"cpu": "950m"},
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}}));
        assert!(filter(&overhead, &n).is_some());
    }
}
