//! The StatefulSet controller against real etcd and the real kadm-apiserver, with one hollow
//! node as the kubelet. No scheduler runs: the test binds pods itself, which also lets it
//! hold `web-0` unready and check that `web-1` waits for it.

mod binding;
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use binding::{bind, spawn_binder};
use common::wait_for;
use common::workload::{self, hollow, label, ready};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

const NS: &str = "stateful";
const NODE: &str = "sts-0";
const WAIT: Duration = Duration::from_secs(60);

fn image(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first()?.image.as_deref()
}

async fn wait_ready(pods: &Api<Pod>, name: &str) -> Pod {
    wait_for(&format!("{name} ready"), WAIT, || async {
        pods.get_opt(name).await.ok().flatten().filter(ready)
    })
    .await
}

/// The set's status once it observed its generation and `check` holds.
async fn wait_status(
    api: &Api<StatefulSet>,
    what: &str,
    check: impl Fn(&k8s_openapi::api::apps::v1::StatefulSetStatus) -> bool,
) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
    wait_for(what, WAIT, || async {
        let set = api.get("web").await.ok()?;
        let s = set.status?;
        (s.observed_generation == set.metadata.generation && check(&s)).then_some(s)
    })
    .await
}

/// What happened to the namespace's pods, in order: (name, "created" | "deleting" | "gone").
type Log = Arc<Mutex<Vec<(String, &'static str)>>>;

fn record_pod_changes(client: Client) -> (Log, tokio::task::JoinHandle<()>) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let task = tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, NS);
        let mut uids = HashMap::<String, (String, bool)>::new();
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(ev) = stream.next().await {
            let (pod, gone) = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => (p, false),
                Ok(watcher::Event::Delete(p)) => (p, true),
                _ => continue,
            };
            let name = pod.name_any();
            let uid = pod.uid().unwrap_or_default();
            let mut log = sink.lock().expect("log");
            if uids.get(&name).map(|(u, _)| u) != Some(&uid) {
                uids.insert(name.clone(), (uid.clone(), false));
                log.push((name.clone(), "created"));
            }
            let deleting = pod.metadata.deletion_timestamp.is_some() || gone;
            if deleting && uids.get(&name).is_some_and(|(_, d)| !d) {
                uids.insert(name.clone(), (uid, true));
                log.push((name.clone(), "deleting"));
            }
            if gone {
                log.push((name, "gone"));
            }
        }
    });
    (log, task)
}

