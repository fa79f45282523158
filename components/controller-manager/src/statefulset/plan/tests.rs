use super::*;
use serde_json::json;

const NOW: i64 = 1_000_000;

/// `web-<ordinal>` at revision `rev`: "ready" (Running+Ready for 100 s), "pending",
/// "failed" or "terminating".
fn pod(ordinal: i32, rev: &str, state: &str) -> Pod {
    let since = Timestamp::from_second(NOW - 100).expect("t").to_string();
    let (phase, ready) = match state {
        "ready" | "terminating" => ("Running", true),
        "pending" => ("Pending", false),
        "failed" => ("Failed", false),
        other => panic!("state {other}"),
    };
    let mut v = json!({
        "metadata": {"name": format!("web-{ordinal}"), "labels": {"controller-revision-hash": rev}},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": since}]}
    });
    if state == "terminating" {
        v["metadata"]["deletionTimestamp"] = json!(since);
    }
    serde_json::from_value(v).expect("pod")
}

fn input<'a>(pods: &'a [Pod], replicas: i32) -> Input<'a> {
    Input {
        pods: pods
            .iter()
            .map(|p| {
                let n = p.metadata.name.as_deref().expect("name");
                let o = n.rsplit_once('-').expect("ordinal").1.parse().expect("int");
                (o, p)
            })
            .collect(),
        start: 0,
        replicas,
        parallel: false,
        rolling: true,
        partition: 0,
        max_unavailable: None,
        min_ready_seconds: 0,
        now: Timestamp::from_second(NOW).expect("now"),
        update_revision: "web-new",
    }
}

fn create(ordinal: i32, rev: Rev) -> Step {
    Step::Create { ordinal, rev }
}

fn delete(ordinal: i32, why: Why) -> Step {
    Step::Delete {
        ordinal,
        name: format!("web-{ordinal}"),
        why,
    }
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_in_order() {
    assert_eq!(plan(&input(&[], 3)), vec![create(0, Rev::Update)]);
    // web-0 exists but is not ready: nothing else happens.
    let pods = [pod(0, "web-new", "pending")];
    assert!(plan(&input(&pods, 3)).is_empty());
    let pods = [pod(0, "web-new", "ready")];
    assert_eq!(plan(&input(&pods, 3)), vec![create(1, Rev::Update)]);
    // A gap is filled first, whatever exists above it.
    let pods = [pod(0, "web-new", "ready"), pod(2, "web-new", "ready")];
    assert_eq!(plan(&input(&pods, 3)), vec![create(1, Rev::Update)]);
}

#[test]
fn parallel_creates_and_deletes_everything_at_once() {
    let pods = [
        pod(0, "web-new", "pending"),
        pod(4, "web-new", "ready"),
        pod(5, "web-new", "pending"),
    ];
    let mut i = input(&pods, 3);
    i.parallel = true;
    assert_eq!(
        plan(&i),
        vec![
            create(1, Rev::Update),
            create(2, Rev::Update),
            delete(5, Why::Condemned),
            delete(4, Why::Condemned)
        ]
    );
}

#[test]
fn ordered_scale_down_goes_highest_first_one_at_a_time() {
    let pods = [
        pod(0, "web-new", "ready"),
        pod(1, "web-new", "ready"),
        pod(2, "web-new", "ready"),
    ];
    assert_eq!(plan(&input(&pods, 1)), vec![delete(2, Why::Condemned)]);
    // web-2 is terminating: wait for it to be gone before web-1.
    let pods = [
        pod(0, "web-new", "ready"),
        pod(1, "web-new", "ready"),
        pod(2, "web-new", "terminating"),
    ];
    assert!(plan(&input(&pods, 1)).is_empty());
    // An unhealthy replica blocks scale-down.
    let pods = [pod(0, "web-new", "pending"), pod(1, "web-new", "ready")];
    assert!(plan(&input(&pods, 1)).is_empty());
    // The first unhealthy pod may go even though it is unhealthy.
    let pods = [pod(0, "web-new", "ready"), pod(1, "web-new", "pending")];
    assert_eq!(plan(&input(&pods, 1)), vec![delete(1, Why::Condemned)]);
}

#[test]
fn failed_pods_are_deleted_to_be_recreated() {
    let pods = [pod(0, "web-new", "failed"), pod(1, "web-new", "ready")];
    assert_eq!(plan(&input(&pods, 2)), vec![delete(0, Why::Finished)]);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-old", "ready"),
        pod(2, "web-old", "ready"),
    ];
    assert_eq!(plan(&input(&pods, 3)), vec![delete(2, Why::Update)]);
    // web-2 was recreated at the new revision but is not ready: wait.
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-old", "ready"),
        pod(2, "web-new", "pending"),
    ];
    assert!(plan(&input(&pods, 3)).is_empty());
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-old", "ready"),
        pod(2, "web-new", "ready"),
    ];
    assert_eq!(plan(&input(&pods, 3)), vec![delete(1, Why::Update)]);
    // Partition 1: web-0 keeps the old revision.
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-new", "ready"),
        pod(2, "web-new", "ready"),
    ];
    let mut i = input(&pods, 3);
    i.partition = 1;
    assert!(plan(&i).is_empty());
    // A missing pod below the partition comes back at the current revision.
    let pods = [pod(1, "web-new", "ready")];
    let mut i = input(&pods, 2);
    i.partition = 1;
    assert_eq!(plan(&i), vec![create(0, Rev::Current)]);
    // OnDelete never deletes for an update.
    let pods = [pod(0, "web-old", "ready")];
    let mut i = input(&pods, 1);
    i.rolling = false;
    assert!(plan(&i).is_empty());
}

#[test]
fn max_unavailable_replaces_several_pods_at_once() {
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-old", "ready"),
        pod(2, "web-old", "ready"),
        pod(3, "web-old", "ready"),
    ];
    let mut i = input(&pods, 4);
    i.max_unavailable = Some(2);
    assert_eq!(
        plan(&i),
        vec![delete(3, Why::Update), delete(2, Why::Update)]
    );
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-old", "ready"),
        pod(2, "web-new", "ready"),
        pod(3, "web-new", "pending"),
    ];
    let mut i = input(&pods, 4);
    i.max_unavailable = Some(2);
    i.parallel = true;
    assert_eq!(plan(&i), vec![delete(1, Why::Update)]);
}

#[test]
fn ordinals_start_where_the_set_says() {
    let pods = [pod(5, "web-new", "ready")];
    let mut i = input(&pods, 2);
    i.start = 5;
    assert_eq!(plan(&i), vec![create(6, Rev::Update)]);
}

#[test]
fn status_counts_created_ready_and_revisions() {
    let pods = [
        pod(0, "web-old", "ready"),
        pod(1, "web-new", "ready"),
        pod(2, "web-new", "pending"),
        pod(3, "web-new", "terminating"),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let now = Timestamp::from_second(NOW).expect("now");
    assert_eq!(
        status(&refs, "web-old", "web-new", 0, now),
        Counts {
            replicas: 4,
            ready: 3,
            available: 3,
            current: 1,
            updated: 2,
        }
    );
    assert_eq!(status(&refs, "web-old", "web-new", 200, now).available, 0);
}
