//! PodTopologySpread filter (`whenUnsatisfiable: DoNotSchedule`): placing the pod must not
//! make any constraint's skew — matching pods in the node's domain (plus the pod itself if
//! it matches) minus the global minimum — exceed `maxSkew`.
//!
//! Domains are the values of the topology key on the nodes that count for the constraint:
//! nodes carrying every constraint's key, matching the pod's node affinity
//! (`nodeAffinityPolicy: Honor`, the default) and, with `nodeTaintsPolicy: Honor`, whose
//! taints the pod tolerates. With fewer domains than `minDomains` the global minimum is 0.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::cache::Cache;
use crate::cache::node_info::{NodeData, NodeInfo};
use crate::cache::pod_info::{PodInfo, SpreadConstraint, WhenUnsatisfiable};
use crate::framework::filter::taint_toleration::first_untolerated;
use crate::framework::{Plugin, Status};
use crate::labels::{Labels, Selector};

pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// `countPodsMatchSelector`: pods in `namespace` matching `selector`, terminating pods
/// excluded; an empty selector counts nothing.
pub fn count_matching(
    pods: &[std::sync::Arc<PodInfo>],
    selector: &Selector,
    namespace: &str,
) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    pods.iter()
        .filter(|p| !p.terminating && p.namespace == namespace && selector.matches(&p.labels))
        .count() as i64
}

/// Whether the node carries every constraint's topology key.
pub fn node_has_all_keys(labels: &Labels, constraints: &[SpreadConstraint]) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// `matchNodeInclusionPolicies`.
pub fn node_included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeData, name: &str) -> bool {
    if c.honor_node_affinity && !pod.matches_node_selector(&node.labels, name) {
        return false;
    }
    if c.honor_node_taints && first_untolerated(&node.taints, &pod.tolerations).is_some() {
        return false;
    }
    true
}

#[derive(Debug, Clone, Default)]
pub struct PreFilterState {
    constraints: Vec<SpreadConstraint>,
    /// Per constraint: domain value → matching pods.
    match_num: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count over its domains (the critical path).
    min_match: Vec<i64>,
}

