//! The ReplicaSet controller against real etcd and the real kadm-apiserver, with hollow
//! nodes as kubelets (no scheduler: templates name their node). Creation from the template,
//! adoption of a matching orphan, release of a relabelled pod, deletion preference on scale
//! down (through `kubectl scale`), events, and orphaning by `--cascade=orphan` followed by
//! adoption by a new ReplicaSet.

mod common;

use std::time::Duration;

use common::wait_for;
use common::workload::{self, Started, hollow};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "rs";
const WAIT: Duration = Duration::from_secs(60);

fn controller_uid(p: &Pod) -> Option<String> {
    p.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// Live pods (not terminating).
async fn live_pods(api: &Api<Pod>) -> Vec<Pod> {
    api.list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// `[replicas, fullyLabeled, ready, available]` once observedGeneration is current.
async fn rs_status(api: &Api<ReplicaSet>, name: &str) -> Option<[i32; 4]> {
    let rs = api.get(name).await.ok()?;
    let s = rs.status?;
    (s.observed_generation == rs.metadata.generation).then_some([
        s.replicas,
        s.fully_labeled_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    ])
}

fn replicaset(name: &str, replicas: i32) -> anyhow::Result<ReplicaSet> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"note": "from-template"}},
                "spec": {"nodeName": "rsnode-0", "containers": [{"name": "web", "image": "nginx:1"}]}}
        }
    }))?)
}

async fn start() -> anyhow::Result<Started> {
    workload::start(
        &["--controllers", "replicaset,garbagecollector"],
        NS,
        hollow("rsnode", 1),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_creates_adopts_releases_and_deletes_unready_pods_first() -> anyhow::Result<()> {
    let (cluster, client, _cm, _nodes) = start().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);

    // An orphan that matches, never scheduled (no node): adopted, and the first to go later.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "stray", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}
        }))?,
    )
    .await?;
    let rs = sets
        .create(&PostParams::default(), &replicaset("web", 3)?)
        .await?;
    let uid = rs.uid().expect("uid");

    // 3 pods: the adopted orphan and two from the template; the orphan lacks `tier`, so two
    // are fully labeled, and only the hollow node's two are ready.
    wait_for(
        "3 replicas, 2 labeled, 2 ready, 2 available",
        WAIT,
        || async { (rs_status(&sets, "web").await == Some([3, 2, 2, 2])).then_some(()) },
    )
    .await;
    let live = live_pods(&pods).await;
    assert_eq!(live.len(), 3);
    assert!(
        live.iter()
            .all(|p| controller_uid(p).as_deref() == Some(uid.as_str()))
    );
    let stray = pods.get("stray").await?;
    let r = &stray.owner_references()[0];
    assert_eq!((r.kind.as_str(), r.name.as_str()), ("ReplicaSet", "web"));
    assert_eq!(
        (r.controller, r.block_owner_deletion),
        (Some(true), Some(true))
    );
    let made: Vec<&Pod> = live.iter().filter(|p| p.name_any() != "stray").collect();
    for p in &made {
        let name = p.name_any();
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(p.labels().get("tier").map(String::as_str), Some("front"));
        assert_eq!(
            p.annotations().get("note").map(String::as_str),
            Some("from-template")
        );
    }

    // Kubernetes' events, one per created pod.
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let created = wait_for("SuccessfulCreate events", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?.items;
        let msgs: Vec<String> = list
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .filter_map(|e| e.message.clone())
            .collect();
        (msgs.len() == 2).then_some(msgs)
    })
    .await;
    for p in &made {
        assert!(
            created.contains(&format!("Created pod: {}", p.name_any())),
            "{created:?}"
        );
    }

    // Scale down through kubectl: the unscheduled, unready orphan goes first.
    cluster
        .kubectl_ok(None, &["-n", NS, "scale", "rs", "web", "--replicas=2"])
        .await?;
    wait_for("stray deleted", WAIT, || async {
        matches!(pods.get_opt("stray").await, Ok(None)).then_some(())
    })
    .await;
    wait_for("2 replicas, all ready", WAIT, || async {
        (rs_status(&sets, "web").await == Some([2, 2, 2, 2])).then_some(())
    })
    .await;
    assert_eq!(live_pods(&pods).await.len(), 2);

    // A pod relabelled out of the selector is released and replaced.
    let victim = made[0].name_any();
    pods.patch(
        &victim,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await?;
    wait_for("relabelled pod released", WAIT, || async {
        let p = pods.get(&victim).await.ok()?;
        controller_uid(&p).is_none().then_some(())
    })
    .await;
    wait_for("a replacement", WAIT, || async {
        let owned = live_pods(&pods)
            .await
            .into_iter()
            .filter(|p| controller_uid(p).as_deref() == Some(uid.as_str()))
            .count();
        (owned == 2 && rs_status(&sets, "web").await == Some([2, 2, 2, 2])).then_some(())
    })
    .await;
    assert!(
        pods.get_opt(&victim).await?.is_some(),
        "released, not deleted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_pods_are_adopted_by_the_next_replicaset() -> anyhow::Result<()> {
    let (cluster, client, _cm, _nodes) = start().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    sets.create(&PostParams::default(), &replicaset("first", 3)?)
        .await?;
    wait_for("3 ready", WAIT, || async {
        (rs_status(&sets, "first").await == Some([3, 3, 3, 3])).then_some(())
    })
    .await;
    let before: Vec<String> = live_pods(&pods)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();

    cluster
        .kubectl_ok(
            None,
            &[
                "-n",
                NS,
                "delete",
                "rs",
                "first",
                "--cascade=orphan",
                "--wait=true",
            ],
        )
        .await?;
    wait_for("pods orphaned", WAIT, || async {
        let live = live_pods(&pods).await;
        (live.len() == 3 && live.iter().all(|p| controller_uid(p).is_none())).then_some(())
    })
    .await;

    // The next ReplicaSet with the same selector takes them instead of creating new ones.
    let second = sets
        .create(&PostParams::default(), &replicaset("second", 3)?)
        .await?;
    let uid = second.uid().expect("uid");
    wait_for("adopted by second", WAIT, || async {
        let live = live_pods(&pods).await;
        (live.len() == 3
            && live
                .iter()
                .all(|p| controller_uid(p).as_deref() == Some(uid.as_str()))
            && rs_status(&sets, "second").await == Some([3, 3, 3, 3]))
        .then_some(())
    })
    .await;
    let mut after: Vec<String> = live_pods(&pods)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    let mut before = before;
    before.sort();
    after.sort();
    assert_eq!(before, after, "the same pods, none created");
    Ok(())
}
