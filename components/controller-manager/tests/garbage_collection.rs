//! The garbage collector against real etcd and the real kadm-apiserver: background,
//! orphan and foreground cascades (through kubectl 1.33 and kube-rs), several owners,
//! owners that are gone or were replaced by another object of the same name, and
//! cluster-scoped owners. The workload controllers are off (a ReplicaSet controller would
//! adopt the test's ownerless pods), so the tests create the dependents themselves, with
//! ownerReferences.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::{ControllerManager, wait_for};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kadm_e2e::TestCluster;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The longest any one wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// A cluster, an admin client and a running controller manager, with namespace `ns`.
async fn start(ns: &str) -> anyhow::Result<(TestCluster, Client, ControllerManager)> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(
        &cluster,
        "controller-manager",
        &["--controllers", "namespace,garbagecollector"],
    )?;
    cm.wait_healthy().await;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok((cluster, client, cm))
}

/// An ownerReference to `owner` (apiVersion, kind and name taken from it).
fn owner_ref<K: kube::Resource<DynamicType = ()>>(owner: &K, block: bool) -> Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "name": owner.meta().name,
        "uid": owner.meta().uid,
        "controller": false,
        "blockOwnerDeletion": block,
    })
}

/// An ownerReference written by hand (for owners that do not exist).
fn raw_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid})
}

async fn configmap(
    client: &Client,
    ns: &str,
    name: &str,
    owners: Vec<Value>,
) -> anyhow::Result<ConfigMap> {
    let mut meta = json!({"name": name});
    if !owners.is_empty() {
        meta["ownerReferences"] = Value::Array(owners);
    }
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": meta, "data": {"k": "v"}}))?;
    Ok(Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await?)
}

async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(&format!("{name} to be deleted"), WAIT, || async {
        matches!(api.get_opt(name).await, Ok(None)).then_some(())
    })
    .await
}

fn owner_uids(obj: &impl kube::Resource) -> Vec<String> {
    obj.owner_references()
        .iter()
        .map(|r| r.uid.clone())
        .collect()
}

fn kubectl_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "kubectl failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn background_deletion_collects_the_dependents_of_a_deleted_replicaset() -> anyhow::Result<()>
{
    let (cluster, client, _cm) = start("gc-bg").await?;
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }))?;
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), "gc-bg")
        .create(&PostParams::default(), &rs)
        .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "gc-bg");
    for name in ["web-a", "web-b", "loner"] {
        let mut owners = vec![owner_ref(&rs, true)];
        owners[0]["controller"] = json!(true);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {"app": "web"},
                "ownerReferences": if name == "loner" { json!([]) } else { json!(owners) },
            },
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    configmap(&client, "gc-bg", "web-config", vec![owner_ref(&rs, false)]).await?;

    let out = cluster
        .kubectl(
            Some("1.33"),
            &[
                "delete",
                "replicaset",
                "web",
                "-n",
                "gc-bg",
                "--timeout=25s",
            ],
        )
        .await?;
    kubectl_ok(&out);
    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), "gc-bg");
    assert!(
        replicasets.get_opt("web").await?.is_none(),
        "background deletion removes the owner at once"
    );

    wait_gone(&pods, "web-a").await;
    wait_gone(&pods, "web-b").await;
    wait_gone(
        &Api::<ConfigMap>::namespaced(client.clone(), "gc-bg"),
        "web-config",
    )
    .await;
    assert!(
        pods.get_opt("loner").await?.is_some(),
        "a pod without owners is left alone"
    );
    Ok(())
}

#[tokio::test]
async fn orphan_cascade_keeps_the_dependents_without_the_reference() -> anyhow::Result<()> {
    let (cluster, client, _cm) = start("gc-orphan").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "gc-orphan");
    let owner = configmap(&client, "gc-orphan", "owner", vec![]).await?;
    let other = configmap(&client, "gc-orphan", "other", vec![]).await?;
    configmap(&client, "gc-orphan", "only", vec![owner_ref(&owner, true)]).await?;
    configmap(
        &client,
        "gc-orphan",
        "shared",
        vec![owner_ref(&other, false), owner_ref(&owner, true)],
    )
    .await?;

    let out = cluster
        .kubectl(
            Some("1.33"),
            &[
                "delete",
                "configmap",
                "owner",
                "-n",
                "gc-orphan",
                "--cascade=orphan",
                "--timeout=25s",
            ],
        )
        .await?;
    kubectl_ok(&out);
    // kubectl waited for it; it is gone, not stuck with the orphan finalizer.
    wait_gone(&cms, "owner").await;

    let only = cms.get("only").await?;
    assert!(
        only.metadata.owner_references.is_none() || only.owner_references().is_empty(),
        "{:?}",
        only.metadata.owner_references
    );
    assert!(only.metadata.deletion_timestamp.is_none());
    let shared = cms.get("shared").await?;
    assert_eq!(owner_uids(&shared), owner_uids_of(&[&other]));
    assert_eq!(shared.owner_references()[0].name, "other");

    // Orphans stay orphans: nothing comes back for them later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cms.get_opt("only").await?.is_some());
    assert!(cms.get_opt("shared").await?.is_some());
    Ok(())
}

