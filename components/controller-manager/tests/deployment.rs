//! The Deployment controller (with the ReplicaSet controller and the garbage collector)
//! against real etcd and the real kadm-apiserver, with hollow nodes as kubelets (no
//! scheduler: templates name their node), driven through kubectl: rollout status, a rolling
//! update checked against maxSurge/maxUnavailable at every observed step, rollout undo and
//! history, revisionHistoryLimit, Recreate, scaling (also mid-rollout, proportionally),
//! pause/resume and the progress deadline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::wait_for;
use common::workload::{self, Started, hollow, ready};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kadm_e2e::TestCluster;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const NS: &str = "deploy";
const NODE: &str = "dnode-0";
const WAIT: Duration = Duration::from_secs(90);
const REVISION: &str = "deployment.kubernetes.io/revision";

async fn start() -> anyhow::Result<Started> {
    workload::start(
        &["--controllers", "deployment,replicaset,garbagecollector"],
        NS,
        hollow("dnode", 1),
    )
    .await
}

fn deployment(replicas: i32, strategy: Value, extra_spec: Value) -> anyhow::Result<Deployment> {
    let mut d = json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"nodeName": NODE, "containers": [{"name": "web", "image": "nginx:1"}]}}
        }
    });
    if let (Some(spec), Value::Object(extra)) = (d["spec"].as_object_mut(), extra_spec) {
        spec.extend(extra);
    }
    Ok(serde_json::from_value(d)?)
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `[replicas, updated, ready, available, unavailable]`, once the generation is observed.
async fn counts(api: &Api<Deployment>) -> Option<[i32; 5]> {
    let d = api.get("web").await.ok()?;
    let s = d.status?;
    (s.observed_generation == d.metadata.generation).then_some([
        s.replicas.unwrap_or(0),
        s.updated_replicas.unwrap_or(0),
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
        s.unavailable_replicas.unwrap_or(0),
    ])
}

async fn wait_counts(api: &Api<Deployment>, want: [i32; 5]) {
    wait_for(&format!("deployment status {want:?}"), WAIT, || async {
        (counts(api).await == Some(want)).then_some(())
    })
    .await
}

/// `(status, reason)` of a Deployment condition.
async fn condition(api: &Api<Deployment>, type_: &str) -> Option<(String, String)> {
    let d = api.get("web").await.ok()?;
    d.status?
        .conditions?
        .into_iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.reason.unwrap_or_default()))
}

/// The Deployment's ReplicaSets by name: (spec replicas, revision, image).
async fn replicasets(api: &Api<ReplicaSet>) -> BTreeMap<String, (i32, String, String)> {
    api.list(&ListParams::default())
        .await
        .expect("list replicasets")
        .items
        .into_iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .map(|r| {
            let image = r
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .map(|s| s.containers[0].image.clone().unwrap_or_default())
                .unwrap_or_default();
            let replicas = r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let revision = r.annotations().get(REVISION).cloned().unwrap_or_default();
            (r.name_any(), (replicas, revision, image))
        })
        .collect()
}

fn rs_with_image<'a>(
    sets: &'a BTreeMap<String, (i32, String, String)>,
    image: &str,
) -> Option<(&'a String, &'a (i32, String, String))> {
    sets.iter().find(|(_, v)| v.2 == image)
}

async fn event_messages(client: &Client, reason: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect()
}

async fn rollout_status(cluster: &TestCluster) -> anyhow::Result<String> {
    let o = cluster
        .kubectl_ok(
            None,
            &[
                "-n",
                NS,
                "rollout",
                "status",
                "deployment/web",
                "--timeout=90s",
            ],
        )
        .await?;
    Ok(out(&o))
}

/// The Deployment's ReplicaSets at one moment: (name, spec.replicas), sorted.
type SizeState = Vec<(String, i32)>;

