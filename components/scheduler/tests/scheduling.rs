//! kadm-scheduler against real etcd, the real kadm-apiserver and hollow nodes: pods are
//! spread and bound, failures carry Kubernetes' exact message and condition, a pod waits
//! for the event that can help it, and selectors, taints, anti-affinity, topology spread
//! and preemption behave as Kubernetes documents them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    WAIT, create_pod, events_for, get_pod, node_of, nodes, pod, scheduled_condition, scheduler,
    wait_bound, wait_event, wait_for,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kadm_e2e::TestCluster;
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn pods_spread_over_equal_nodes_and_get_scheduled_events() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let hollow = nodes(&client, "equal", 3, "4", &[], json!([])).await?;
    let _s = scheduler(&cluster).await?;
    for i in 0..6 {
        create_pod(
            &client,
            pod(
                &format!("web-{i}"),
                "500m",
                json!({"app": "web"}),
                json!({}),
            ),
        )
        .await?;
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..6 {
        *per_node
            .entry(wait_bound(&client, &format!("web-{i}")).await)
            .or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|n| *n == 2), "{per_node:?}");

    let node = get_pod(&client, "web-0")
        .await
        .as_ref()
        .and_then(node_of)
        .expect("bound");
    let message = wait_event(&client, "web-0", "Scheduled").await;
    assert_eq!(
        message,
        format!("Successfully assigned default/web-0 to {node}")
    );
    let events = events_for(&client, "web-0", "Scheduled").await;
    assert_eq!(events[0].1, "default-scheduler", "{events:?}");
    let bound = get_pod(&client, "web-0").await.expect("pod");
    assert_eq!(
        scheduled_condition(&bound).map(|c| c.0),
        Some("True".into())
    );
    drop(hollow);
    Ok(())
}

