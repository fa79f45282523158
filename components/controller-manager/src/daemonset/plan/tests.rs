use super::*;
use serde_json::json;

const NOW: i64 = 1_000_000;

fn node(name: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name}})).expect("node")
}

fn tainted(name: &str) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}}))
    .expect("node")
}

/// A pod on `node` with revision `hash`, created `age` seconds ago; `ready` since 100 s.
fn pod(name: &str, node: &str, hash: &str, age: i64, phase: &str, ready: bool) -> Pod {
    let created = Timestamp::from_second(NOW - age).expect("t").to_string();
    let since = Timestamp::from_second(NOW - 100).expect("t").to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created,
            "labels": {"controller-revision-hash": hash}},
        "spec": {"nodeName": node, "containers": [{"name": "c"}]},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": since}]}
    }))
    .expect("pod")
}

fn spec() -> PodSpec {
    serde_json::from_value(json!({"containers": [{"name": "c"}]})).expect("spec")
}

fn target(spec: &PodSpec) -> Target<'_> {
    Target {
        template: spec,
        hash: "new",
        generation: None,
        min_ready_seconds: 0,
        now: Timestamp::from_second(NOW).expect("now"),
    }
}

fn by_node<'a>(pods: &'a [Pod]) -> ByNode<'a> {
    let mut m = ByNode::new();
    for p in pods {
        let n = super::super::pod::target_node(p).expect("node");
        m.entry(n).or_default().push(p);
    }
    m
}

