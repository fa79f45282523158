//! The root CA publisher against real etcd and the real kadm-apiserver: every namespace,
//! old and new, gets `kube-root-ca.crt` with the cluster CA from the controller manager's
//! kubeconfig; a deleted one comes back and an edited one is restored.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{ControllerManager, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kadm_e2e::TestCluster;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

fn published(cm: &ConfigMap, ca: &str) -> bool {
    cm.data.as_ref() == Some(&BTreeMap::from([("ca.crt".to_string(), ca.to_string())]))
        && cm
            .annotations()
            .get("kubernetes.io/description")
            .map(String::as_str)
            == Some(DESCRIPTION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_namespace_gets_the_cluster_ca_back_whatever_happens_to_it() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let ca = std::fs::read_to_string(cluster.ca_cert_path())?;
    let mut cm = ControllerManager::start(
        &cluster,
        "controller-manager",
        &["--controllers", "root-ca-cert-publisher"],
    )?;
    cm.wait_healthy().await;

    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        wait_for(&format!("{NAME} in {ns}"), WAIT, || async {
            api.get_opt(NAME).await.ok()?.filter(|c| published(c, &ca))
        })
        .await;
    }

    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-a"}}))?,
        )
        .await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    let first = wait_for("the CA in team-a", WAIT, || async {
        api.get_opt(NAME).await.ok()?.filter(|c| published(c, &ca))
    })
    .await;

    // Edited: restored.
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"ca.crt": "tampered"}})),
    )
    .await?;
    wait_for("the CA restored in team-a", WAIT, || async {
        api.get_opt(NAME).await.ok()?.filter(|c| published(c, &ca))
    })
    .await;

    // Deleted: made again, as a new object.
    api.delete(NAME, &DeleteParams::default()).await?;
    let again = wait_for("the CA back in team-a", WAIT, || async {
        api.get_opt(NAME)
            .await
            .ok()?
            .filter(|c| c.uid() != first.uid() && published(c, &ca))
    })
    .await;
    assert_eq!(again.name_any(), NAME);

    // --root-ca-file wins over the kubeconfig.
    drop(cm);
    let other = cluster.dir().join("other-ca.crt");
    std::fs::write(
        &other,
        "-----BEGIN CERTIFICATE-----\nb3RoZXI=\n-----END CERTIFICATE-----\n",
    )?;
    let other_path = other.to_string_lossy().to_string();
    let mut cm = ControllerManager::start(
        &cluster,
        "controller-manager-2",
        &[
            "--controllers",
            "root-ca-cert-publisher",
            "--root-ca-file",
            &other_path,
            // The first one was killed holding the lease.
            "--leader-elect=false",
        ],
    )?;
    cm.wait_healthy().await;
    let other_ca = std::fs::read_to_string(&other)?;
    wait_for("the other CA in team-a", WAIT, || async {
        api.get_opt(NAME)
            .await
            .ok()?
            .filter(|c| published(c, &other_ca))
    })
    .await;
    Ok(())
}
