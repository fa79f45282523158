//! The node lifecycle and taint eviction controllers against real etcd, the real
//! kadm-apiserver and hollow nodes, with short timings: a node that goes silent becomes
//! Unknown and unreachable-tainted, its pods are evicted by their tolerationSeconds, and a
//! revived node loses its taints.

mod common;

use std::time::{Duration, Instant};

use common::{ControllerManager, wait_for};
use k8s_openapi::api::core::v1::{Event, Node, Pod, Taint};
use kadm_e2e::TestCluster;
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Grace period given to the controller: a silent node is Unknown after about this long.
const GRACE: &str = "--node-monitor-grace-period=4s";
const WAIT: Duration = Duration::from_secs(30);

async fn start(
    cluster: &TestCluster,
    nodes: usize,
) -> anyhow::Result<(HollowNodes, ControllerManager)> {
    let client = cluster.kube_client().await?;
    let hollow = HollowNodes::start(
        client,
        HollowSpec {
            count: nodes,
            lease_renew: Duration::from_secs(1),
            ..HollowSpec::default()
        },
    )
    .await?;
    let mut cm = ControllerManager::start(
        cluster,
        "controller-manager",
        &[
            "--leader-elect=false",
            "--controllers=node-lifecycle-controller,taint-eviction-controller",
            "--node-monitor-period=1s",
            GRACE,
        ],
    )?;
    cm.wait_healthy().await;
    Ok((hollow, cm))
}

fn pod(name: &str, node: &str, tolerations: Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "tolerations": tolerations,
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
        },
    }))?)
}

