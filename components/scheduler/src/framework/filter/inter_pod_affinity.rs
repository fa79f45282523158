//! InterPodAffinity filter: required pod affinity and anti-affinity by topology key, and
//! the required anti-affinity of pods already placed (which the incoming pod must not
//! violate either).
//!
//! PreFilter counts, per (topologyKey, value) pair, the existing pods that match the
//! incoming pod's terms and the existing pods whose anti-affinity matches the incoming pod;
//! each node's filter then only looks up its own label values.

use std::collections::HashMap;

use crate::cache::Cache;
use crate::cache::node_info::{NodeData, NodeInfo};
use crate::cache::pod_info::{AffinityTerm, PodInfo};
use crate::framework::{Plugin, Status};
use crate::labels::Labels;

pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

/// Matched-term counts per (topology key, value).
pub type TopologyCounts = HashMap<(String, String), i64>;

fn update(counts: &mut TopologyCounts, node_labels: &Labels, key: &str, delta: i64) {
    if let Some(v) = node_labels.get(key) {
        let pair = (key.to_string(), v.clone());
        let n = counts.entry(pair.clone()).or_default();
        *n += delta;
        if *n == 0 {
            counts.remove(&pair);
        }
    }
}

/// `podMatchesAllAffinityTerms`: no terms match nothing.
pub fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns_labels))
}

#[derive(Debug, Clone, Default)]
pub struct PreFilterState {
    /// Pairs where an existing pod's required anti-affinity matches the incoming pod.
    existing_anti_affinity: TopologyCounts,
    /// Pairs with existing pods matching all of the incoming pod's required affinity terms.
    affinity: TopologyCounts,
    /// Pairs with existing pods matching one of the incoming pod's anti-affinity terms.
    anti_affinity: TopologyCounts,
}

