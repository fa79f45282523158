//! DefaultPreemption (the PostFilter step): when no node fits, find a node where deleting
//! lower-priority pods makes room, choose the cheapest such node, and nominate the pod
//! there while its victims are deleted.
//!
//! Per node (a dry run on a copy): remove every lower-priority pod; if the pod still does
//! not fit, preemption cannot help there. Otherwise give pods back, most important first,
//! as long as the pod still fits; the rest are the victims. Among candidate nodes pick the
//! one with the lowest highest-victim priority, then the lowest sum of victim priorities,
//! then the fewest victims, then the latest-started victims (Kubernetes' order; PodDisruption
//! Budgets are not evaluated yet, so no candidate violates one).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::cache::Cache;
use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::PodInfo;
use crate::framework::{
    Code, CycleState, Plugin, Status, filter_with_nominated, fit_error_message,
};

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NOT_ELIGIBLE_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
pub const NOT_ELIGIBLE_TERMINATING: &str =
    "not eligible due to a terminating pod on the nominated node.";

/// `minCandidateNodesPercentage` and `minCandidateNodesAbsolute` (DefaultPreemptionArgs).
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;
/// Nodes dry-run in parallel per round.
const DRY_RUN_BATCH: usize = 64;

/// What preemption decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Victims on `node` are to be deleted; the pod waits there.
    Nominated {
        node: String,
        victims: Vec<Arc<PodInfo>>,
    },
    /// Preemption cannot help: the `preemption: …` message, and whether the pod's existing
    /// nomination must be cleared.
    Failed {
        message: String,
        clear_nomination: bool,
    },
}

fn now_nanos() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX)
}

/// `util.MoreImportantPod` as an ordering: higher priority first, then the earlier start
/// (a pod that has not started counts as starting now).
pub fn more_important(a: &PodInfo, b: &PodInfo, now: i64) -> Ordering {
    b.priority.cmp(&a.priority).then_with(|| {
        a.start_time
            .unwrap_or(now)
            .cmp(&b.start_time.unwrap_or(now))
    })
}

/// `calculateNumCandidates`.
pub fn num_candidates(potential: usize) -> usize {
    (potential * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(potential)
}

/// `SelectVictimsOnNode`: the fewest lower-priority pods to delete from `node` so the pod
/// fits, most important ones spared first.
pub fn select_victims(
    state: &CycleState,
    node: &NodeInfo,
    nominated: &[Arc<PodInfo>],
    cache: &Cache,
) -> Result<Vec<Arc<PodInfo>>, Status> {
    let pod = &state.pod;
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(Plugin::DefaultPreemption, NO_VICTIMS));
    }
    let mut n = node.clone();
    let mut st = state.clone();
    for v in &potential {
        n.remove_pod(&v.uid);
        st.remove_pod(v, &n, cache);
    }
    if let Some(s) = filter_with_nominated(&st, &n, nominated, cache) {
        return Err(s);
    }
    let now = now_nanos();
    potential.sort_by(|a, b| more_important(a, b, now));
    let mut victims = Vec::new();
    for v in potential {
        n.add_pod(Arc::clone(&v));
        st.add_pod(&v, &n, cache);
        if filter_with_nominated(&st, &n, nominated, cache).is_some() {
            n.remove_pod(&v.uid);
            st.remove_pod(&v, &n, cache);
            victims.push(v);
        }
    }
    Ok(victims)
}

/// A node where preemption works, with its victims (most important first).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// `pickOneNodeForPreemption` (without PDBs).
pub fn pick(candidates: &[Candidate]) -> Option<&Candidate> {
    let now = now_nanos();
    let highest = |c: &Candidate| c.victims.first().map_or(i32::MIN, |v| v.priority);
    let sum = |c: &Candidate| -> i64 {
        c.victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum()
    };
    let earliest_of_highest = |c: &Candidate| -> i64 {
        let top = highest(c);
        c.victims
            .iter()
            .filter(|v| v.priority == top)
            .map(|v| v.start_time.unwrap_or(now))
            .min()
            .unwrap_or(i64::MIN)
    };
    let scores: [&dyn Fn(&Candidate) -> i64; 4] = [
        &|c| -i64::from(highest(c)),
        &|c| -sum(c),
        &|c| -(c.victims.len() as i64),
        &|c| earliest_of_highest(c),
    ];
    let mut remaining: Vec<&Candidate> = candidates.iter().collect();
    for f in scores {
        if remaining.len() <= 1 {
            break;
        }
        let best = remaining.iter().map(|c| f(c)).max()?;
        remaining.retain(|c| f(c) == best);
    }
    remaining.first().copied()
}

