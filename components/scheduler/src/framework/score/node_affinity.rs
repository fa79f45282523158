//! NodeAffinity score: the sum of the weights of the preferred node affinity terms a node
//! matches, normalized to 0–100 by the best node.

use crate::cache::node_info::NodeData;
use crate::cache::pod_info::PodInfo;

pub struct Scorer;

impl Scorer {
    /// Skipped for pods without preferred terms.
    pub fn prescore(pod: &PodInfo) -> Option<Self> {
        (!pod.preferred_node_affinity.is_empty()).then_some(Self)
    }

    pub fn score(&self, pod: &PodInfo, node: &NodeData, name: &str) -> i64 {
        pod.preferred_node_affinity
            .iter()
            .filter(|(_, t)| t.matches(&node.labels, name))
            .map(|(w, _)| *w)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::score::default_normalize;
    use serde_json::json;

    #[test]
    fn matching_preferred_terms_add_their_weights() {
        let p = pod(
            json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 2, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}}}}),
        );
        let s = Scorer::prescore(&p).expect("applies");
        let node = |labels: serde_json::Value| {
            let obj: crate::objects::NodeObject =
                serde_json::from_value(json!({"metadata": {"name": "n", "labels": labels}}))
                    .expect("node");
            NodeData::from_object(&obj)
        };
        let mut scores = vec![
            s.score(&p, &node(json!({"disk": "ssd", "zone": "a"})), "n"),
            s.score(&p, &node(json!({"disk": "ssd"})), "n"),
            s.score(&p, &node(json!({})), "n"),
        ];
        assert_eq!(scores, [7, 2, 0]);
        default_normalize(&mut scores, false);
        assert_eq!(scores, [100, 28, 0]);
        assert!(Scorer::prescore(&pod(json!({}))).is_none());
    }
}