/// Watches the ReplicaSets and pods during a rolling update and records every moment the
/// rollout broke its bounds: ReplicaSets asking for more than replicas + maxSurge pods, or
/// fewer than replicas − maxUnavailable ready pods alive.
struct Bounds {
    violations: Arc<Mutex<Vec<String>>>,
    /// Every distinct `(ReplicaSet, spec.replicas)` combination seen.
    steps: Arc<Mutex<BTreeSet<SizeState>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Bounds {
    fn watch(client: &Client, max_total: i32, min_ready: i32) -> Self {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let steps = Arc::new(Mutex::new(BTreeSet::new()));
        let (v, s) = (violations.clone(), steps.clone());
        let rs_task = workload::on_every_change(client, NS, move |sets: &[Arc<ReplicaSet>]| {
            let mut state: Vec<(String, i32)> = sets
                .iter()
                .map(|r| {
                    (
                        r.name_any(),
                        r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                    )
                })
                .collect();
            state.sort();
            let total: i32 = state.iter().map(|(_, n)| n).sum();
            if total > max_total {
                v.lock().expect("lock").push(format!(
                    "replica sets ask for {total} > {max_total}: {state:?}"
                ));
            }
            s.lock().expect("lock").insert(state);
        });
        let v = violations.clone();
        let pod_task = workload::on_every_change(client, NS, move |pods: &[Arc<Pod>]| {
            let count = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && ready(p))
                .count();
            if (count as i32) < min_ready {
                v.lock()
                    .expect("lock")
                    .push(format!("only {count} ready pods < {min_ready}"));
            }
        });
        Self {
            violations,
            steps,
            tasks: vec![rs_task, pod_task],
        }
    }