fn deleted(plan: &Plan) -> Vec<&str> {
    plan.delete.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn every_eligible_node_gets_one_pod_and_tainted_nodes_none() {
    let s = spec();
    let t = target(&s);
    let nodes = [node("a"), node("b"), tainted("c")];
    let pods = [pod("p-a", "a", "new", 10, "Running", true)];
    let plan = manage(&t, &nodes, &by_node(&pods), false);
    assert_eq!(plan.create_on, vec!["b"]);
    assert!(plan.delete.is_empty());
}

#[test]
fn failed_pods_are_replaced_and_extra_pods_removed_oldest_kept() {
    let s = spec();
    let t = target(&s);
    let nodes = [node("a"), node("b")];
    let pods = [
        pod("failed", "a", "new", 10, "Failed", false),
        pod("old", "b", "new", 50, "Running", true),
        pod("young", "b", "new", 5, "Running", true),
    ];
    let plan = manage(&t, &nodes, &by_node(&pods), false);
    assert_eq!(
        plan.delete,
        vec![
            ("failed".to_string(), Removal::Failed { node: "a".into() }),
            ("young".to_string(), Removal::Other)
        ]
    );
    // The failed pod's node gets its new pod once the failed one is gone.
    assert!(plan.create_on.is_empty());
}

#[test]
fn pods_leave_nodes_that_no_longer_qualify_and_vanished_nodes() {
    let s = spec();
    let t = target(&s);
    let evicting: Node = serde_json::from_value(json!({"metadata": {"name": "a"},
        "spec": {"taints": [{"key": "dedicated", "effect": "NoExecute"}]}}))
    .expect("node");
    let mut unbound = pod("ghost", "gone", "new", 5, "Pending", false);
    // Unbound, pinned to a node that no longer exists.
    if let Some(spec) = unbound.spec.as_mut() {
        spec.node_name = None;
        spec.affinity = Some(super::super::pod::pin_to_node(None, "gone"));
    }
    let pods = [pod("p-a", "a", "new", 10, "Running", true), unbound];
    let plan = manage(&t, &[evicting], &by_node(&pods), false);
    assert_eq!(deleted(&plan), vec!["p-a", "ghost"]);
    // A NoSchedule taint added later leaves the running pod alone.
    let plan = manage(&t, &[tainted("a")], &by_node(&pods[..1]), false);
    assert!(plan.is_empty());
}

#[test]
fn rolling_update_without_surge_stays_within_max_unavailable() {
    let s = spec();
    let t = target(&s);
    let nodes = [node("a"), node("b"), node("c"), node("d")];
    let pods = [
        pod("a1", "a", "old", 10, "Running", true),
        pod("b1", "b", "old", 10, "Running", true),
        pod("c1", "c", "old", 10, "Running", false),
        pod("d1", "d", "new", 10, "Running", true),
    ];
    let b = budget(None, Some(&IntOrString::Int(2)), 4);
    let plan = rolling_update(&t, &nodes, &by_node(&pods), b);
    // c1 is unavailable anyway (replaced at once, and it uses one unit), so one more.
    assert_eq!(deleted(&plan), vec!["c1", "a1"]);
    assert!(plan.create_on.is_empty());
    // A new pod that is not available yet uses the budget.
    let pods = [
        pod("a1", "a", "old", 10, "Running", true),
        pod("b1", "b", "new", 1, "Pending", false),
    ];
    let b = budget(None, Some(&IntOrString::Int(1)), 2);
    let plan = rolling_update(&t, &nodes[..2], &by_node(&pods), b);
    assert!(plan.is_empty(), "{plan:?}");
}

#[test]
fn rolling_update_with_surge_starts_new_pods_beside_old_ones() {
    let s = spec();
    let t = target(&s);
    let nodes = [node("a"), node("b"), node("c")];
    let pods = [
        pod("a-old", "a", "old", 10, "Running", true),
        pod("a-new", "a", "new", 1, "Running", true),
        pod("b-old", "b", "old", 10, "Running", true),
        pod("c-old", "c", "old", 10, "Running", true),
    ];
    let b = budget(Some(&IntOrString::Int(1)), Some(&IntOrString::Int(0)), 3);
    assert_eq!(
        b,
        Budget {
            max_surge: 1,
            max_unavailable: 0
        }
    );
    let plan = rolling_update(&t, &nodes, &by_node(&pods), b);
    // a's new pod is available: its old one goes; one more node may surge.
    assert_eq!(deleted(&plan), vec!["a-old"]);
    assert_eq!(plan.create_on, vec!["b"]);
    // While a's new pod is not available, nothing else surges.
    let pods = [
        pod("a-old", "a", "old", 10, "Running", true),
        pod("a-new", "a", "new", 1, "Running", false),
        pod("b-old", "b", "old", 10, "Running", true),
    ];
    let plan = rolling_update(&t, &nodes[..2], &by_node(&pods), b);
    assert!(plan.is_empty(), "{plan:?}");
    // The manage step keeps both pods while the new one is not available.
    let plan = manage(&t, &nodes[..2], &by_node(&pods), true);
    assert!(plan.is_empty(), "{plan:?}");
}

#[test]
fn budgets_round_up_and_never_stall() {
    let pct = IntOrString::String("25%".into());
    assert_eq!(
        budget(None, Some(&pct), 10),
        Budget {
            max_surge: 0,
            max_unavailable: 3
        }
    );
    assert_eq!(
        budget(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 10),
        Budget {
            max_surge: 0,
            max_unavailable: 1
        }
    );
}

#[test]
fn status_counts_the_oldest_pod_per_node() {
    let s = spec();
    let t = Target {
        min_ready_seconds: 200,
        ..target(&s)
    };
    let nodes = [node("a"), node("b"), node("c"), tainted("d")];
    let pods = [
        pod("a1", "a", "new", 10, "Running", true),
        pod("b1", "b", "old", 10, "Running", false),
        pod("d1", "d", "new", 10, "Running", true),
    ];
    let c = status(&t, &nodes, &by_node(&pods));
    assert_eq!(
        c,
        Counts {
            desired: 3,
            current: 2,
            misscheduled: 1,
            ready: 1,
            updated: 1,
            // Ready for 100 s, minReadySeconds 200: not available yet.
            available: 0,
            unavailable: 3,
        }
    );
    let t = target(&s);
    assert_eq!(status(&t, &nodes, &by_node(&pods)).available, 1);
}

#[test]
fn template_generation_marks_pods_from_before_revisions_updated() {
    let s = spec();
    let t = Target {
        generation: Some(4),
        ..target(&s)
    };
    let mut p = pod("x", "a", "other", 1, "Running", true);
    assert!(!t.is_updated(&p));
    if let Some(l) = p.metadata.labels.as_mut() {
        l.insert("pod-template-generation".into(), "4".into());
    }
    assert!(t.is_updated(&p));
}