fn owner_uids_of(owners: &[&ConfigMap]) -> Vec<String> {
    owners.iter().map(|o| o.uid().unwrap_or_default()).collect()
}

/// One event seen on the namespace's configmaps during a foreground deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Marked for deletion, with these finalizers.
    Deleting(String, Vec<String>),
    Deleted(String),
}

#[tokio::test]
async fn foreground_cascade_deletes_blocking_dependents_before_the_owner() -> anyhow::Result<()> {
    let (cluster, client, _cm) = start("gc-fg").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "gc-fg");
    let owner = configmap(&client, "gc-fg", "owner", vec![]).await?;
    let a = configmap(&client, "gc-fg", "a", vec![owner_ref(&owner, true)]).await?;
    configmap(&client, "gc-fg", "b", vec![owner_ref(&owner, true)]).await?;
    configmap(&client, "gc-fg", "loose", vec![owner_ref(&owner, false)]).await?;
    // `a` has a dependent of its own: it is deleted in the foreground too.
    configmap(&client, "gc-fg", "a-child", vec![owner_ref(&a, true)]).await?;

    let rv = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("list resourceVersion")?;
    let mut events = cms
        .watch(&WatchParams::default().timeout(60), &rv)
        .await?
        .boxed();
    let watching = async {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !seen.contains(&Seen::Deleted("owner".into())) {
            let next = tokio::time::timeout_at(deadline, events.try_next())
                .await
                .context("the owner was not deleted in time")??
                .context("the watch ended")?;
            match next {
                WatchEvent::Modified(o) if o.metadata.deletion_timestamp.is_some() => {
                    let f = o.finalizers().to_vec();
                    let s = Seen::Deleting(o.name_any(), f);
                    if !seen.contains(&s) {
                        seen.push(s);
                    }
                }
                WatchEvent::Deleted(o) => seen.push(Seen::Deleted(o.name_any())),
                _ => {}
            }
        }
        anyhow::Ok(seen)
    };
    let deleting = cluster.kubectl(
        Some("1.33"),
        &[
            "delete",
            "configmap",
            "owner",
            "-n",
            "gc-fg",
            "--cascade=foreground",
            "--timeout=25s",
        ],
    );
    let (seen, out) = tokio::join!(watching, deleting);
    let seen = seen?;
    kubectl_ok(&out?);

    let at = |s: &Seen| {
        seen.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s:?} not seen in {seen:?}"))
    };
    let owner_gone = at(&Seen::Deleted("owner".into()));
    assert_eq!(
        at(&Seen::Deleting(
            "owner".into(),
            vec!["foregroundDeletion".into()]
        )),
        0,
        "the owner is marked first: {seen:?}"
    );
    assert!(at(&Seen::Deleted("a".into())) < owner_gone, "{seen:?}");
    assert!(at(&Seen::Deleted("b".into())) < owner_gone, "{seen:?}");
    // The dependent with dependents of its own waited for them in the foreground.
    let a_marked = at(&Seen::Deleting(
        "a".into(),
        vec!["foregroundDeletion".into()],
    ));
    assert!(a_marked < at(&Seen::Deleted("a-child".into())), "{seen:?}");
    assert!(
        at(&Seen::Deleted("a-child".into())) < at(&Seen::Deleted("a".into())),
        "{seen:?}"
    );
    // The non-blocking dependent goes too, whenever.
    wait_gone(&cms, "loose").await;
    assert!(cms.list(&ListParams::default()).await?.items.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_dependent_with_another_live_owner_survives_the_deletion_of_one() -> anyhow::Result<()> {
    let (_cluster, client, _cm) = start("gc-multi").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "gc-multi");
    let first = configmap(&client, "gc-multi", "first", vec![]).await?;
    let second = configmap(&client, "gc-multi", "second", vec![]).await?;
    configmap(
        &client,
        "gc-multi",
        "both",
        vec![owner_ref(&first, true), owner_ref(&second, true)],
    )
    .await?;

    cms.delete("first", &DeleteParams::background()).await?;
    // The reference to the gone owner is dropped; the object stays with its live owner.
    let both = wait_for("the dead owner's reference to be removed", WAIT, || async {
        let both = cms.get_opt("both").await.ok().flatten()?;
        (owner_uids(&both) == owner_uids_of(&[&second])).then_some(both)
    })
    .await;
    assert!(both.metadata.deletion_timestamp.is_none());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        cms.get_opt("both").await?.is_some(),
        "a live owner keeps it"
    );

    // A foreground deletion of the remaining owner takes it along.
    cms.delete("second", &DeleteParams::foreground()).await?;
    wait_gone(&cms, "both").await;
    wait_gone(&cms, "second").await;
    Ok(())
}

