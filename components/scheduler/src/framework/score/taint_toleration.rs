//! TaintToleration score: fewer untolerated `PreferNoSchedule` taints is better; counts are
//! normalized in reverse (no such taint anywhere: every node scores 100).

use k8s_openapi::api::core::v1::Toleration;

use crate::cache::node_info::NodeData;
use crate::cache::pod_info::PodInfo;
use crate::framework::filter::taint_toleration::tolerated;

pub struct Scorer {
    /// The pod's tolerations that can apply to PreferNoSchedule (that effect, or none).
    tolerations: Vec<Toleration>,
}

impl Scorer {
    pub fn prescore(pod: &PodInfo) -> Self {
        Self {
            tolerations: pod
                .tolerations
                .iter()
                .filter(|t| {
                    matches!(
                        t.effect.as_deref(),
                        None | Some("") | Some("PreferNoSchedule")
                    )
                })
                .cloned()
                .collect(),
        }
    }

    pub fn score(&self, node: &NodeData) -> i64 {
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&self.tolerations, t))
            .count() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::score::default_normalize;
    use serde_json::json;

    fn node(taints: serde_json::Value) -> NodeData {
        let obj: crate::objects::NodeObject =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"taints": taints}}))
                .expect("node");
        NodeData::from_object(&obj)
    }

    #[test]
    fn untolerated_prefer_no_schedule_taints_lower_the_score() {
        let p = pod(json!({"spec": {"tolerations": [
            {"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"},
            {"key": "b", "operator": "Exists", "effect": "NoSchedule"}]}}));
        let s = Scorer::prescore(&p);
        let mut scores = vec![
            s.score(&node(json!([]))),
            s.score(&node(json!([{"key": "a", "effect": "PreferNoSchedule"}]))),
            // A NoSchedule toleration does not cover PreferNoSchedule.
            s.score(&node(json!([{"key": "b", "effect": "PreferNoSchedule"}, {"key": "c", "effect": "PreferNoSchedule"}]))),
            s.score(&node(json!([{"key": "c", "effect": "NoSchedule"}]))),
        ];
        assert_eq!(scores, [0, 0, 2, 0]);
        default_normalize(&mut scores, true);
        assert_eq!(scores, [100, 100, 0, 100]);
    }
}
