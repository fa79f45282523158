//! The DaemonSet controller against real etcd and the real kadm-apiserver, with hollow
//! nodes as kubelets. No scheduler runs: the test binds each daemon pod to the node its
//! affinity pins it to, as kadm-scheduler would.

mod binding;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use binding::{pinned_node, spawn_binder};
use common::wait_for;
use common::workload::{self, hollow, label, ready};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Pod, Taint};
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "daemons";
const WAIT: Duration = Duration::from_secs(60);

/// Live (not terminating) pods by node.
async fn pods_by_node(api: &Api<Pod>) -> BTreeMap<String, Vec<Pod>> {
    let mut m: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in api
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
    {
        if p.metadata.deletion_timestamp.is_none()
            && let Some(n) = pinned_node(&p)
        {
            m.entry(n).or_default().push(p);
        }
    }
    m
}

async fn status_is(api: &Api<DaemonSet>, want: [i32; 5]) -> bool {
    let Ok(ds) = api.get("agent").await else {
        return false;
    };
    let Some(s) = ds.status else { return false };
    s.observed_generation == ds.metadata.generation
        && [
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.updated_number_scheduled.unwrap_or(0),
            s.number_available.unwrap_or(0),
        ] == want
        && s.number_misscheduled == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_per_untainted_node_new_nodes_and_a_rolling_update() -> anyhow::Result<()> {
    let (cluster, client, _cm, _nodes) = workload::start(
        &["--controllers", "daemonset-controller"],
        NS,
        hollow("ds", 3),
    )
    .await?;
    let taint: Taint =
        serde_json::from_value(json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}))?;
    let _tainted = HollowNodes::start(
        client.clone(),
        HollowSpec {
            taints: vec![taint],
            ..hollow("tainted", 1)
        },
    )
    .await?;
    let _binder = spawn_binder(client.clone(), NS, pinned_node);

    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    ds_api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "agent"},
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}},
                        "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}
                }
            }))?,
        )
        .await?;

    // One pod on each untainted node, none on the tainted one.
    wait_for(
        "3 desired, current, ready, updated, available",
        WAIT,
        || async { status_is(&ds_api, [3, 3, 3, 3, 3]).await.then_some(()) },
    )
    .await;
    let by_node = pods_by_node(&pods).await;
    assert_eq!(
        by_node.keys().cloned().collect::<Vec<_>>(),
        vec!["ds-0", "ds-1", "ds-2"],
        "{by_node:?}"
    );
    let revisions = Api::<ControllerRevision>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?
        .items;
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].revision, 1);
    let hash1 = label(&revisions[0], "controller-revision-hash")
        .expect("revision hash label")
        .to_string();
    assert_eq!(revisions[0].name_any(), format!("agent-{hash1}"));
    for (node, list) in &by_node {
        assert_eq!(list.len(), 1, "{node}");
        let p = &list[0];
        assert_eq!(label(p, "controller-revision-hash"), Some(hash1.as_str()));
        assert_eq!(
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some(node.as_str())
        );
        let tolerations = p
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        assert!(
            tolerations.iter().any(
                |t| t.key.as_deref() == Some("node.kubernetes.io/unreachable")
                    && t.effect.as_deref() == Some("NoExecute")
                    && t.toleration_seconds.is_none()
            ),
            "{tolerations:?}"
        );
        assert!(ready(p));
    }
    wait_for("SuccessfulCreate events", WAIT, || async {
        let events = Api::<Event>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await
            .ok()?;
        let created = events
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.involved_object.name.as_deref() == Some("agent")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Created pod: agent-"))
            })
            .count();
        (created == 3).then_some(())
    })
    .await;

    // A new node gets its pod.
    let _late = HollowNodes::start(client.clone(), hollow("late", 1)).await?;
    wait_for("a pod on the new node", WAIT, || async {
        status_is(&ds_api, [4, 4, 4, 4, 4]).await.then_some(())
    })
    .await;
    assert!(pods_by_node(&pods).await.contains_key("late-0"));

    // A rolling update replaces every pod, one node at a time (maxUnavailable 1).
    ds_api
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {
                "containers": [{"name": "agent", "image": "agent:2"}]}}}})),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut worst = 0;
    loop {
        let by_node = pods_by_node(&pods).await;
        let eligible = ["ds-0", "ds-1", "ds-2", "late-0"];
        let without = eligible
            .iter()
            .filter(|n| !by_node.get(**n).is_some_and(|l| l.iter().any(ready)))
            .count();
        worst = worst.max(without);
        if status_is(&ds_api, [4, 4, 4, 4, 4]).await {
            let ds = ds_api.get("agent").await?;
            let images: Vec<String> = by_node
                .values()
                .flatten()
                .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
                .collect();
            if ds.status.as_ref().and_then(|s| s.updated_number_scheduled) == Some(4)
                && images.len() == 4
                && images.iter().all(|i| i == "agent:2")
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rolling update did not finish: {by_node:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        worst <= 1,
        "{worst} nodes lacked a ready pod at once (maxUnavailable 1)"
    );
    let mut revisions = Api::<ControllerRevision>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await?
        .items;
    revisions.sort_by_key(|r| r.revision);
    assert_eq!(
        revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let hash2 = label(&revisions[1], "controller-revision-hash").expect("hash");
    assert_ne!(hash2, hash1);
    for p in pods_by_node(&pods).await.values().flatten() {
        assert_eq!(label(p, "controller-revision-hash"), Some(hash2));
    }
    let out = cluster
        .kubectl_ok(
            None,
            &["-n", NS, "rollout", "status", "ds/agent", "--timeout=30s"],
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("daemon set \"agent\" successfully rolled out"),
        "{text}"
    );
    let out = cluster
        .kubectl_ok(None, &["-n", NS, "rollout", "history", "ds/agent"])
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("REVISION") && text.contains('2'), "{text}");
    Ok(())
}
