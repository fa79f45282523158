//! kadm-controller-manager against real etcd and the real kadm-apiserver (kadm-e2e's
//! `TestCluster`): namespace deletion completes, finalizers on content hold it, and exactly
//! one of several replicas leads.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::{ControllerManager, healthz, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, NamespaceCondition, Secret};
use kadm_e2e::TestCluster;
use kadm_e2e::process::tail;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const LEASE_NAMESPACE: &str = "kube-system";
const LEASE_NAME: &str = "kadm-controller-manager";
/// How long a namespace deletion may take once nothing holds it.
const DELETION: Duration = Duration::from_secs(20);

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

async fn create_configmap(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    finalizers: &[&str],
) -> anyhow::Result<()> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "finalizers": finalizers},
        "data": {"k": "v"},
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &cm)
        .await?;
    Ok(())
}

async fn lease(client: &kube::Client) -> Option<Lease> {
    Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE)
        .get_opt(LEASE_NAME)
        .await
        .ok()
        .flatten()
}

fn holder(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

fn transitions(lease: &Lease) -> i32 {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

fn condition<'a>(ns: &'a Namespace, type_: &str) -> Option<&'a NamespaceCondition> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

async fn wait_namespace_gone(client: &kube::Client, name: &str) {
    let api = Api::<Namespace>::all(client.clone());
    wait_for(
        &format!("namespace {name} to be gone"),
        DELETION,
        || async { matches!(api.get_opt(name).await, Ok(None)).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn kubectl_delete_namespace_completes_and_removes_its_content() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(&cluster, "controller-manager", &[])?;
    cm.wait_healthy().await;

    create_namespace(&client, "doomed").await?;
    for name in ["one", "two", "three"] {
        create_configmap(&client, "doomed", name, &[]).await?;
    }
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "stringData": {"password": "hunter2"},
    }))?;
    Api::<Secret>::namespaced(client.clone(), "doomed")
        .create(&PostParams::default(), &secret)
        .await?;

    // kubectl waits for the namespace to disappear before it returns.
    let started = std::time::Instant::now();
    let out = cluster
        .kubectl(
            Some("1.33"),
            &["delete", "namespace", "doomed", "--timeout=20s"],
        )
        .await?;
    assert!(
        out.status.success(),
        "kubectl delete namespace failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("namespace \"doomed\" deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(started.elapsed() <= DELETION + Duration::from_secs(2));
    wait_namespace_gone(&client, "doomed").await;

    let cms = Api::<ConfigMap>::namespaced(client.clone(), "doomed")
        .list(&ListParams::default())
        .await?;
    assert!(cms.items.is_empty(), "configmaps left: {:?}", cms.items);
    let secrets = Api::<Secret>::namespaced(client.clone(), "doomed")
        .list(&ListParams::default())
        .await?;
    assert!(secrets.items.is_empty(), "secrets left");

    // The controllers ran as the lease holder.
    let l = lease(&client).await.context("leader lease")?;
    assert_eq!(holder(&l), cm.identity);
    assert!(
        cm.process.exited().is_none(),
        "the controller manager keeps running"
    );
    Ok(())
}

#[tokio::test]
async fn a_finalizer_on_content_keeps_the_namespace_terminating_until_removed() -> anyhow::Result<()>
{
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(&cluster, "controller-manager", &[])?;
    cm.wait_healthy().await;

    create_namespace(&client, "held").await?;
    create_configmap(&client, "held", "pinned", &["example.com/hold"]).await?;
    create_configmap(&client, "held", "plain", &[]).await?;
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces.delete("held", &DeleteParams::default()).await?;

    let ns = wait_for(
        "the NamespaceFinalizersRemaining condition",
        DELETION,
        || async {
            let ns = namespaces.get_opt("held").await.ok().flatten()?;
            let c = condition(&ns, "NamespaceFinalizersRemaining")?;
            (c.status == "True").then_some(ns)
        },
    )
    .await;
    let fin = condition(&ns, "NamespaceFinalizersRemaining").context("condition")?;
    assert_eq!(fin.reason.as_deref(), Some("SomeFinalizersRemain"));
    assert_eq!(
        fin.message.as_deref(),
        Some(
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
        )
    );
    let left = condition(&ns, "NamespaceContentRemaining").context("content condition")?;
    assert_eq!(
        (left.status.as_str(), left.reason.as_deref()),
        ("True", Some("SomeResourcesRemain"))
    );
    assert_eq!(
        left.message.as_deref(),
        Some("Some resources are remaining: configmaps. has 1 resource instances")
    );
    let discovery =
        condition(&ns, "NamespaceDeletionDiscoveryFailure").context("discovery condition")?;
    assert_eq!(discovery.status, "False");
    let failure =
        condition(&ns, "NamespaceDeletionContentFailure").context("content failure condition")?;
    assert_eq!(failure.status, "False", "{:?}", failure.message);

    let cms = Api::<ConfigMap>::namespaced(client.clone(), "held");
    assert!(
        cms.get_opt("plain").await?.is_none(),
        "content without finalizers is gone"
    );
    let pinned = cms.get("pinned").await?;
    assert!(
        pinned.metadata.deletion_timestamp.is_some(),
        "the pinned configmap is being deleted"
    );

    // It stays like that while the finalizer is there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ns = namespaces.get("held").await?;
    assert_eq!(
        ns.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );
    assert_eq!(
        ns.spec.as_ref().and_then(|s| s.finalizers.clone()),
        Some(vec!["kubernetes".to_string()])
    );

    // Its owner finishes: the configmap goes, then the namespace.
    cms.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    wait_namespace_gone(&client, "held").await;
    assert!(cms.list(&ListParams::default()).await?.items.is_empty());
    Ok(())
}

/// Short timings so takeovers happen within a test's patience.
const FAST_ELECTION: &[&str] = &[
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
];

#[tokio::test]
async fn of_two_controller_managers_only_one_holds_the_lease() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut a = ControllerManager::start(&cluster, "controller-manager-a", FAST_ELECTION)?;
    let mut b = ControllerManager::start(&cluster, "controller-manager-b", FAST_ELECTION)?;
    a.wait_healthy().await;
    b.wait_healthy().await;
    let ids = [a.identity.clone(), b.identity.clone()];

    let first = wait_for("a lease holder", Duration::from_secs(20), || async {
        let l = lease(&client).await?;
        ids.contains(&holder(&l)).then_some(l)
    })
    .await;
    let leader = holder(&first);
    let spec = first.spec.clone().context("lease spec")?;
    assert_eq!(spec.lease_duration_seconds, Some(4));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    assert_eq!(transitions(&first), 0);

    // Longer than a lease duration: the standby must not take over a lease being renewed.
    let mut last_renew = spec.renew_time.clone();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let l = lease(&client).await.context("lease")?;
        assert_eq!(
            holder(&l),
            leader,
            "leadership changed hands while the leader was healthy"
        );
        assert_eq!(transitions(&l), 0);
        last_renew = l.spec.and_then(|s| s.renew_time).or(last_renew);
    }
    assert!(last_renew > spec.renew_time, "the leader renews its lease");
    assert_eq!(healthz(a.health_port).await, Some(200));
    assert_eq!(
        healthz(b.health_port).await,
        Some(200),
        "a standby is healthy"
    );

    // The leader dies without a word: the standby takes over once the lease expires.
    let (mut dead, mut standby) = if leader == a.identity { (a, b) } else { (b, a) };
    dead.process.kill();
    let taken = wait_for(
        "the standby to take over",
        Duration::from_secs(20),
        || async {
            let l = lease(&client).await?;
            (holder(&l) == standby.identity).then_some(l)
        },
    )
    .await;
    assert_eq!(transitions(&taken), 1);

    // A graceful stop releases the lease for the next replica and exits 0.
    standby.signal(nix::sys::signal::Signal::SIGTERM)?;
    let status = standby.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let released = lease(&client).await.context("lease")?;
    assert_eq!(holder(&released), "", "the lease is released on shutdown");
    drop(dead);
    Ok(())
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_exits_non_zero() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(&cluster, "controller-manager", FAST_ELECTION)?;
    cm.wait_healthy().await;
    let mut l = wait_for("the lease", Duration::from_secs(20), || async {
        let l = lease(&client).await?;
        (holder(&l) == cm.identity).then_some(l)
    })
    .await;

    // Another replica (say, after a network partition) writes itself in.
    if let Some(spec) = l.spec.as_mut() {
        spec.holder_identity = Some("intruder_1".into());
        spec.lease_duration_seconds = Some(60);
    }
    let leases = Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE);
    let mut replaced = false;
    for _ in 0..10 {
        match leases.replace(LEASE_NAME, &PostParams::default(), &l).await {
            Ok(_) => {
                replaced = true;
                break;
            }
            // The leader renewed in between: take the newest version and try again.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let mut newer = leases.get(LEASE_NAME).await?;
                newer.spec = l.spec.clone();
                l = newer;
            }
            Err(e) => return Err(e.into()),
        }
    }
    assert!(replaced, "could not overwrite the lease");

    let status = cm.wait_exit(Duration::from_secs(15)).await;
    assert!(
        !status.success(),
        "losing leadership must exit non-zero, got {status}"
    );
    assert!(
        tail(&cm.log, 40).contains("leaderelection lost"),
        "{}",
        tail(&cm.log, 40)
    );
    Ok(())
}
