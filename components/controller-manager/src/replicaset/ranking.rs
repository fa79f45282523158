//! Which pods a ReplicaSet deletes first when it has too many: Kubernetes' `ActivePodsWithRanks`
//! order, with the `PodDeletionCost` and `LogarithmicScaleDown` behaviour that is on by default.
//!
//! Earlier is deleted first:
//! 1. unassigned (no `spec.nodeName`) before assigned;
//! 2. `Pending` before `Unknown` before `Running`;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` before higher;
//! 5. more active sibling pods on the same node before fewer ("doubled up");
//! 6. ready for a shorter time before longer (compared on a log₂ scale of the age, ties
//!    within one scale step broken by uid);
//! 7. more container restarts before fewer;
//! 8. created more recently before earlier (log₂ scale, ties by uid).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::workload::pods;

/// The annotation that lets users rank pods for deletion.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(pod: &Pod) -> u8 {
    match pods::phase(pod) {
        pods::PHASE_PENDING => 0,
        pods::PHASE_UNKNOWN => 1,
        pods::PHASE_RUNNING => 2,
        _ => 0,
    }
}

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// The pod's deletion cost; absent or unparsable counts as 0.
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// Kubernetes' `afterOrZero`: an unknown time first, else the later one first.
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (None, _) => true,
        (_, None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// ⌊log₂(now − t in nanoseconds)⌋, or -1 for a time not in the past.
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.duration_since(t).as_nanos();
    if nanos <= 0 {
        return -1;
    }
    // i128 → f64 loses precision only far beyond any real age.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let r = (nanos as f64).log2().floor() as i64;
    r
}

/// Orders two times the way steps 6 and 8 do; `None` when they are equal.
fn time_order(
    t1: Option<Timestamp>,
    t2: Option<Timestamp>,
    a: &Pod,
    b: &Pod,
    now: Timestamp,
) -> Option<bool> {
    if t1 == t2 {
        return None;
    }
    match (t1, t2) {
        (Some(x), Some(y)) => {
            let diff = log_rank(x, now) - log_rank(y, now);
            if diff == 0 {
                Some(uid(a) < uid(b))
            } else {
                Some(diff < 0)
            }
        }
        _ => Some(after_or_zero(t1, t2)),
    }
}

