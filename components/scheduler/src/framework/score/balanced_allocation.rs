//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in
//! equal shares after placing the pod: `(1 - std) * 100`, the standard deviation of the
//! requested/allocatable fractions (for two resources `|f1 - f2| / 2`). Actual requests
//! count (no non-zero defaults), and best-effort pods skip the plugin (Kubernetes #129138).

use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::PodInfo;
use crate::framework::score::MAX_NODE_SCORE;

/// PreScore: whether the plugin scores this pod at all.
pub fn applies(pod: &PodInfo) -> bool {
    pod.requests.milli_cpu != 0 || pod.requests.memory != 0
}

/// `balancedResourceScorer` over (requested, allocatable) pairs.
pub fn balanced(resources: &[(i64, i64)]) -> i64 {
    let fractions: Vec<f64> = resources
        .iter()
        .filter(|(_, alloc)| *alloc != 0)
        .map(|(req, alloc)| (*req as f64 / *alloc as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions
                .iter()
                .map(|f| (f - mean) * (f - mean))
                .sum::<f64>()
                / n as f64)
                .sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

pub fn score(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let Some(alloc) = node.allocatable() else {
        return 0;
    };
    balanced(&[
        (
            node.requested.milli_cpu + pod.requests.milli_cpu,
            alloc.milli_cpu,
        ),
        (node.requested.memory + pod.requests.memory, alloc.memory),
    ])
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
    fn kubernetes_documented_examples() {
        // balanced_allocation_test: cpu 3000/4000 = 0.75, memory 5000/10000 = 0.5,
        // std = 0.125, score = (1 - 0.125) * 100 = 87.
        let mut n = node("4", "10000");
        n.add_pod(Arc::new(requesting("a", "3", "0")));
        assert_eq!(score(&requesting("b", "0", "5000"), &n), 87);
        // Equal shares score 100.
        let n = node("4", "8000");
        assert_eq!(score(&requesting("c", "2", "4000"), &n), 100);
        // Fractions above 1 are capped.
        assert_eq!(balanced(&[(8, 4), (4, 4)]), 100);
    }

    #[test]
    fn best_effort_pods_skip_the_plugin() {
        assert!(!applies(&pod(
            json!({"spec": {"containers": [{"name": "c"}]}})
        )));
        assert!(applies(&requesting("r", "100m", "0")));
    }
}