    /// Stops watching; returns the violations and how many distinct states were seen.
    fn stop(self) -> (Vec<String>, usize) {
        for t in &self.tasks {
            t.abort();
        }
        let v = self.violations.lock().expect("lock").clone();
        let n = self.steps.lock().expect("lock").len();
        (v, n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_stays_within_bounds_and_undo_reuses_the_old_replicaset()
-> anyhow::Result<()> {
    let (cluster, client, _cm, _nodes) = start().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                4,
                rolling(json!(1), json!(1)),
                json!({"minReadySeconds": 1, "revisionHistoryLimit": 2}),
            )?,
        )
        .await?;

    let text = rollout_status(&cluster).await?;
    assert!(
        text.contains("deployment \"web\" successfully rolled out"),
        "{text}"
    );
    wait_counts(&deployments, [4, 4, 4, 4, 0]).await;
    let d = deployments.get("web").await?;
    assert_eq!(d.annotations().get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(
        condition(&deployments, "Available").await,
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        condition(&deployments, "Progressing").await,
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );

    // One ReplicaSet named <deployment>-<hash>, the hash on its labels, selector and template.
    let list = sets.list(&ListParams::default()).await?.items;
    assert_eq!(list.len(), 1);
    let first = &list[0];
    let hash = first
        .labels()
        .get("pod-template-hash")
        .cloned()
        .expect("hash label");
    let first_name = first.name_any();
    assert_eq!(first_name, format!("web-{hash}"));
    let spec = first.spec.clone().expect("spec");
    assert_eq!(
        spec.selector
            .match_labels
            .as_ref()
            .and_then(|m| m.get("pod-template-hash")),
        Some(&hash)
    );
    let tlabels = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    assert_eq!(tlabels.get("pod-template-hash"), Some(&hash));
    let a = first.annotations();
    assert_eq!(a.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(
        a.get("deployment.kubernetes.io/desired-replicas")
            .map(String::as_str),
        Some("4")
    );
    assert_eq!(
        a.get("deployment.kubernetes.io/max-replicas")
            .map(String::as_str),
        Some("5")
    );
    let r = &first.owner_references()[0];
    assert_eq!(
        (r.kind.as_str(), r.name.as_str(), r.controller),
        ("Deployment", "web", Some(true))
    );
    let scaled = event_messages(&client, "ScalingReplicaSet").await;
    assert!(
        scaled.contains(&format!("Scaled up replica set {first_name} from 0 to 4")),
        "{scaled:?}"
    );

    // A rolling update, watched at every step: at most 5 pods asked for, at least 3 ready.
    let bounds = Bounds::watch(&client, 5, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster
        .kubectl_ok(
            None,
            &["-n", NS, "set", "image", "deployment/web", "web=nginx:2"],
        )
        .await?;
    rollout_status(&cluster).await?;
    wait_counts(&deployments, [4, 4, 4, 4, 0]).await;
    let (violations, steps) = bounds.stop();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(steps >= 4, "the rollout went in several steps, saw {steps}");
    let now = replicasets(&sets).await;
    assert_eq!(now.len(), 2, "{now:?}");
    let (second_name, second) = rs_with_image(&now, "nginx:2").expect("new set");
    assert_eq!((second.0, second.1.as_str()), (4, "2"));
    assert_eq!(now[&first_name].0, 0);
    let second_name = second_name.clone();
    assert_eq!(
        deployments
            .get("web")
            .await?
            .annotations()
            .get(REVISION)
            .map(String::as_str),
        Some("2")
    );

    // Undo: kubectl copies the first template back; its ReplicaSet comes back as revision 3.
    cluster
        .kubectl_ok(None, &["-n", NS, "rollout", "undo", "deployment/web"])
        .await?;
    rollout_status(&cluster).await?;
    wait_counts(&deployments, [4, 4, 4, 4, 0]).await;
    let now = replicasets(&sets).await;
    assert_eq!(now.len(), 2, "no new ReplicaSet: {now:?}");
    assert_eq!(
        now[&first_name],
        (4, "3".to_string(), "nginx:1".to_string())
    );
    assert_eq!(now[&second_name].0, 0);
    let back = sets.get(&first_name).await?;
    assert_eq!(
        back.annotations()
            .get("deployment.kubernetes.io/revision-history")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        deployments
            .get("web")
            .await?
            .annotations()
            .get(REVISION)
            .map(String::as_str),
        Some("3")
    );
    let history = out(&cluster
        .kubectl_ok(None, &["-n", NS, "rollout", "history", "deployment/web"])
        .await?);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");

    // Two more rollouts: with revisionHistoryLimit 2 the oldest old set (nginx:2) goes.
    for image in ["nginx:3", "nginx:4"] {
        cluster
            .kubectl_ok(
                None,
                &[
                    "-n",
                    NS,
                    "set",
                    "image",
                    "deployment/web",
                    &format!("web={image}"),
                ],
            )
            .await?;
        rollout_status(&cluster).await?;
    }
    let now = wait_for("old sets beyond the limit deleted", WAIT, || async {
        let now = replicasets(&sets).await;
        (now.len() == 3).then_some(now)
    })
    .await;
    assert!(!now.contains_key(&second_name), "{now:?}");
    let (_, newest) = rs_with_image(&now, "nginx:4").expect("newest");
    assert_eq!((newest.0, newest.1.as_str()), (4, "5"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_removes_every_old_pod_before_the_first_new_one() -> anyhow::Result<()> {
    let (cluster, client, _cm, _nodes) = start().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .create(
            &PostParams::default(),
            &deployment(3, json!({"type": "Recreate"}), json!({}))?,
        )
        .await?;
    rollout_status(&cluster).await?;
    wait_counts(&deployments, [3, 3, 3, 3, 0]).await;

    // Every pod change is checked: pods of two templates never exist at the same time.
    let mixed = Arc::new(Mutex::new(Vec::<String>::new()));
    let images_seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let (store, writer) = reflector::store::<Pod>();
    let (m, seen) = (mixed.clone(), images_seen.clone());
    let task = tokio::spawn(
        watcher(
            Api::<Pod>::namespaced(client.clone(), NS),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .for_each(move |ev| {
            if ev.is_ok() {
                let images: BTreeSet<String> = store
                    .state()
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
                    .collect();
                if images.len() > 1 {
                    m.lock().expect("lock").push(format!("{images:?}"));
                }
                seen.lock().expect("lock").extend(images);
            }
            futures::future::ready(())
        }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster
        .kubectl_ok(
            None,
            &["-n", NS, "set", "image", "deployment/web", "web=nginx:2"],
        )
        .await?;
    rollout_status(&cluster).await?;
    wait_counts(&deployments, [3, 3, 3, 3, 0]).await;
    task.abort();
    let mixed = mixed.lock().expect("lock").clone();
    assert!(mixed.is_empty(), "old and new pods together: {mixed:?}");
    let seen = images_seen.lock().expect("lock").clone();
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["nginx:1", "nginx:2"]);
    let scaled = event_messages(&client, "ScalingReplicaSet").await;
    assert!(
        scaled
            .iter()
            .any(|m| m.starts_with("Scaled down replica set web-") && m.ends_with("from 3 to 0")),
        "{scaled:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_pausing_and_a_stuck_rollout_that_times_out() -> anyhow::Result<()> {
    let (cluster, client, _cm, _nodes) = start().await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                2,
                rolling(json!(1), json!(0)),
                json!({"progressDeadlineSeconds": 4}),
            )?,
        )
        .await?;
    rollout_status(&cluster).await?;
    let first = replicasets(&sets)
        .await
        .keys()
        .next()
        .cloned()
        .expect("a set");
    wait_counts(&deployments, [2, 2, 2, 2, 0]).await;

    // Once rolled out, syncs write nothing: the objects keep their resourceVersions.
    let versions = || async {
        let d = deployments.get("web").await.ok()?.resource_version();
        let r = sets.get(&first).await.ok()?.resource_version();
        Some((d, r))
    };
    let before = versions().await;
    assert!(before.is_some());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        versions().await,
        before,
        "a settled deployment is left alone"
    );

    // kubectl scale goes through /scale; the only active set takes the whole size.
    cluster
        .kubectl_ok(None, &["-n", NS, "scale", "deployment/web", "--replicas=4"])
        .await?;
    wait_counts(&deployments, [4, 4, 4, 4, 0]).await;
    cluster
        .kubectl_ok(None, &["-n", NS, "scale", "deployment/web", "--replicas=3"])
        .await?;
    wait_counts(&deployments, [3, 3, 3, 3, 0]).await;
    let scaled = event_messages(&client, "ScalingReplicaSet").await;
    for m in [
        format!("Scaled up replica set {first} from 2 to 4"),
        format!("Scaled down replica set {first} from 4 to 3"),
    ] {
        assert!(scaled.contains(&m), "{m} in {scaled:?}");
    }

    // Paused: a template change makes no ReplicaSet until resumed.
    cluster
        .kubectl_ok(None, &["-n", NS, "rollout", "pause", "deployment/web"])
        .await?;
    wait_for("paused condition", WAIT, || async {
        (condition(&deployments, "Progressing").await
            == Some(("Unknown".into(), "DeploymentPaused".into())))
        .then_some(())
    })
    .await;
    cluster
        .kubectl_ok(
            None,
            &["-n", NS, "set", "image", "deployment/web", "web=nginx:2"],
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(replicasets(&sets).await.len(), 1, "no rollout while paused");
    cluster
        .kubectl_ok(None, &["-n", NS, "rollout", "resume", "deployment/web"])
        .await?;
    rollout_status(&cluster).await?;
    wait_counts(&deployments, [3, 3, 3, 3, 0]).await;
    assert_eq!(replicasets(&sets).await.len(), 2);

    // A template whose pods never run: one surge pod, no progress, and after 4 s the
    // deadline is exceeded; kubectl rollout status says so.
    cluster
        .kubectl_ok(
            None,
            &["-n", NS, "patch", "deployment/web", "--type=merge", "-p",
              r#"{"spec":{"template":{"spec":{"nodeName":"nowhere","containers":[{"name":"web","image":"nginx:3"}]}}}}"#],
        )
        .await?;
    wait_for("ProgressDeadlineExceeded", WAIT, || async {
        (condition(&deployments, "Progressing").await
            == Some(("False".into(), "ProgressDeadlineExceeded".into())))
        .then_some(())
    })
    .await;
    let o = cluster
        .kubectl(
            None,
            &[
                "-n",
                NS,
                "rollout",
                "status",
                "deployment/web",
                "--timeout=20s",
            ],
        )
        .await?;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let stuck = replicasets(&sets).await;
    let (stuck_new, new) = rs_with_image(&stuck, "nginx:3").expect("new set");
    let (stuck_old, old) = rs_with_image(&stuck, "nginx:2").expect("old set");
    assert_eq!((old.0, new.0), (3, 1), "{stuck:?}");
    let (stuck_new, stuck_old) = (stuck_new.clone(), stuck_old.clone());

    // Scaling mid-rollout spreads the change in proportion: 3+1 of max 4 become 6+2 of 8.
    cluster
        .kubectl_ok(None, &["-n", NS, "scale", "deployment/web", "--replicas=7"])
        .await?;
    wait_for("proportional scale", WAIT, || async {
        let now = replicasets(&sets).await;
        (now.get(&stuck_old).map(|v| v.0) == Some(6) && now.get(&stuck_new).map(|v| v.0) == Some(2))
            .then_some(())
    })
    .await;
    Ok(())
}