/// The whole PostFilter step. `statuses` are the filter results of every node (cache
/// slot → rejection) from the failed attempt.
pub fn preempt(
    state: &CycleState,
    cache: &Cache,
    statuses: &HashMap<usize, Status>,
    nominated: &HashMap<String, Vec<Arc<PodInfo>>>,
) -> Outcome {
    let pod = &state.pod;
    let fail = |message: String, clear_nomination: bool| Outcome::Failed {
        message: format!("preemption: {message}"),
        clear_nomination,
    };
    if pod.preempt_never {
        return fail(NOT_ELIGIBLE_NEVER.into(), false);
    }
    if !pod.nominated_node_name.is_empty()
        && let Some(slot) = cache.slot_of(&pod.nominated_node_name)
    {
        let unresolvable = statuses
            .get(&slot)
            .is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable);
        let waiting = cache
            .node(slot)
            .pods
            .iter()
            .any(|p| p.priority < pod.priority && p.terminating && p.preempted_by_scheduler);
        if !unresolvable && waiting {
            return fail(NOT_ELIGIBLE_TERMINATING.into(), false);
        }
    }

    let all = cache.order();
    let potential: Vec<usize> = all
        .iter()
        .copied()
        .filter(|slot| {
            statuses
                .get(slot)
                .is_some_and(|s| s.code == Code::Unschedulable)
        })
        .collect();
    let wanted = num_candidates(potential.len());
    let no_nominated = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut failures: Vec<Status> = Vec::new();
    for batch in potential.chunks(DRY_RUN_BATCH) {
        let results: Vec<Result<Vec<Arc<PodInfo>>, Status>> = batch
            .par_iter()
            .map(|&slot| {
                let node = cache.node(slot);
                let nom = nominated.get(&node.name).unwrap_or(&no_nominated);
                select_victims(state, node, nom, cache)
            })
            .collect();
        for (slot, r) in batch.iter().zip(results) {
            match r {
                Ok(victims) if !victims.is_empty() => candidates.push(Candidate {
                    node: cache.node(*slot).name.clone(),
                    victims,
                }),
                Ok(_) => {}
                Err(s) => failures.push(s),
            }
        }
        if candidates.len() >= wanted && !candidates.is_empty() {
            break;
        }
    }
    let Some(best) = pick(&candidates) else {
        let absent = all.len().saturating_sub(failures.len());
        let reasons = failures
            .iter()
            .flat_map(|s| s.reasons.iter().map(|r| r.as_ref()))
            .chain(std::iter::repeat_n(NOT_HELPFUL, absent));
        return fail(fit_error_message(all.len(), reasons, None, None), true);
    };
    Outcome::Nominated {
        node: best.node.clone(),
        victims: best.victims.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::filter;
    use crate::objects::NodeObject;
    use serde_json::json;

    fn cluster(nodes: &[&str]) -> Cache {
        let mut c = Cache::default();
        for name in nodes {
            let n: NodeObject = serde_json::from_value(json!({"metadata": {"name": name,
                "labels": {"kubernetes.io/hostname": name}},
                "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "10"}}}))
            .expect("node");
            c.set_node(&n);
        }
        c
    }

    fn bound(name: &str, node: &str, cpu: &str, priority: i32, start: &str) -> Arc<PodInfo> {
        Arc::new(pod(
            json!({"metadata": {"name": name}, "spec": {"nodeName": node, "priority": priority,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            "status": {"startTime": start}}),
        ))
    }

    fn incoming(cpu: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod(
            json!({"metadata": {"name": "vip"}, "spec": {"priority": priority,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}),
        ))
    }

    fn statuses(c: &Cache, state: &CycleState) -> HashMap<usize, Status> {
        c.order()
            .iter()
            .filter_map(|s| filter::run(state, c.node(*s)).map(|st| (*s, st)))
            .collect()
    }

    #[test]
    fn fewest_and_least_important_victims_are_chosen() {
        let mut c = cluster(&["n1", "n2"]);
        c.add_pod(bound("a", "n1", "1", 10, "2025-01-01T00:00:00Z"));
        c.add_pod(bound("b", "n1", "1", 5, "2025-01-01T00:00:00Z"));
        c.add_pod(bound("x", "n2", "1", 50, "2025-01-01T00:00:00Z"));
        c.add_pod(bound("y", "n2", "1", 50, "2025-01-01T00:00:00Z"));
        let state = CycleState::new(incoming("1", 100), &c);
        let st = statuses(&c, &state);
        match preempt(&state, &c, &st, &HashMap::new()) {
            Outcome::Nominated { node, victims } => {
                assert_eq!(node, "n1");
                let names: Vec<_> = victims.iter().map(|v| v.name.as_str()).collect();
                assert_eq!(names, ["b"]);
            }
            other => panic!("expected a nomination, got {other:?}"),
        }
    }

    #[test]
    fn equal_or_higher_priority_pods_are_never_victims() {
        let mut c = cluster(&["n1"]);
        c.add_pod(bound("a", "n1", "2", 100, "2025-01-01T00:00:00Z"));
        let state = CycleState::new(incoming("1", 100), &c);
        let st = statuses(&c, &state);
        match preempt(&state, &c, &st, &HashMap::new()) {
            Outcome::Failed {
                message,
                clear_nomination,
            } => {
                assert_eq!(
                    message,
                    "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
                );
                assert!(clear_nomination);
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn unresolvable_nodes_are_not_helpful() {
        let mut c = cluster(&["n1", "n2"]);
        c.add_pod(bound("a", "n1", "1", 0, "2025-01-01T00:00:00Z"));
        let state = CycleState::new(incoming("3", 100), &c);
        let st = statuses(&c, &state);
        match preempt(&state, &c, &st, &HashMap::new()) {
            Outcome::Failed { message, .. } => assert_eq!(
                message,
                "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
            ),
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn preemption_policy_never_is_not_eligible() {
        let c = cluster(&["n1"]);
        let p = Arc::new(pod(
            json!({"metadata": {"name": "polite"}, "spec": {"priority": 100, "preemptionPolicy": "Never"}}),
        ));
        let state = CycleState::new(p, &c);
        match preempt(&state, &c, &HashMap::new(), &HashMap::new()) {
            Outcome::Failed {
                message,
                clear_nomination,
            } => {
                assert_eq!(
                    message,
                    "preemption: not eligible due to preemptionPolicy=Never."
                );
                assert!(!clear_nomination);
            }
            other => panic!("expected failure, got {other:?}"),
        }
    }

    #[test]
    fn candidates_prefer_lower_priority_then_fewer_victims() {
        let v = |name: &str, priority, start: Option<i64>| {
            let mut p = pod(json!({"metadata": {"name": name}}));
            p.priority = priority;
            p.start_time = start;
            Arc::new(p)
        };
        let c = |node: &str, victims: Vec<Arc<PodInfo>>| Candidate {
            node: node.into(),
            victims,
        };
        let first = [
            c("high", vec![v("a", 50, Some(1))]),
            c("low-many", vec![v("b", 10, Some(1)), v("c", 10, Some(1))]),
            c("low-one", vec![v("d", 10, Some(1))]),
        ];
        assert_eq!(pick(&first).map(|c| c.node.as_str()), Some("low-one"));
        let second = [
            c("older", vec![v("a", 10, Some(100))]),
            c("newer", vec![v("b", 10, Some(200))]),
        ];
        assert_eq!(pick(&second).map(|c| c.node.as_str()), Some("newer"));
        assert_eq!(num_candidates(50), 50);
        assert_eq!(num_candidates(5000), 500);
    }
}
