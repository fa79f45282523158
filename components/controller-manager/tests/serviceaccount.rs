//! The ServiceAccount controller against real etcd and the real kadm-apiserver: every
//! namespace, old and new, gets a `default` ServiceAccount, and a deleted one comes back.

mod common;

use std::time::Duration;

use common::{ControllerManager, wait_for};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kadm_e2e::TestCluster;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_a_default_service_account_again_and_again() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(
        &cluster,
        "controller-manager",
        &["--controllers", "serviceaccount"],
    )?;
    cm.wait_healthy().await;

    // The namespaces the apiserver made at start.
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        wait_for(&format!("default serviceaccount in {ns}"), WAIT, || async {
            api.get_opt("default").await.ok()?.map(|_| ())
        })
        .await;
    }

    // A new namespace.
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-a"}}))?,
        )
        .await?;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    let first = wait_for("default serviceaccount in team-a", WAIT, || async {
        api.get_opt("default").await.ok()?
    })
    .await;

    // Deleted: made again, as a new object.
    api.delete("default", &DeleteParams::default()).await?;
    let again = wait_for("default serviceaccount back in team-a", WAIT, || async {
        api.get_opt("default")
            .await
            .ok()?
            .filter(|sa| sa.uid() != first.uid())
    })
    .await;
    assert_eq!(again.name_any(), "default");

    // Other accounts are not touched, and nothing else is made.
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "builder"}}))?,
    )
    .await?;
    api.delete("builder", &DeleteParams::default()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(api.get_opt("builder").await?.is_none());
    let names: Vec<String> = api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    assert_eq!(names, ["default"]);
    Ok(())
}
