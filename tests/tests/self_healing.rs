//! Self-healing end to end: the scheduler, the controller-manager and hollow kubelets on a
//! real etcd + kadm-apiserver. A Deployment runs; the node of one of its pods goes silent;
//! the node lifecycle controller marks it unreachable and taints it, the taint eviction
//! controller evicts the pod after its (admission-defaulted) toleration, the ReplicaSet
//! makes a replacement and the scheduler places it on a healthy node.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kadm_e2e::component::{Component, Kind, wait_for};
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kadm_e2e::{Options, TestCluster};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

const NS: &str = "default";
/// Node lifecycle, eviction and rescheduling together, with the shortened timings below.
const HEAL_WITHIN: Duration = Duration::from_secs(60);

/// A workspace component's binary as a fixture `Kind` (the path lives for the test).
fn kind(binary: &str, env: &str, kubeconfig: &'static str, log_target: &'static str) -> Kind {
    let path = kadm_e2e::cluster::workspace_binary(binary, env).expect("component binary");
    Kind {
        binary: Box::leak(path.display().to_string().into_boxed_str()),
        kubeconfig,
        log_target,
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_a_silent_node_are_evicted_and_recreated_on_healthy_nodes() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec![
            "--default-not-ready-toleration-seconds=2".into(),
            "--default-unreachable-toleration-seconds=2".into(),
        ],
        ..Options::default()
    })
    .await?;
    let client = cluster.kube_client().await?;
    let hollow = HollowNodes::start(
        client.clone(),
        HollowSpec {
            count: 4,
            name_prefix: "heal".into(),
            lease_renew: Duration::from_secs(1),
            ..HollowSpec::default()
        },
    )
    .await?;
    let mut cm = Component::start(
        kind(
            "kadm-controller-manager",
            "KADM_CONTROLLER_MANAGER_BIN",
            kadm_bootstrap::kubeconfig::CONTROLLER_MANAGER_CONF,
            "kadm_controller_manager",
        ),
        &cluster,
        "kadm-controller-manager",
        &[
            "--node-monitor-period=1s",
            "--node-monitor-grace-period=4s",
            "--node-startup-grace-period=4s",
        ],
    )?;
    cm.wait_healthy().await;
    let mut scheduler = Component::start(
        kind(
            "kadm-scheduler",
            "KADM_SCHEDULER_BIN",
            kadm_bootstrap::kubeconfig::SCHEDULER_CONF,
            "kadm_scheduler",
        ),
        &cluster,
        "kadm-scheduler",
        &[],
    )?;
    scheduler.wait_healthy().await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{
                            "name": "web", "image": "registry.local/web:1",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
                        }]}
                    }
                }
            }))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let selector = ListParams::default().labels("app=web");
    let running = wait_for("3 ready pods of web", HEAL_WITHIN, || {
        let pods = pods.clone();
        let selector = selector.clone();
        async move {
            let list = pods.list(&selector).await.ok()?;
            let ready: Vec<Pod> = list.items.into_iter().filter(ready).collect();
            (ready.len() == 3).then_some(ready)
        }
    })
    .await;

    // The node of one pod goes silent.
    let victim = running[0].clone();
    let silent = node_of(&victim);
    hollow.silence(&silent);

    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(
        "the silent node to be Unknown and tainted unreachable",
        HEAL_WITHIN,
        || {
            let nodes = nodes.clone();
            let silent = silent.clone();
            async move {
                let n = nodes.get(&silent).await.ok()?;
                let unknown = n
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "Unknown");
                let tainted =
                    n.spec.as_ref()?.taints.as_ref()?.iter().any(|t| {
                        t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute"
                    });
                (unknown && tainted).then_some(())
            }
        },
    )
    .await;

    // Evicted (terminating: the silent kubelet never confirms), replaced elsewhere.
    let victim_name = victim.metadata.name.clone().unwrap_or_default();
    let healed = wait_for(
        "3 ready pods on healthy nodes and the victim evicted",
        HEAL_WITHIN,
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            let silent = silent.clone();
            let victim_name = victim_name.clone();
            async move {
                let list = pods.list(&selector).await.ok()?;
                let evicted = list.items.iter().all(|p| {
                    p.metadata.name.as_deref() != Some(victim_name.as_str())
                        || p.metadata.deletion_timestamp.is_some()
                });
                let healthy: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| ready(p) && node_of(p) != silent)
                    .collect();
                (evicted && healthy.len() == 3).then_some(healthy)
            }
        },
    )
    .await;
    assert!(
        healed.iter().all(|p| node_of(p) != silent),
        "a replacement landed on the silent node {silent}"
    );
    wait_for(
        "the Deployment to count 3 available replicas again",
        HEAL_WITHIN,
        || {
            let deployments = deployments.clone();
            async move {
                let status = deployments.get("web").await.ok()?.status?;
                (status.available_replicas == Some(3)).then_some(())
            }
        },
    )
    .await;

    hollow.stop().await;
    Ok(())
}
