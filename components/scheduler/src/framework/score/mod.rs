//! Score plugins with Kubernetes' default weights. Each plugin scores every feasible node
//! 0–100 (after its own normalization); the node's total is the weighted sum.
//!
//! | plugin | weight |
//! |---|---|
//! | TaintToleration (PreferNoSchedule) | 3 |
//! | NodeAffinity (preferred) | 2 |
//! | PodTopologySpread (ScheduleAnyway) | 2 |
//! | InterPodAffinity (preferred) | 2 |
//! | NodeResourcesFit (LeastAllocated) | 1 |
//! | NodeResourcesBalancedAllocation | 1 |
//! | ImageLocality | 1 |
//!
//! A plugin whose PreScore finds nothing to do (no preferred terms, a best-effort pod, …)
//! is skipped and adds nothing, as Kubernetes' `Skip` status does.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod least_allocated;
pub mod node_affinity;
pub mod pod_topology_spread;
pub mod taint_toleration;

use rayon::prelude::*;

use crate::cache::Cache;
use crate::framework::{CycleState, Plugin};

/// Kubernetes' `MaxNodeScore`.
pub const MAX_NODE_SCORE: i64 = 100;

/// The default profile's score weights, in the order scores are kept.
pub const WEIGHTS: [(Plugin, i64); 7] = [
    (Plugin::TaintToleration, 3),
    (Plugin::NodeAffinity, 2),
    (Plugin::NodeResourcesFit, 1),
    (Plugin::PodTopologySpread, 2),
    (Plugin::InterPodAffinity, 2),
    (Plugin::NodeResourcesBalancedAllocation, 1),
    (Plugin::ImageLocality, 1),
];

const TAINT: usize = 0;
const NODE_AFFINITY: usize = 1;
const FIT: usize = 2;
const SPREAD: usize = 3;
const POD_AFFINITY: usize = 4;
const BALANCED: usize = 5;
const IMAGE: usize = 6;

/// `DefaultNormalizeScore`: scales to 0–100 by the maximum; `reverse` flips the scale. All
/// zeros stay zero (or become 100 when reversed).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// Every plugin's PreScore result for one cycle.
struct Scorers {
    node_affinity: Option<node_affinity::Scorer>,
    taint: taint_toleration::Scorer,
    spread: Option<pod_topology_spread::Scorer>,
    pod_affinity: Option<inter_pod_affinity::Scorer>,
    balanced: bool,
    total_nodes: usize,
}

/// Scores the feasible nodes (cache slots) for the pod; returns each node's weighted total
/// in the same order.
pub fn score(state: &CycleState, cache: &Cache, feasible: &[usize]) -> Vec<i64> {
    let pod = &state.pod;
    let scorers = Scorers {
        node_affinity: node_affinity::Scorer::prescore(pod),
        taint: taint_toleration::Scorer::prescore(pod),
        spread: pod_topology_spread::Scorer::prescore(pod, cache, feasible),
        pod_affinity: inter_pod_affinity::Scorer::prescore(state, cache),
        balanced: balanced_allocation::applies(pod),
        total_nodes: cache.num_nodes(),
    };
    let raw: Vec<[i64; 7]> = feasible
        .par_iter()
        .map(|&slot| {
            let node = cache.node(slot);
            let mut s = [0i64; 7];
            let Some(data) = node.node.as_ref() else {
                return s;
            };
            s[TAINT] = scorers.taint.score(data);
            if let Some(na) = &scorers.node_affinity {
                s[NODE_AFFINITY] = na.score(pod, data, &node.name);
            }
            s[FIT] = least_allocated::score(pod, node);
            if let Some(sp) = &scorers.spread {
                s[SPREAD] = sp.score(pod, node);
            }
            if let Some(pa) = &scorers.pod_affinity {
                s[POD_AFFINITY] = pa.score(data);
            }
            if scorers.balanced {
                s[BALANCED] = balanced_allocation::score(pod, node);
            }
            s[IMAGE] = image_locality::score(pod, data, cache, scorers.total_nodes);
            s
        })
        .collect();

    let mut columns: Vec<Vec<i64>> = (0..WEIGHTS.len())
        .map(|i| raw.iter().map(|s| s[i]).collect())
        .collect();
    default_normalize(&mut columns[TAINT], true);
    if scorers.node_affinity.is_some() {
        default_normalize(&mut columns[NODE_AFFINITY], false);
    }
    if let Some(sp) = &scorers.spread {
        sp.normalize(feasible, cache, &mut columns[SPREAD]);
    }
    if scorers.pod_affinity.is_some() {
        inter_pod_affinity::normalize(&mut columns[POD_AFFINITY]);
    }
    (0..feasible.len())
        .map(|n| {
            WEIGHTS
                .iter()
                .enumerate()
                .map(|(i, (_, w))| columns[i][n] * w)
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_by_the_maximum() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, [0, 50, 100]);
        let mut r = vec![0, 1, 2];
        default_normalize(&mut r, true);
        assert_eq!(r, [100, 50, 0]);
        let mut zeros = vec![0, 0];
        default_normalize(&mut zeros, true);
        assert_eq!(zeros, [100, 100]);
        let mut zeros = vec![0, 0];
        default_normalize(&mut zeros, false);
        assert_eq!(zeros, [0, 0]);
    }

    #[test]
    fn weights_are_kubernetes_defaults() {
        let w = |p| WEIGHTS.iter().find(|(q, _)| *q == p).map(|(_, w)| *w);
        assert_eq!(w(Plugin::TaintToleration), Some(3));
        assert_eq!(w(Plugin::NodeAffinity), Some(2));
        assert_eq!(w(Plugin::PodTopologySpread), Some(2));
        assert_eq!(w(Plugin::InterPodAffinity), Some(2));
        assert_eq!(w(Plugin::NodeResourcesFit), Some(1));
        assert_eq!(w(Plugin::NodeResourcesBalancedAllocation), Some(1));
        assert_eq!(w(Plugin::ImageLocality), Some(1));
    }
}
