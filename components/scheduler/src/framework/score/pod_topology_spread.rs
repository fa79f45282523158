//! PodTopologySpread score (`whenUnsatisfiable: ScheduleAnyway`): fewer matching pods in a
//! node's domains is better. Each constraint adds `count * log(domains + 2) + maxSkew - 1`;
//! scores are then inverted against the best and worst node. Nodes missing a topology key
//! score 0.

use std::collections::{HashMap, HashSet};

use crate::cache::Cache;
use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::{LABEL_HOSTNAME, PodInfo, SpreadConstraint, WhenUnsatisfiable};
use crate::framework::filter::pod_topology_spread::{
    count_matching, node_has_all_keys, node_included,
};
use crate::framework::score::MAX_NODE_SCORE;

pub struct Scorer {
    constraints: Vec<SpreadConstraint>,
    /// Per constraint: domain value → matching pods (not for hostname constraints, which
    /// count the node's own pods at score time).
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    /// Feasible nodes lacking a topology key.
    ignored: HashSet<usize>,
}

/// `topologyNormalizingWeight`: log(size + 2).
pub fn normalizing_weight(size: usize) -> f64 {
    ((size + 2) as f64).ln()
}

/// `scoreForCount`.
pub fn score_for_count(count: i64, max_skew: i32, weight: f64) -> f64 {
    count as f64 * weight + f64::from(max_skew - 1)
}

impl Scorer {
    /// Skipped when the pod has no ScheduleAnyway constraints.
    pub fn prescore(pod: &PodInfo, cache: &Cache, feasible: &[usize]) -> Option<Self> {
        let constraints: Vec<SpreadConstraint> = pod
            .spread_constraints
            .iter()
            .filter(|c| c.when == WhenUnsatisfiable::ScheduleAnyway)
            .cloned()
            .collect();
        if constraints.is_empty() || feasible.is_empty() {
            return None;
        }
        let mut ignored = HashSet::new();
        let mut counts = vec![HashMap::new(); constraints.len()];
        let mut sizes = vec![0usize; constraints.len()];
        for &slot in feasible {
            let labels = cache.node(slot).labels();
            if !node_has_all_keys(labels, &constraints) {
                ignored.insert(slot);
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                let v = labels[&c.topology_key].clone();
                if let std::collections::hash_map::Entry::Vacant(e) = counts[i].entry(v) {
                    e.insert(0i64);
                    sizes[i] += 1;
                }
            }
        }
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    sizes[i]
                };
                normalizing_weight(size)
            })
            .collect();
        for &slot in cache.order() {
            let n = cache.node(slot);
            let Some(data) = n.node.as_ref() else {
                continue;
            };
            if !node_has_all_keys(&data.labels, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !node_included(c, pod, data, &n.name) {
                    continue;
                }
                if let Some(count) = counts[i].get_mut(&data.labels[&c.topology_key]) {
                    *count += count_matching(&n.pods, &c.selector, &pod.namespace);
                }
            }
        }
        Some(Self {
            constraints,
            counts,
            weights,
            ignored,
        })
    }

    /// The raw (rounded) score of one feasible node; ignored nodes score 0.
    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let labels = node.labels();
        let mut score = 0.0;
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(v) = labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == LABEL_HOSTNAME {
                count_matching(&node.pods, &c.selector, &pod.namespace)
            } else {
                self.counts[i].get(v).copied().unwrap_or(0)
            };
            score += score_for_count(count, c.max_skew, self.weights[i]);
        }
        score.round() as i64
    }

    /// Inverts the scores: the node with the fewest matching pods gets 100.
    pub fn normalize(&self, feasible: &[usize], _cache: &Cache, scores: &mut [i64]) {
        let mut min = i64::MAX;
        let mut max = 0i64;
        for (i, slot) in feasible.iter().enumerate() {
            if self.ignored.contains(slot) {
                continue;
            }
            min = min.min(scores[i]);
            max = max.max(scores[i]);
        }
        for (i, slot) in feasible.iter().enumerate() {
            if self.ignored.contains(slot) {
                scores[i] = 0;
            } else if max == 0 {
                scores[i] = MAX_NODE_SCORE;
            } else {
                scores[i] = MAX_NODE_SCORE * (max + min - scores[i]) / max;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::objects::NodeObject;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn fewer_matching_pods_score_higher() {
        let mut c = Cache::default();
        for (name, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b"), ("n4", "")] {
            let mut labels = json!({"kubernetes.io/hostname": name});
            if !zone.is_empty() {
                labels["zone"] = json!(zone);
            }
            let n: NodeObject =
                serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                    .expect("node");
            c.set_node(&n);
        }
        for (i, node) in ["n1", "n1", "n2"].iter().enumerate() {
            c.add_pod(Arc::new(pod(
                json!({"metadata": {"name": format!("w{i}"), "labels": {"app": "web"}},
                "spec": {"nodeName": node}}),
            )));
        }
        let p = pod(
            json!({"metadata": {"name": "new", "labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        );
        let feasible: Vec<usize> = ["n1", "n2", "n3", "n4"]
            .iter()
            .map(|n| c.slot_of(n).expect("slot"))
            .collect();
        let s = Scorer::prescore(&p, &c, &feasible).expect("applies");
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|slot| s.score(&p, c.node(*slot)))
            .collect();
        // Two domains: weight ln(4) ≈ 1.386; zone a has 3 pods → round(4.16) = 4; zone b 0 → 0.
        assert_eq!(scores, [4, 4, 0, 0]);
        s.normalize(&feasible, &c, &mut scores);
        // 100 * (4 + 0 - s) / 4; n4 lacks the key and scores 0.
        assert_eq!(scores, [0, 0, 100, 0]);
    }

    #[test]
    fn helper_formulas() {
        assert!((normalizing_weight(0) - 2f64.ln()).abs() < 1e-9);
        assert!((score_for_count(3, 2, 1.0) - 4.0).abs() < 1e-9);
        assert!(Scorer::prescore(&pod(json!({})), &Cache::default(), &[0]).is_none());
    }
}