#[tokio::test]
async fn owners_that_are_gone_or_replaced_do_not_keep_their_dependents() -> anyhow::Result<()> {
    let (_cluster, client, _cm) = start("gc-uid").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "gc-uid");
    let owner = configmap(&client, "gc-uid", "owner", vec![]).await?;
    configmap(&client, "gc-uid", "kept", vec![owner_ref(&owner, false)]).await?;
    // The name exists, but as another object (uid).
    configmap(
        &client,
        "gc-uid",
        "impostor",
        vec![raw_ref(
            "v1",
            "ConfigMap",
            "owner",
            "00000000-0000-0000-0000-000000000001",
        )],
    )
    .await?;
    configmap(
        &client,
        "gc-uid",
        "abandoned",
        vec![raw_ref(
            "v1",
            "ConfigMap",
            "nobody",
            "00000000-0000-0000-0000-000000000002",
        )],
    )
    .await?;
    wait_gone(&cms, "impostor").await;
    wait_gone(&cms, "abandoned").await;
    assert!(cms.get_opt("kept").await?.is_some(), "its owner exists");

    // The owner is replaced by a new object of the same name: the old dependents go.
    cms.delete("owner", &DeleteParams::default()).await?;
    let again = configmap(&client, "gc-uid", "owner", vec![]).await?;
    assert_ne!(again.uid(), owner.uid());
    wait_gone(&cms, "kept").await;
    assert!(
        cms.get_opt("owner").await?.is_some(),
        "the new owner is not touched"
    );
    Ok(())
}

#[tokio::test]
async fn cluster_scoped_owners_and_invalid_references() -> anyhow::Result<()> {
    let (_cluster, client, _cm) = start("gc-scope").await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "gc-scope");
    let roles = Api::<ClusterRole>::all(client.clone());
    let role: ClusterRole =
        serde_json::from_value(json!({"metadata": {"name": "gc-owner"}, "rules": []}))?;
    let role = roles.create(&PostParams::default(), &role).await?;
    let owner = configmap(&client, "gc-scope", "owner", vec![]).await?;
    // A namespaced dependent of a cluster-scoped owner.
    configmap(
        &client,
        "gc-scope",
        "of-role",
        vec![owner_ref(&role, false)],
    )
    .await?;
    // A cluster-scoped object naming a namespaced owner: invalid, never collected.
    let invalid: ClusterRole = serde_json::from_value(json!({
        "metadata": {
            "name": "gc-invalid",
            "ownerReferences": [raw_ref(
                "v1",
                "ConfigMap",
                "owner",
                &owner.uid().unwrap_or_default(),
            )],
        },
        "rules": [],
    }))?;
    roles.create(&PostParams::default(), &invalid).await?;

    roles
        .delete("gc-owner", &DeleteParams::background())
        .await?;
    wait_gone(&cms, "of-role").await;
    cms.delete("owner", &DeleteParams::background()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        roles.get_opt("gc-invalid").await?.is_some(),
        "an unresolvable reference does not get a cluster-scoped object deleted"
    );
    Ok(())
}

#[tokio::test]
async fn a_disabled_garbage_collector_leaves_dependents_alone() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(
        &cluster,
        "controller-manager",
        &["--controllers=*,-garbagecollector"],
    )?;
    cm.wait_healthy().await;
    let owner = configmap(&client, "default", "owner", vec![]).await?;
    configmap(&client, "default", "dep", vec![owner_ref(&owner, false)]).await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "default");
    cms.delete("owner", &DeleteParams::background()).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dep = cms.get("dep").await?;
    assert_eq!(owner_uids(&dep), owner_uids_of(&[&owner]));
    Ok(())
}
