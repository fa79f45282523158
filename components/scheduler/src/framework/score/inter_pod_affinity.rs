//! InterPodAffinity score: per topology domain, the weights of the incoming pod's preferred
//! (anti-)affinity terms matched by pods there, plus the existing pods' preferred terms and
//! required affinity terms (hard weight 1) that the incoming pod matches; anti-affinity
//! subtracts. Scores are normalized min–max to 0–100.

use std::collections::HashMap;

use crate::cache::Cache;
use crate::cache::node_info::NodeData;
use crate::cache::pod_info::{AffinityTerm, PodInfo, WeightedTerm};
use crate::framework::CycleState;
use crate::framework::score::MAX_NODE_SCORE;
use crate::labels::Labels;

/// `hardPodAffinityWeight`, the default of InterPodAffinityArgs.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// topology key → value → score.
type TopologyScore = HashMap<String, HashMap<String, i64>>;

fn process_term(
    scores: &mut TopologyScore,
    term: &AffinityTerm,
    weight: i64,
    pod: &PodInfo,
    ns_labels: Option<&Labels>,
    node_labels: &Labels,
) {
    if !term.matches(pod, ns_labels) {
        return;
    }
    if let Some(v) = node_labels.get(&term.topology_key) {
        *scores
            .entry(term.topology_key.clone())
            .or_default()
            .entry(v.clone())
            .or_default() += weight;
    }
}

fn process_terms(
    scores: &mut TopologyScore,
    terms: &[WeightedTerm],
    pod: &PodInfo,
    ns_labels: Option<&Labels>,
    node_labels: &Labels,
    sign: i64,
) {
    for t in terms {
        process_term(
            scores,
            &t.term,
            t.weight * sign,
            pod,
            ns_labels,
            node_labels,
        );
    }
}

pub struct Scorer {
    scores: TopologyScore,
}

impl Scorer {
    /// Skipped when neither the pod nor any placed pod has pod affinity.
    pub fn prescore(state: &CycleState, cache: &Cache) -> Option<Self> {
        let pod = &state.pod;
        let has_preferred =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !has_preferred && !cache.any_pod_with_affinity() {
            return None;
        }
        let own_ns = state.namespace_labels.as_ref();
        let mut scores = TopologyScore::new();
        for &slot in cache.order() {
            let node = cache.node(slot);
            let labels = node.labels();
            if labels.is_empty() || (!has_preferred && node.pods_with_affinity == 0) {
                continue;
            }
            for existing in &node.pods {
                if !has_preferred && !existing.has_pod_affinity {
                    continue;
                }
                let existing_ns = cache.namespace_labels(&existing.namespace);
                process_terms(
                    &mut scores,
                    &pod.preferred_affinity,
                    existing,
                    existing_ns,
                    labels,
                    1,
                );
                process_terms(
                    &mut scores,
                    &pod.preferred_anti_affinity,
                    existing,
                    existing_ns,
                    labels,
                    -1,
                );
                for t in &existing.required_affinity {
                    process_term(
                        &mut scores,
                        t,
                        HARD_POD_AFFINITY_WEIGHT,
                        pod,
                        own_ns,
                        labels,
                    );
                }
                process_terms(
                    &mut scores,
                    &existing.preferred_affinity,
                    pod,
                    own_ns,
                    labels,
                    1,
                );
                process_terms(
                    &mut scores,
                    &existing.preferred_anti_affinity,
                    pod,
                    own_ns,
                    labels,
                    -1,
                );
            }
        }
        if scores.is_empty() {
            return None;
        }
        Some(Self { scores })
    }

    pub fn score(&self, node: &NodeData) -> i64 {
        self.scores
            .iter()
            .filter_map(|(key, values)| node.labels.get(key).and_then(|v| values.get(v)))
            .sum()
    }
}

/// Min–max normalization to 0–100 (all equal: all 0).
pub fn normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::objects::NodeObject;
    use serde_json::json;
    use std::sync::Arc;

    fn cluster() -> Cache {
        let mut c = Cache::default();
        for (name, zone) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
            let n: NodeObject = serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name, "zone": zone}}}))
            .expect("node");
            c.set_node(&n);
        }
        c.add_pod(Arc::new(pod(json!({"metadata": {"name": "cache", "labels": {"app": "cache"}}, "spec": {"nodeName": "n1"}}))));
        c
    }

    fn scores(c: &Cache, p: PodInfo) -> Vec<i64> {
        let state = CycleState::new(Arc::new(p), c);
        let Some(s) = Scorer::prescore(&state, c) else {
            return vec![];
        };
        let mut v: Vec<i64> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                s.score(
                    c.node_by_name(n)
                        .and_then(|n| n.node.as_ref())
                        .expect("node"),
                )
            })
            .collect();
        normalize(&mut v);
        v
    }

    #[test]
    fn preferred_affinity_favours_the_matching_domain() {
        let p = pod(
            json!({"metadata": {"name": "web"}, "spec": {"affinity": {"podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}}]}}}}),
        );
        assert_eq!(scores(&cluster(), p), [100, 100, 0]);
    }

    #[test]
    fn preferred_anti_affinity_avoids_the_matching_host() {
        let p = pod(
            json!({"metadata": {"name": "web"}, "spec": {"affinity": {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}}]}}}}),
        );
        assert_eq!(scores(&cluster(), p), [0, 100, 100]);
    }

    #[test]
    fn existing_pods_required_affinity_attracts_matching_pods() {
        let mut c = cluster();
        c.add_pod(Arc::new(pod(json!({"metadata": {"name": "fan"}, "spec": {"nodeName": "n3", "affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "zone"}]}}}}))));
        let web = pod(json!({"metadata": {"name": "web", "labels": {"app": "web"}}}));
        assert_eq!(scores(&c, web), [0, 0, 100]);
        let other = pod(json!({"metadata": {"name": "other", "labels": {"app": "x"}}}));
        assert_eq!(scores(&c, other), Vec::<i64>::new());
    }
}