/// Kubernetes' `Less`: whether `a` (with `rank_a` colocated siblings) goes before `b`.
pub fn less(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> bool {
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    let (pa, pb) = (phase_ordinal(a), phase_ordinal(b));
    if pa != pb {
        return pa < pb;
    }
    let (ra, rb) = (pods::is_ready(a), pods::is_ready(b));
    if ra != rb {
        return !ra;
    }
    let (ca, cb) = (deletion_cost(a), deletion_cost(b));
    if ca != cb {
        return ca < cb;
    }
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    if ra
        && rb
        && let Some(first) = time_order(pods::ready_since(a), pods::ready_since(b), a, b, now)
    {
        return first;
    }
    let (xa, xb) = (pods::max_restarts(a), pods::max_restarts(b));
    if xa != xb {
        return xa > xb;
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    time_order(created(a), created(b), a, b, now).unwrap_or(false)
}

/// Sorts with a "less" relation that need not be a total order (the log-scale steps are
/// not transitive): a plain merge sort, which, unlike the standard library's sorts, never
/// panics on such an order.
fn merge_sort_by<T: Clone>(v: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    if v.len() <= 1 {
        return;
    }
    let mid = v.len() / 2;
    merge_sort_by(&mut v[..mid], less);
    merge_sort_by(&mut v[mid..], less);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < v.len() {
        if less(&v[j], &v[i]) {
            merged.push(v[j].clone());
            j += 1;
        } else {
            merged.push(v[i].clone());
            i += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

/// The `n` pods of `candidates` to delete first. `related` are the active pods of the
/// ReplicaSet and its siblings (same controller); a pod's rank is how many of them share its
/// node.
pub fn pods_to_delete(
    candidates: &[Arc<Pod>],
    related: &[Arc<Pod>],
    n: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if n >= candidates.len() {
        return candidates.to_vec();
    }
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| pods::is_active(p)) {
        *on_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, usize)> = candidates
        .iter()
        .map(|p| (p.clone(), on_node.get(node(p)).copied().unwrap_or(0)))
        .collect();
    merge_sort_by(&mut ranked, &|(a, ra), (b, rb)| less(a, *ra, b, *rb, now));
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

/// A total order for tests and logs: `Less` when `a` goes first.
pub fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    if less(a, rank_a, b, rank_b, now) {
        Ordering::Less
    } else if less(b, rank_b, a, rank_a, now) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const NOW: &str = "2024-06-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().expect("now")
    }

    fn pod(name: &str, extra: Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": "2024-06-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": []},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-06-01T01:00:00Z"}
            ]}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).expect("pod")
    }

    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(b), Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    fn first(a: &Pod, b: &Pod) -> bool {
        compare(a, 0, b, 0, now()) == Ordering::Less
            && compare(b, 0, a, 0, now()) == Ordering::Greater
    }

    #[test]
    fn unassigned_before_assigned() {
        let a = pod("a", json!({"spec": {"nodeName": null}}));
        assert!(first(&a, &pod("b", json!({}))));
    }

    #[test]
    fn pending_before_unknown_before_running() {
        let pending = pod("p", json!({"status": {"phase": "Pending"}}));
        let unknown = pod("u", json!({"status": {"phase": "Unknown"}}));
        let running = pod("r", json!({}));
        assert!(first(&pending, &unknown));
        assert!(first(&unknown, &running));
    }

    #[test]
    fn not_ready_before_ready() {
        let nr = pod(
            "n",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert!(first(&nr, &pod("r", json!({}))));
    }

    #[test]
    fn lower_deletion_cost_first() {
        let cheap = pod(
            "c",
            json!({"metadata": {"annotations": {DELETION_COST: "-5"}}}),
        );
        let dear = pod(
            "d",
            json!({"metadata": {"annotations": {DELETION_COST: "100"}}}),
        );
        assert!(first(&cheap, &dear));
        let junk = pod(
            "j",
            json!({"metadata": {"annotations": {DELETION_COST: "x"}}}),
        );
        assert_eq!(deletion_cost(&junk), 0);
    }

    #[test]
    fn doubled_up_before_alone() {
        let a = pod("a", json!({}));
        let b = pod("b", json!({}));
        assert!(less(&a, 3, &b, 1, now()));
        assert!(!less(&b, 1, &a, 3, now()));
    }

    #[test]
    fn ready_for_shorter_before_longer() {
        let recent = pod(
            "r",
            json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-06-01T11:59:00Z"}]}}),
        );
        let old = pod(
            "o",
            json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T00:00:00Z"}]}}),
        );
        assert!(first(&recent, &old));
    }

    #[test]
    fn more_restarts_before_fewer() {
        let crashy = pod(
            "c",
            json!({"status": {"containerStatuses": [
            {"name": "x", "image": "i", "imageID": "", "ready": true, "restartCount": 7}]}}),
        );
        let calm = pod(
            "k",
            json!({"status": {"containerStatuses": [
            {"name": "x", "image": "i", "imageID": "", "ready": true, "restartCount": 0}]}}),
        );
        assert!(first(&crashy, &calm));
    }

    #[test]
    fn newer_before_older() {
        let newer = pod(
            "n",
            json!({"metadata": {"creationTimestamp": "2024-06-01T11:00:00Z"}}),
        );
        let older = pod(
            "o",
            json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"}}),
        );
        assert!(first(&newer, &older));
    }

    #[test]
    fn same_log_bucket_falls_back_to_uid() {
        // 59 and 60 minutes old share ⌊log₂⌋ of their ages in nanoseconds.
        let a = pod(
            "a",
            json!({"metadata": {"creationTimestamp": "2024-06-01T11:01:00Z"}}),
        );
        let b = pod(
            "b",
            json!({"metadata": {"creationTimestamp": "2024-06-01T11:00:00Z"}}),
        );
        assert_eq!(
            log_rank(a.metadata.creation_timestamp.clone().expect("t").0, now()),
            log_rank(b.metadata.creation_timestamp.clone().expect("t").0, now())
        );
        assert!(first(&a, &b), "uid-a < uid-b");
    }

    #[test]
    fn picks_the_n_best_candidates() {
        let running = Arc::new(pod("r", json!({})));
        let pending = Arc::new(pod("p", json!({"status": {"phase": "Pending"}})));
        let unassigned = Arc::new(pod(
            "u",
            json!({"spec": {"nodeName": null}, "status": {"phase": "Pending"}}),
        ));
        let all = vec![running.clone(), pending.clone(), unassigned.clone()];
        let chosen = pods_to_delete(&all, &all, 2, now());
        let names: Vec<_> = chosen
            .iter()
            .map(|p| p.metadata.name.clone().expect("name"))
            .collect();
        assert_eq!(names, vec!["u", "p"]);
        assert_eq!(pods_to_delete(&all, &all, 5, now()).len(), 3);
    }

    #[test]
    fn colocated_pods_go_first() {
        let a = Arc::new(pod("a", json!({"spec": {"nodeName": "busy"}})));
        let b = Arc::new(pod("b", json!({"spec": {"nodeName": "quiet"}})));
        let sibling = Arc::new(pod("s", json!({"spec": {"nodeName": "busy"}})));
        let chosen = pods_to_delete(&[b.clone(), a.clone()], &[a, b, sibling], 1, now());
        assert_eq!(chosen[0].metadata.name.as_deref(), Some("a"));
    }
}