fn noexec(key: &str, seconds: Option<i64>) -> Value {
    let mut t = json!({"key": key, "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = seconds {
        t["tolerationSeconds"] = json!(s);
    }
    t
}

fn condition(node: &Node, type_: &str) -> Option<(String, Option<String>, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    taints(node)
        .iter()
        .any(|t| t.key == key && t.effect == effect)
}

fn pod_ready(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Gone, or marked for deletion.
async fn evicted(pods: &Api<Pod>, name: &str) -> bool {
    match pods.get_opt(name).await {
        Ok(None) => true,
        Ok(Some(p)) => p.metadata.deletion_timestamp.is_some(),
        Err(_) => false,
    }
}

async fn wait_running(pods: &Api<Pod>, names: &[&str]) {
    for name in names {
        wait_for(&format!("pod {name} Running"), WAIT, || async {
            let p = pods.get_opt(name).await.ok().flatten()?;
            (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
    }
}

async fn events(client: &kube::Client) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn has_event(events: &[Event], reason: &str, object: &str, message: &str) -> bool {
    events.iter().any(|e| {
        e.reason.as_deref() == Some(reason)
            && e.involved_object.name.as_deref() == Some(object)
            && e.message.as_deref().is_some_and(|m| m.contains(message))
    })
}

#[tokio::test]
async fn silent_node_goes_unknown_and_its_pods_leave_by_their_tolerations() -> anyhow::Result<()> {
    // Admission gives tolerations of 6 s to pods that have none (Kubernetes: 300 s).
    let cluster = TestCluster::start_with(kadm_e2e::Options {
        apiserver_args: vec![
            "--default-not-ready-toleration-seconds=6".into(),
            "--default-unreachable-toleration-seconds=6".into(),
        ],
        ..kadm_e2e::Options::default()
    })
    .await?;
    let client = cluster.kube_client().await?;
    let (hollow, _cm) = start(&cluster, 2).await?;
    let nodes = Api::<Node>::all(client.clone());
    let pods = Api::<Pod>::namespaced(client.clone(), "default");

    // Both NoExecute tolerations, so only the seconds decide.
    let short = json!([noexec(UNREACHABLE, Some(3)), noexec(NOT_READY, Some(3))]);
    let forever = json!([noexec(UNREACHABLE, None), noexec(NOT_READY, None)]);
    for (name, tolerations) in [
        ("short", short),
        ("forever", forever),
        ("defaulted", json!([])),
    ] {
        pods.create(&PostParams::default(), &pod(name, "hollow-1", tolerations)?)
            .await?;
    }
    wait_running(&pods, &["short", "forever", "defaulted"]).await;
    let defaulted = pods.get("defaulted").await?;
    let admitted: Vec<(String, Option<i64>)> = defaulted
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.toleration_seconds))
        .collect();
    assert_eq!(
        admitted,
        vec![
            (NOT_READY.to_string(), Some(6)),
            (UNREACHABLE.to_string(), Some(6))
        ],
        "DefaultTolerationSeconds admission"
    );
    // A pod with its own tolerations for the taints gets no defaults.
    let forever_spec = pods.get("forever").await?.spec.unwrap_or_default();
    assert_eq!(forever_spec.tolerations.map(|t| t.len()), Some(2));

    // A healthy node stays untouched for longer than the grace period.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let healthy = nodes.get("hollow-1").await?;
    assert_eq!(
        condition(&healthy, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert!(taints(&healthy).is_empty(), "{:?}", taints(&healthy));

    hollow.silence("hollow-1");
    let silenced = Instant::now();
    let unknown = wait_for(
        "hollow-1 Ready=Unknown with both unreachable taints",
        WAIT,
        || async {
            let n = nodes.get("hollow-1").await.ok()?;
            let ready = condition(&n, "Ready")?;
            (ready.0 == "Unknown"
                && has_taint(&n, UNREACHABLE, "NoSchedule")
                && has_taint(&n, UNREACHABLE, "NoExecute"))
            .then_some(n)
        },
    )
    .await;
    let took = silenced.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "marked Unknown after {took:?}, before the 4s grace period"
    );
    let ready = condition(&unknown, "Ready").expect("ready");
    assert_eq!(ready.1.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready.2.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    for c in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            condition(&unknown, c).map(|c| c.0).as_deref(),
            Some("Unknown"),
            "{c}"
        );
    }
    for t in taints(&unknown) {
        assert!(t.time_added.is_some(), "taint without timeAdded: {t:?}");
    }
    // The other node keeps renewing and stays Ready.
    let other = nodes.get("hollow-0").await?;
    assert_eq!(
        condition(&other, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert!(taints(&other).is_empty());

    // Nobody vouches for the pods' readiness any more.
    wait_for("pod forever Ready=False", WAIT, || async {
        let p = pods.get_opt("forever").await.ok().flatten()?;
        (pod_ready(&p).as_deref() == Some("False")).then_some(())
    })
    .await;

    let tainted = Instant::now();
    wait_for("pod short evicted", WAIT, || async {
        evicted(&pods, "short").await.then_some(())
    })
    .await;
    let after = tainted.elapsed();
    assert!(
        after >= Duration::from_secs(1),
        "short was evicted {after:?} after the taint, before its 3s toleration"
    );
    assert!(
        !evicted(&pods, "defaulted").await,
        "defaulted went before short"
    );
    wait_for("pod defaulted evicted", WAIT, || async {
        evicted(&pods, "defaulted").await.then_some(())
    })
    .await;
    let after = tainted.elapsed();
    assert!(
        after >= Duration::from_secs(4),
        "defaulted was evicted {after:?} after the taint, before its 6s default toleration"
    );
    let short = pods.get("short").await?;
    let disruption = short
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget").cloned())
        .expect("DisruptionTarget condition");
    assert_eq!(disruption.reason.as_deref(), Some("DeletionByTaintManager"));

    // Tolerated for ever: still there well after the others' deadlines.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!evicted(&pods, "forever").await, "forever was evicted");

    let recorded = wait_for(
        "NodeNotReady and TaintManagerEviction events",
        WAIT,
        || async {
            let ev = events(&client).await;
            (has_event(
                &ev,
                "NodeNotReady",
                "hollow-1",
                "Node hollow-1 status is now: NodeNotReady",
            ) && has_event(&ev, "NodeNotReady", "forever", "Node is not ready")
                && has_event(
                    &ev,
                    "TaintManagerEviction",
                    "short",
                    "Marking for deletion Pod default/short",
                ))
            .then_some(ev)
        },
    )
    .await;
    assert!(!recorded.is_empty());

    // The kubelet comes back: Ready again, the taints go, the evicted pod's deletion ends.
    hollow.revive("hollow-1");
    wait_for("hollow-1 Ready without taints", WAIT, || async {
        let n = nodes.get("hollow-1").await.ok()?;
        (condition(&n, "Ready")?.0 == "True" && taints(&n).is_empty()).then_some(())
    })
    .await;
    wait_for("pod short gone", WAIT, || async {
        matches!(pods.get_opt("short").await, Ok(None)).then_some(())
    })
    .await;
    assert!(!evicted(&pods, "forever").await);
    hollow.stop().await;
    Ok(())
}

#[tokio::test]
async fn untolerated_noexecute_taint_evicts_at_once_and_removal_cancels() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let (hollow, _cm) = start(&cluster, 1).await?;
    let nodes = Api::<Node>::all(client.clone());
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let drain = |seconds: Option<i64>| noexec("example.com/drain", seconds);
    for (name, tolerations) in [
        ("plain", json!([])),
        ("brief", json!([drain(Some(2))])),
        ("patient", json!([drain(Some(600))])),
        ("stays", json!([drain(None)])),
    ] {
        pods.create(&PostParams::default(), &pod(name, "hollow-0", tolerations)?)
            .await?;
    }
    wait_running(&pods, &["plain", "brief", "patient", "stays"]).await;

    let taint = json!({"spec": {"taints": [
        {"key": "example.com/drain", "value": "now", "effect": "NoExecute"},
    ]}});
    nodes
        .patch("hollow-0", &PatchParams::default(), &Patch::Merge(&taint))
        .await?;
    let tainted = Instant::now();
    wait_for("pod plain evicted", Duration::from_secs(5), || async {
        evicted(&pods, "plain").await.then_some(())
    })
    .await;
    wait_for("pod brief evicted", WAIT, || async {
        evicted(&pods, "brief").await.then_some(())
    })
    .await;
    assert!(
        tainted.elapsed() >= Duration::from_millis(1500),
        "brief evicted after {:?}, before its 2s toleration",
        tainted.elapsed()
    );
    assert!(!evicted(&pods, "patient").await);
    assert!(!evicted(&pods, "stays").await);

    // The taint goes: patient's scheduled eviction is cancelled, with Kubernetes' event.
    nodes
        .patch(
            "hollow-0",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"taints": null}})),
        )
        .await?;
    wait_for("cancel event for patient", WAIT, || async {
        let ev = events(&client).await;
        has_event(
            &ev,
            "TaintManagerEviction",
            "patient",
            "Cancelling deletion of Pod default/patient",
        )
        .then_some(())
    })
    .await;
    assert!(!evicted(&pods, "patient").await);
    assert!(!evicted(&pods, "stays").await);
    hollow.stop().await;
    Ok(())
}
