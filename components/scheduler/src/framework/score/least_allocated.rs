//! NodeResourcesFit score, `LeastAllocated` strategy (cpu and memory, weight 1 each): the
//! share of allocatable left free after placing the pod. Requests use Kubernetes' non-zero
//! defaults (100m cpu, 200 MiB memory for containers without requests) so that empty pods
//! still spread.

use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::PodInfo;
use crate::framework::score::MAX_NODE_SCORE;

/// `leastRequestedScore`.
pub fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(alloc) = node.allocatable() else {
        return 0;
    };
    let resources = [
        (
            alloc.milli_cpu,
            node.non_zero_milli_cpu + pod.non_zero_milli_cpu,
        ),
        (alloc.memory, node.non_zero_memory + pod.non_zero_memory),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (capacity, requested) in resources {
        if capacity == 0 {
            continue;
        }
        sum += least_requested(requested, capacity);
        weights += 1;
    }
    if weights == 0 { 0 } else { sum / weights }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::node_info::NodeData;
    use crate::cache::pod_info::tests::pod;
    use serde_json::json;
    use std::sync::Arc;

    fn node(cpu: &str, mem: &str) -> NodeInfo {
        let obj: crate::objects::NodeObject = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": cpu, "memory": mem}}}),
        )
        .expect("node");
        NodeInfo::new("n", Some(NodeData::from_object(&obj)))
    }

    fn requesting(name: &str, cpu: &str, mem: &str) -> PodInfo {
        pod(
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}),
        )
    }

    #[test]
    fn kubernetes_documented_example() {
        // Kubernetes' least_allocated_test: a 4000m/10000 node with 3000m/5000 requested
        // scores ((4000-3000)*100/4000 + (10000-5000)*100/10000) / 2 = (25 + 50) / 2 = 37.
        let mut n = node("4", "10000");
        n.add_pod(Arc::new(requesting("a", "3", "5000")));
        assert_eq!(score(&requesting("b", "0", "0"), &n), 37);
    }

    #[test]
    fn empty_pods_count_with_non_zero_defaults() {
        let n = node("1", "2000Mi");
        let empty = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
        // cpu: (1000-100)*100/1000 = 90; memory: (2000-200)*100/2000 = 90.
        assert_eq!(score(&empty, &n), 90);
        assert_eq!(least_requested(5, 4), 0);
        assert_eq!(least_requested(1, 0), 0);
    }
}