impl PreFilterState {
    pub fn compute(pod: &PodInfo, cache: &Cache) -> Self {
        let constraints: Vec<SpreadConstraint> = pod
            .spread_constraints
            .iter()
            .filter(|c| c.when == WhenUnsatisfiable::DoNotSchedule)
            .cloned()
            .collect();
        if constraints.is_empty() {
            return Self::default();
        }
        let per_node: Vec<Vec<(usize, String, i64)>> = cache
            .order()
            .par_iter()
            .map(|&slot| {
                let n = cache.node(slot);
                let Some(data) = n.node.as_ref() else {
                    return Vec::new();
                };
                if !node_has_all_keys(&data.labels, &constraints) {
                    return Vec::new();
                }
                constraints
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| node_included(c, pod, data, &n.name))
                    .map(|(i, c)| {
                        let value = data.labels[&c.topology_key].clone();
                        (
                            i,
                            value,
                            count_matching(&n.pods, &c.selector, &pod.namespace),
                        )
                    })
                    .collect()
            })
            .collect();
        let mut match_num = vec![HashMap::new(); constraints.len()];
        for counts in per_node {
            for (i, value, n) in counts {
                *match_num[i].entry(value).or_insert(0) += n;
            }
        }
        let mut s = Self {
            min_match: vec![0; constraints.len()],
            constraints,
            match_num,
        };
        s.recompute_minimums();
        s
    }

    fn recompute_minimums(&mut self) {
        for (i, m) in self.match_num.iter().enumerate() {
            self.min_match[i] = m.values().copied().min().unwrap_or(i64::from(i32::MAX));
        }
    }

    /// PreFilter extension: `other` added to (1) or removed from (-1) `node`.
    pub fn update_with_pod(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if self.constraints.is_empty() || other.namespace != pod.namespace {
            return;
        }
        let Some(data) = node.node.as_ref() else {
            return;
        };
        if !node_has_all_keys(&data.labels, &self.constraints) {
            return;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.selector.matches(&other.labels) || !node_included(c, pod, data, &node.name) {
                continue;
            }
            let v = data.labels[&c.topology_key].clone();
            *self.match_num[i].entry(v).or_insert(0) += delta;
        }
        self.recompute_minimums();
    }

    pub fn filter(&self, pod: &PodInfo, node: &NodeData) -> Option<Status> {
        for (i, c) in self.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Some(Status::unresolvable(
                    Plugin::PodTopologySpread,
                    ERR_REASON_NODE_LABEL_NOT_MATCH,
                ));
            };
            let domains = self.match_num[i].len();
            let min = if (domains as i64) < i64::from(c.min_domains) {
                0
            } else {
                self.min_match[i]
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let matching = self.match_num[i].get(value).copied().unwrap_or(0);
            if matching + self_match - min > i64::from(c.max_skew) {
                return Some(Status::unschedulable(
                    Plugin::PodTopologySpread,
                    ERR_REASON_CONSTRAINTS_NOT_MATCH,
                ));
            }
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

    fn cache(nodes: &[(&str, Option<&str>)], pods: &[(&str, &str)]) -> Cache {
        let mut c = Cache::default();
        for (name, zone) in nodes {
            let mut labels = json!({"kubernetes.io/hostname": name});
            if let Some(z) = zone {
                labels["zone"] = json!(z);
            }
            let n: NodeObject =
                serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                    .expect("node");
            c.set_node(&n);
        }
        for (i, (node, app)) in pods.iter().enumerate() {
            c.add_pod(Arc::new(pod(
                json!({"metadata": {"name": format!("e{i}"), "labels": {"app": app}},
                "spec": {"nodeName": node}}),
            )));
        }
        c
    }

    fn spread(key: &str, max_skew: i32, extra: serde_json::Value) -> PodInfo {
        let mut c = json!({"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        pod(
            json!({"metadata": {"name": "new", "labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [c]}}),
        )
    }

    fn check(c: &Cache, p: &PodInfo, node: &str) -> Option<Status> {
        let s = PreFilterState::compute(p, c);
        s.filter(
            p,
            c.node_by_name(node)
                .and_then(|n| n.node.as_ref())
                .expect("node"),
        )
    }

    #[test]
    fn skew_over_max_rejects_the_crowded_zone() {
        let c = cache(
            &[("n1", Some("a")), ("n2", Some("b"))],
            &[("n1", "web"), ("n1", "web"), ("n2", "web")],
        );
        let p = spread("zone", 1, json!({}));
        let s = check(&c, &p, "n1").expect("rejected");
        assert_eq!(
            (s.code, s.reasons[0].as_ref()),
            (Code::Unschedulable, ERR_REASON_CONSTRAINTS_NOT_MATCH)
        );
        assert!(check(&c, &p, "n2").is_none());
    }

    #[test]
    fn nodes_without_the_key_are_unresolvable() {
        let c = cache(&[("n1", Some("a")), ("n2", None)], &[]);
        let s = check(&c, &spread("zone", 1, json!({})), "n2").expect("rejected");
        assert_eq!(
            (s.code, s.reasons[0].as_ref()),
            (
                Code::UnschedulableAndUnresolvable,
                ERR_REASON_NODE_LABEL_NOT_MATCH
            )
        );
    }

    #[test]
    fn min_domains_counts_missing_domains_as_zero() {
        let c = cache(
            &[("n1", Some("a")), ("n2", Some("b"))],
            &[("n1", "web"), ("n2", "web")],
        );
        assert!(check(&c, &spread("zone", 1, json!({})), "n1").is_none());
        // Three domains wanted, two exist: the global minimum is 0 and 1 + 1 - 0 > 1.
        assert!(check(&c, &spread("zone", 1, json!({"minDomains": 3})), "n1").is_some());
    }

    #[test]
    fn node_affinity_policy_limits_the_domains() {
        let mut c = cache(&[("n1", Some("a")), ("n2", Some("b"))], &[("n1", "web")]);
        let n3: NodeObject = serde_json::from_value(json!({"metadata": {"name": "n3", "labels": {
            "kubernetes.io/hostname": "n3", "zone": "c", "pool": "other"}}}))
        .expect("node");
        c.set_node(&n3);
        let mut p = spread("zone", 1, json!({}));
        p.node_selector
            .insert("kubernetes.io/hostname".into(), "n1".into());
        // Honor (default): only n1's zone counts: min 1, 1 + 1 - 1 <= 1.
        let s = PreFilterState::compute(&p, &c);
        assert!(
            s.filter(
                &p,
                c.node_by_name("n1")
                    .and_then(|n| n.node.as_ref())
                    .expect("n1")
            )
            .is_none()
        );
        let mut ignore = spread("zone", 1, json!({"nodeAffinityPolicy": "Ignore"}));
        ignore.node_selector = p.node_selector.clone();
        let s = PreFilterState::compute(&ignore, &c);
        assert!(
            s.filter(
                &ignore,
                c.node_by_name("n1")
                    .and_then(|n| n.node.as_ref())
                    .expect("n1")
            )
            .is_some()
        );
    }

    #[test]
    fn schedule_anyway_constraints_do_not_filter() {
        let c = cache(
            &[("n1", Some("a")), ("n2", Some("b"))],
            &[("n1", "web"), ("n1", "web")],
        );
        let p = pod(
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
        );
        assert!(check(&c, &p, "n1").is_none());
    }
}