/// The log's entries of one kind, by pod name.
fn entries(log: &Log, kinds: &[&str]) -> Vec<String> {
    log.lock()
        .expect("log")
        .iter()
        .filter(|(_, what)| kinds.contains(what))
        .map(|(n, what)| format!("{n} {what}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_creation_reverse_scale_down_and_partitioned_rolling_update() -> anyhow::Result<()>
{
    let (cluster, client, _cm, _node) = workload::start(
        &["--controllers", "statefulset-controller"],
        NS,
        hollow("sts", 1),
    )
    .await?;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        }))?,
    )
    .await?;

    // web-0 first, with its claim; web-1 waits while web-0 is not ready.
    let web0 = wait_for("web-0", WAIT, || async {
        pods.get_opt("web-0").await.ok().flatten()
    })
    .await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let claim = claims.get("www-web-0").await?;
    assert_eq!(label(&claim, "app"), Some("nginx"));
    assert_eq!(
        claim.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    assert_eq!(
        label(&web0, "statefulset.kubernetes.io/pod-name"),
        Some("web-0")
    );
    assert_eq!(label(&web0, "apps.kubernetes.io/pod-index"), Some("0"));
    let spec0 = web0.spec.clone().expect("spec");
    assert_eq!(spec0.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec0.subdomain.as_deref(), Some("nginx"));
    let volumes = spec0.volumes.unwrap_or_default();
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("www-web-0")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pods.get_opt("web-1").await?.is_none(),
        "web-1 was created before web-0 was ready"
    );
    bind(&client, NS, "web-0", NODE).await?;
    let web0 = wait_ready(&pods, "web-0").await;
    let web1 = wait_for("web-1", WAIT, || async {
        pods.get_opt("web-1").await.ok().flatten()
    })
    .await;
    let ready_at = web0
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.clone())
        .expect("ready time");
    let created_at = web1.metadata.creation_timestamp.clone().expect("created");
    assert!(
        created_at.0 >= ready_at.0,
        "web-1 ({}) before web-0 ready ({})",
        created_at.0,
        ready_at.0
    );
    assert!(pods.get_opt("web-2").await?.is_none());
    bind(&client, NS, "web-1", NODE).await?;
    wait_ready(&pods, "web-1").await;
    let _binder = spawn_binder(client.clone(), NS, |_| Some(NODE.to_string()));
    let status = wait_status(&sets, "3 ready replicas", |s| {
        s.replicas == 3 && s.ready_replicas == Some(3) && s.available_replicas == Some(3)
    })
    .await;
    let rev1 = status.update_revision.clone().expect("update revision");
    assert_eq!(status.current_revision.as_ref(), Some(&rev1));
    for i in 0..3 {
        let p = pods.get(&format!("web-{i}")).await?;
        assert_eq!(label(&p, "controller-revision-hash"), Some(rev1.as_str()));
    }
    let cr = Api::<ControllerRevision>::namespaced(client.clone(), NS)
        .get(&rev1)
        .await?;
    assert_eq!(cr.revision, 1);
    assert!(label(&cr, "controller.kubernetes.io/hash").is_some());
    wait_for("SuccessfulCreate events", WAIT, || async {
        let events = Api::<Event>::namespaced(client.clone(), NS)
            .list(&ListParams::default())
            .await
            .ok()?;
        let has = |msg: &str| {
            events.items.iter().any(|e| {
                e.reason.as_deref() == Some("SuccessfulCreate") && e.message.as_deref() == Some(msg)
            })
        };
        (has("create Pod web-0 in StatefulSet web successful")
            && has("create Pod web-2 in StatefulSet web successful")
            && has("create Claim www-web-0 Pod web-0 in StatefulSet web success"))
        .then_some(())
    })
    .await;

    // Scale down to 1: web-2 goes entirely before web-1 starts going; claims stay.
    let (log, watch) = record_pod_changes(client.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await?;
    wait_status(&sets, "1 replica", |s| {
        s.replicas == 1 && s.ready_replicas == Some(1)
    })
    .await;
    assert!(pods.get_opt("web-1").await?.is_none() && pods.get_opt("web-2").await?.is_none());
    assert_eq!(
        entries(&log, &["deleting", "gone"]),
        vec![
            "web-2 deleting",
            "web-2 gone",
            "web-1 deleting",
            "web-1 gone"
        ]
    );
    for c in ["www-web-1", "www-web-2"] {
        assert!(claims.get_opt(c).await?.is_some(), "{c} retained");
    }

    // Back to 3, then an update with partition 2: only web-2 moves to the new revision.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3, "updateStrategy": {
            "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}})),
    )
    .await?;
    wait_status(&sets, "3 ready replicas again", |s| {
        s.ready_replicas == Some(3)
    })
    .await;
    log.lock().expect("log").clear();
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}})),
    )
    .await?;
    let status = wait_status(&sets, "partitioned update", |s| {
        s.updated_replicas == Some(1)
            && s.ready_replicas == Some(3)
            && s.current_replicas == Some(2)
    })
    .await;
    let rev2 = status.update_revision.clone().expect("update revision");
    assert_ne!(rev2, rev1);
    assert_eq!(status.current_revision.as_ref(), Some(&rev1));
    let web2 = wait_ready(&pods, "web-2").await;
    assert_eq!(image(&web2), Some("nginx:2"));
    assert_eq!(
        label(&web2, "controller-revision-hash"),
        Some(rev2.as_str())
    );
    for name in ["web-0", "web-1"] {
        let p = pods.get(name).await?;
        assert_eq!(image(&p), Some("nginx:1"), "{name} is below the partition");
    }
    let out = cluster
        .kubectl_ok(
            None,
            &["-n", NS, "rollout", "status", "sts/web", "--timeout=20s"],
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("partitioned roll out complete"), "{text}");

    // Partition 0: web-1, then web-0, each after the one above is ready again.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await?;
    let status = wait_status(&sets, "rolling update complete", |s| {
        s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3)
            && s.current_revision == s.update_revision
    })
    .await;
    assert_eq!(status.current_revision.as_ref(), Some(&rev2));
    for i in 0..3 {
        let p = pods.get(&format!("web-{i}")).await?;
        assert_eq!(image(&p), Some("nginx:2"));
    }
    assert_eq!(
        entries(&log, &["deleting"]),
        vec!["web-2 deleting", "web-1 deleting", "web-0 deleting"],
        "update order"
    );
    watch.abort();
    let out = cluster
        .kubectl_ok(
            None,
            &["-n", NS, "rollout", "status", "sts/web", "--timeout=20s"],
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The apiserver defaults `partition: 0`, so kubectl reports a (complete) partitioned
    // roll out, as it does against Kubernetes.
    assert!(
        text.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{text}"
    );
    Ok(())
}