impl PreFilterState {
    pub fn compute(pod: &PodInfo, cache: &Cache) -> Self {
        let mut s = Self::default();
        let own_ns = cache.namespace_labels(&pod.namespace);
        if cache.any_pod_with_required_anti_affinity() {
            for &slot in cache.order() {
                let n = cache.node(slot);
                if n.pods_with_required_anti_affinity == 0 {
                    continue;
                }
                for existing in n.pods_with_required_anti_affinity() {
                    for t in &existing.required_anti_affinity {
                        if t.matches(pod, own_ns) {
                            update(
                                &mut s.existing_anti_affinity,
                                n.labels(),
                                &t.topology_key,
                                1,
                            );
                        }
                    }
                }
            }
        }
        if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
            return s;
        }
        for &slot in cache.order() {
            let n = cache.node(slot);
            for existing in &n.pods {
                let ns = cache.namespace_labels(&existing.namespace);
                s.add_incoming_counts(pod, existing, n.labels(), ns, 1);
            }
        }
        s
    }

    fn add_incoming_counts(
        &mut self,
        pod: &PodInfo,
        existing: &PodInfo,
        node_labels: &Labels,
        existing_ns: Option<&Labels>,
        delta: i64,
    ) {
        if matches_all(&pod.required_affinity, existing, existing_ns) {
            for t in &pod.required_affinity {
                update(&mut self.affinity, node_labels, &t.topology_key, delta);
            }
        }
        for t in &pod.required_anti_affinity {
            if t.matches(existing, existing_ns) {
                update(&mut self.anti_affinity, node_labels, &t.topology_key, delta);
            }
        }
    }

    /// PreFilter extension: `other` added to (1) or removed from (-1) `node`.
    pub fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        cache: &Cache,
        delta: i64,
    ) {
        let labels = node.labels();
        let own_ns = cache.namespace_labels(&pod.namespace);
        for t in &other.required_anti_affinity {
            if t.matches(pod, own_ns) {
                update(
                    &mut self.existing_anti_affinity,
                    labels,
                    &t.topology_key,
                    delta,
                );
            }
        }
        let other_ns = cache.namespace_labels(&other.namespace);
        self.add_incoming_counts(pod, other, labels, other_ns, delta);
    }

    fn satisfies_affinity(&self, pod: &PodInfo, labels: &Labels, own_ns: Option<&Labels>) -> bool {
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match labels.get(&t.topology_key) {
                Some(v) => {
                    let pair = (t.topology_key.clone(), v.clone());
                    if self.affinity.get(&pair).copied().unwrap_or(0) <= 0 {
                        pods_exist = false;
                    }
                }
                // Every topology key must exist on the node.
                None => return false,
            }
        }
        if pods_exist {
            return true;
        }
        // The first pod of a group with affinity to itself: allowed when no pod anywhere
        // matches yet and the pod matches its own terms.
        self.affinity.is_empty() && matches_all(&pod.required_affinity, pod, own_ns)
    }

    fn satisfies_anti_affinity(&self, pod: &PodInfo, labels: &Labels) -> bool {
        pod.required_anti_affinity.iter().all(|t| {
            labels.get(&t.topology_key).is_none_or(|v| {
                self.anti_affinity
                    .get(&(t.topology_key.clone(), v.clone()))
                    .copied()
                    .unwrap_or(0)
                    <= 0
            })
        })
    }

    fn satisfies_existing_anti_affinity(&self, labels: &Labels) -> bool {
        !self
            .existing_anti_affinity
            .iter()
            .any(|((k, v), n)| *n > 0 && labels.get(k) == Some(v))
    }

    pub fn filter(&self, pod: &PodInfo, node: &NodeData) -> Option<Status> {
        self.filter_with(pod, node, None)
    }

    /// The filter with the incoming pod's namespace labels at hand (self-affinity check).
    pub fn filter_with(
        &self,
        pod: &PodInfo,
        node: &NodeData,
        own_ns: Option<&Labels>,
    ) -> Option<Status> {
        let labels = &node.labels;
        if !pod.required_affinity.is_empty() && !self.satisfies_affinity(pod, labels, own_ns) {
            return Some(Status::unresolvable(
                Plugin::InterPodAffinity,
                ERR_REASON_AFFINITY,
            ));
        }
        if !self.satisfies_anti_affinity(pod, labels) {
            return Some(Status::unschedulable(
                Plugin::InterPodAffinity,
                ERR_REASON_ANTI_AFFINITY,
            ));
        }
        if !self.satisfies_existing_anti_affinity(labels) {
            return Some(Status::unschedulable(
                Plugin::InterPodAffinity,
                ERR_REASON_EXISTING_ANTI_AFFINITY,
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::Code;
    use crate::objects::NodeObject;
    use serde_json::json;
    use std::sync::Arc;

    fn cache_with(nodes: &[(&str, &str)], pods: &[serde_json::Value]) -> Cache {
        let mut c = Cache::default();
        for (name, zone) in nodes {
            let n: NodeObject =
                serde_json::from_value(json!({"metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "zone": zone}},
                "status": {"allocatable": {"cpu": "4", "pods": "10"}}}))
                .expect("node");
            c.set_node(&n);
        }
        for p in pods {
            c.add_pod(Arc::new(pod(p.clone())));
        }
        c
    }

    fn check(c: &Cache, p: &PodInfo, node: &str) -> Option<Status> {
        let s = PreFilterState::compute(p, c);
        let n = c.node_by_name(node).expect("node");
        s.filter_with(
            p,
            n.node.as_ref().expect("data"),
            c.namespace_labels(&p.namespace),
        )
    }

    fn anti(key: &str) -> serde_json::Value {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": key}]}})
    }

    #[test]
    fn required_anti_affinity_by_hostname_and_zone() {
        let c = cache_with(
            &[("n1", "a"), ("n2", "a"), ("n3", "b")],
            &[
                json!({"metadata": {"name": "db-0", "labels": {"app": "db"}}, "spec": {"nodeName": "n1"}}),
            ],
        );
        let host = pod(
            json!({"metadata": {"name": "db-1", "labels": {"app": "db"}}, "spec": {"affinity": anti("kubernetes.io/hostname")}}),
        );
        let s = check(&c, &host, "n1").expect("rejected");
        assert_eq!(
            (s.code, s.reasons[0].as_ref()),
            (Code::Unschedulable, ERR_REASON_ANTI_AFFINITY)
        );
        assert!(check(&c, &host, "n2").is_none());
        let zone = pod(
            json!({"metadata": {"name": "db-2", "labels": {"app": "db"}}, "spec": {"affinity": anti("zone")}}),
        );
        assert!(check(&c, &zone, "n2").is_some());
        assert!(check(&c, &zone, "n3").is_none());
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let c = cache_with(
            &[("n1", "a"), ("n2", "b")],
            &[
                json!({"metadata": {"name": "guard"}, "spec": {"nodeName": "n1", "affinity": anti("zone")}}),
            ],
        );
        let db = pod(json!({"metadata": {"name": "db", "labels": {"app": "db"}}}));
        let s = check(&c, &db, "n1").expect("rejected");
        assert_eq!(s.reasons, [ERR_REASON_EXISTING_ANTI_AFFINITY]);
        assert!(check(&c, &db, "n2").is_none());
        let web = pod(json!({"metadata": {"name": "web", "labels": {"app": "web"}}}));
        assert!(check(&c, &web, "n1").is_none());
    }

    #[test]
    fn required_affinity_needs_a_match_in_the_domain_or_self_match_when_alone() {
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}]}});
        let empty = cache_with(&[("n1", "a"), ("n2", "b")], &[]);
        let first = pod(
            json!({"metadata": {"name": "c0", "labels": {"app": "cache"}}, "spec": {"affinity": aff}}),
        );
        assert!(check(&empty, &first, "n1").is_none());
        let stranger = pod(
            json!({"metadata": {"name": "w", "labels": {"app": "web"}}, "spec": {"affinity": aff}}),
        );
        let s = check(&empty, &stranger, "n1").expect("rejected");
        assert_eq!(
            (s.code, s.reasons[0].as_ref()),
            (Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY)
        );
        let with_cache = cache_with(
            &[("n1", "a"), ("n2", "b")],
            &[
                json!({"metadata": {"name": "c1", "labels": {"app": "cache"}}, "spec": {"nodeName": "n2"}}),
            ],
        );
        assert!(check(&with_cache, &stranger, "n1").is_some());
        assert!(check(&with_cache, &stranger, "n2").is_none());
    }

    #[test]
    fn removing_a_pod_in_preemption_updates_counts() {
        let c = cache_with(
            &[("n1", "a")],
            &[
                json!({"metadata": {"name": "db-0", "labels": {"app": "db"}}, "spec": {"nodeName": "n1"}}),
            ],
        );
        let p = pod(
            json!({"metadata": {"name": "db-1", "labels": {"app": "db"}}, "spec": {"affinity": anti("zone")}}),
        );
        let mut s = PreFilterState::compute(&p, &c);
        let n = c.node_by_name("n1").expect("node");
        assert!(s.filter(&p, n.node.as_ref().expect("data")).is_some());
        s.update_with_pod(&p, &n.pods[0], n, &c, -1);
        assert!(s.filter(&p, n.node.as_ref().expect("data")).is_none());
    }
}
