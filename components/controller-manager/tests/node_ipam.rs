//! The node IPAM controller against real etcd, the real kadm-apiserver and hollow nodes:
//! distinct pod CIDRs per node, allocations kept across a restart, exhaustion reported and
//! resolved by a deletion.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{ControllerManager, wait_for};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kadm_e2e::TestCluster;
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn spec(prefix: &str, count: usize) -> HollowSpec {
    HollowSpec {
        count,
        name_prefix: prefix.into(),
        lease_renew: Duration::from_secs(5),
        ..HollowSpec::default()
    }
}

fn ipam(cluster: &TestCluster, name: &str, extra: &[&str]) -> anyhow::Result<ControllerManager> {
    let mut args = vec!["--leader-elect=false", "--controllers=node-ipam-controller"];
    args.extend_from_slice(extra);
    ControllerManager::start(cluster, name, &args)
}

/// Node name → podCIDR, once every named node has one.
async fn cidrs(nodes: &Api<Node>, names: &[String]) -> BTreeMap<String, String> {
    wait_for("pod CIDRs on every node", WAIT, || async {
        let mut out = BTreeMap::new();
        for n in names {
            let node = nodes.get(n).await.ok()?;
            let spec = node.spec?;
            let cidr = spec.pod_cidr?;
            if spec.pod_cidrs.as_deref() != Some(std::slice::from_ref(&cidr)) {
                return None;
            }
            out.insert(n.clone(), cidr);
        }
        Some(out)
    })
    .await
}

fn in_cluster_cidr(cidr: &str) -> bool {
    let Some((ip, len)) = cidr.split_once('/') else {
        return false;
    };
    len == "24" && ip.starts_with("10.244.") && ip.ends_with(".0")
}

#[tokio::test]
async fn every_node_gets_a_distinct_cidr_and_a_restart_keeps_them() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let nodes = Api::<Node>::all(client.clone());
    let first = HollowNodes::start(client.clone(), spec("hollow", 5)).await?;
    let mut cm = ipam(&cluster, "ipam-1", &[])?;
    cm.wait_healthy().await;
    let before = cidrs(&nodes, &first.names()).await;
    let distinct: BTreeSet<&String> = before.values().collect();
    assert_eq!(distinct.len(), 5, "{before:?}");
    assert!(before.values().all(|c| in_cluster_cidr(c)), "{before:?}");

    // The hollow kubelet hands out pod IPs from its node's CIDR, as a CNI plugin would.
    let cidr0 = before["hollow-0"].clone();
    let prefix = cidr0.trim_end_matches("0/24").to_string();
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    // Give the simulator a moment to see the CIDR on its node watch.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"nodeName": "hollow-0", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let ip = wait_for("pod IP", WAIT, || async {
        pods.get("p").await.ok()?.status?.pod_ip
    })
    .await;
    assert!(ip.starts_with(&prefix), "pod IP {ip} not in {cidr0}");

    // Restart: nothing is handed out twice, and new nodes get fresh CIDRs.
    drop(cm);
    let second = HollowNodes::start(client.clone(), spec("late", 3)).await?;
    let mut cm = ipam(&cluster, "ipam-2", &[])?;
    cm.wait_healthy().await;
    let all_names: Vec<String> = first.names().into_iter().chain(second.names()).collect();
    let after = cidrs(&nodes, &all_names).await;
    for (n, c) in &before {
        assert_eq!(&after[n], c, "{n} changed its CIDR across the restart");
    }
    let distinct: BTreeSet<&String> = after.values().collect();
    assert_eq!(distinct.len(), 8, "{after:?}");
    drop(cm);
    first.stop().await;
    second.stop().await;
    Ok(())
}

#[tokio::test]
async fn exhausted_cluster_cidr_waits_for_a_deleted_node() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let nodes = Api::<Node>::all(client.clone());
    let mut cm = ipam(&cluster, "ipam", &["--cluster-cidr=10.100.0.0/23"])?;
    cm.wait_healthy().await;
    let hollow = HollowNodes::start(client.clone(), spec("hollow", 3)).await?;

    let (with, without) = wait_for("two nodes with CIDRs and one without", WAIT, || async {
        let list = nodes.list(&ListParams::default()).await.ok()?;
        let (with, without): (Vec<Node>, Vec<Node>) = list
            .items
            .into_iter()
            .partition(|n| n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_some());
        (with.len() == 2 && without.len() == 1).then_some((with, without))
    })
    .await;
    let starved = without[0].metadata.name.clone().unwrap_or_default();
    let events = Api::<Event>::namespaced(client.clone(), "default");
    wait_for("CIDRNotAvailable event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("CIDRNotAvailable")
                    && e.involved_object.name.as_deref() == Some(starved.as_str())
                    && e.message.as_deref()
                        == Some(format!("Node {starved} status is now: CIDRNotAvailable").as_str())
            })
            .then_some(())
    })
    .await;

    // Deleting a node frees its CIDR for the waiting one.
    let victim = with[0].metadata.name.clone().unwrap_or_default();
    let freed = with[0]
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .unwrap_or_default();
    hollow.silence(&victim);
    nodes.delete(&victim, &DeleteParams::default()).await?;
    let got = wait_for("the starved node gets the freed CIDR", WAIT, || async {
        nodes.get(&starved).await.ok()?.spec?.pod_cidr
    })
    .await;
    assert_eq!(got, freed);
    hollow.stop().await;
    Ok(())
}