#[tokio::test]
async fn unschedulable_pod_gets_kubernetes_message_then_binds_when_a_node_is_added()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let _cp = nodes(
        &client,
        "cp",
        1,
        "8",
        &[],
        json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
    )
    .await?;
    let _small = nodes(&client, "small", 2, "1", &[], json!([])).await?;
    let s = scheduler(&cluster).await?;
    create_pod(&client, pod("big", "2", json!({}), json!({}))).await?;

    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint \
        {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes \
        are available: 3 Preemption is not helpful for scheduling.";
    let condition = wait_for("PodScheduled=False on big", WAIT, || async {
        get_pod(&client, "big")
            .await
            .as_ref()
            .and_then(scheduled_condition)
            .filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        condition,
        ("False".into(), "Unschedulable".into(), expected.into())
    );
    assert_eq!(
        wait_event(&client, "big", "FailedScheduling").await,
        expected
    );

    // No polling: while nothing changes the pod is not tried again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let attempts = s
        .log_text()
        .lines()
        .filter(|l| l.contains("unschedulable") && l.contains("default/big"))
        .count();
    assert_eq!(attempts, 1, "the pod was retried without a cluster change");
    assert!(
        get_pod(&client, "big")
            .await
            .as_ref()
            .and_then(node_of)
            .is_none()
    );

    let _large = nodes(&client, "large", 1, "4", &[], json!([])).await?;
    let node = wait_for(
        "big to bind after the node was added",
        Duration::from_secs(10),
        || async { get_pod(&client, "big").await.as_ref().and_then(node_of) },
    )
    .await;
    assert_eq!(node, "large-0");
    Ok(())
}

#[tokio::test]
async fn node_selectors_and_taints_steer_pods() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let _plain = nodes(&client, "plain", 2, "4", &[], json!([])).await?;
    let _ssd = nodes(&client, "ssd", 1, "4", &[("disk", "ssd")], json!([])).await?;
    let _gpu = nodes(
        &client,
        "gpu",
        1,
        "4",
        &[("pool", "gpu")],
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    .await?;
    let _s = scheduler(&cluster).await?;

    create_pod(
        &client,
        pod(
            "on-ssd",
            "100m",
            json!({}),
            json!({"nodeSelector": {"disk": "ssd"}}),
        ),
    )
    .await?;
    create_pod(&client, pod("on-gpu", "100m", json!({}), json!({"nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}))).await?;
    create_pod(
        &client,
        pod(
            "untolerated",
            "100m",
            json!({}),
            json!({"nodeSelector": {"pool": "gpu"}}),
        ),
    )
    .await?;
    create_pod(&client, pod("affinity", "100m", json!({}), json!({"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}}))).await?;

    assert_eq!(wait_bound(&client, "on-ssd").await, "ssd-0");
    assert_eq!(wait_bound(&client, "on-gpu").await, "gpu-0");
    assert_eq!(wait_bound(&client, "affinity").await, "ssd-0");
    assert_eq!(
        wait_event(&client, "untolerated", "FailedScheduling").await,
        "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 3 node(s) \
         didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 \
         Preemption is not helpful for scheduling."
    );
    Ok(())
}

fn anti_affinity() -> serde_json::Value {
    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}})
}

#[tokio::test]
async fn required_anti_affinity_puts_one_replica_per_node() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let _n = nodes(&client, "node", 3, "8", &[], json!([])).await?;
    let _s = scheduler(&cluster).await?;
    for i in 0..3 {
        create_pod(
            &client,
            pod(
                &format!("db-{i}"),
                "100m",
                json!({"app": "db"}),
                anti_affinity(),
            ),
        )
        .await?;
    }
    let mut used = Vec::new();
    for i in 0..3 {
        used.push(wait_bound(&client, &format!("db-{i}")).await);
    }
    used.sort();
    assert_eq!(used, ["node-0", "node-1", "node-2"]);
    create_pod(
        &client,
        pod("db-3", "100m", json!({"app": "db"}), anti_affinity()),
    )
    .await?;
    assert_eq!(
        wait_event(&client, "db-3", "FailedScheduling").await,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: \
         0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    // An unrelated pod is not held back by the db pods' anti-affinity.
    create_pod(
        &client,
        pod("web", "100m", json!({"app": "web"}), json!({})),
    )
    .await?;
    wait_bound(&client, "web").await;
    Ok(())
}

#[tokio::test]
async fn topology_spread_beats_bigger_nodes() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    // Without the constraint LeastAllocated would put every pod into zone a.
    let _a = nodes(
        &client,
        "big",
        2,
        "64",
        &[("topology.kubernetes.io/zone", "a")],
        json!([]),
    )
    .await?;
    let _b = nodes(
        &client,
        "small",
        1,
        "4",
        &[("topology.kubernetes.io/zone", "b")],
        json!([]),
    )
    .await?;
    let _s = scheduler(&cluster).await?;
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    let mut zones: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..4 {
        let name = format!("s-{i}");
        create_pod(
            &client,
            pod(&name, "1", json!({"app": "spread"}), spread.clone()),
        )
        .await?;
        // One at a time, so every decision sees the previous binding.
        let node = wait_bound(&client, &name).await;
        *zones
            .entry(if node.starts_with("big") { "a" } else { "b" })
            .or_default() += 1;
    }
    assert_eq!(zones, BTreeMap::from([("a", 2), ("b", 2)]));
    let free = pod("free", "1", json!({"app": "free"}), json!({}));
    create_pod(&client, free).await?;
    assert!(wait_bound(&client, "free").await.starts_with("big"));
    Ok(())
}

#[tokio::test]
async fn higher_priority_pod_preempts_a_lower_priority_one() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let pc: PriorityClass = serde_json::from_value(json!({"apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000}))?;
    Api::<PriorityClass>::all(client.clone())
        .create(&PostParams::default(), &pc)
        .await?;
    let _n = nodes(&client, "only", 1, "2", &[], json!([])).await?;
    let _s = scheduler(&cluster).await?;
    for i in 0..2 {
        create_pod(
            &client,
            pod(&format!("low-{i}"), "1", json!({"tier": "low"}), json!({})),
        )
        .await?;
        wait_bound(&client, &format!("low-{i}")).await;
    }
    let vip = create_pod(
        &client,
        pod("vip", "1", json!({}), json!({"priorityClassName": "high"})),
    )
    .await?;
    let uid = vip.metadata.uid.clone().unwrap_or_default();

    assert_eq!(
        wait_event(&client, "vip", "FailedScheduling").await,
        "0/1 nodes are available: 1 Insufficient cpu."
    );
    let (victim, message) = wait_for("a Preempted event", WAIT, || async {
        for v in ["low-0", "low-1"] {
            if let Some((m, _)) = events_for(&client, v, "Preempted").await.into_iter().next() {
                return Some((v.to_string(), m));
            }
        }
        None
    })
    .await;
    assert_eq!(message, format!("Preempted by pod {uid} on node only-0"));
    assert_eq!(wait_bound(&client, "vip").await, "only-0");
    let pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), common::NS)
        .list(&Default::default())
        .await?
        .items;
    let low: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .filter(|n| n.starts_with("low-"))
        .collect();
    assert_eq!(low.len(), 1, "exactly one victim: {low:?}");
    assert!(!low.contains(&victim), "{victim} should be gone: {low:?}");
    Ok(())
}
