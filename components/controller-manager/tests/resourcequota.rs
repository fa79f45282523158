//! The resource quota controller against real etcd and the real kadm-apiserver: a new
//! quota's status is filled with what the namespace already holds, deletions (of pods,
//! configmaps, services and `count/` resources of any group) and finished pods are given
//! back, scopes select what counts, and a changed spec is recounted.

mod common;

use std::time::Duration;

use common::{ControllerManager, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, Service};
use kadm_e2e::TestCluster;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const NS: &str = "quota";

fn object<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

/// The quota's status as JSON (`{"hard": {...}, "used": {...}}`).
async fn status(api: &Api<ResourceQuota>, name: &str) -> Value {
    api.get(name)
        .await
        .ok()
        .and_then(|q| serde_json::to_value(q.status).ok())
        .unwrap_or(Value::Null)
}

async fn wait_used(api: &Api<ResourceQuota>, name: &str, used: Value) {
    wait_for(&format!("{name} used {used}"), WAIT, || {
        let used = used.clone();
        async move { (status(api, name).await["used"] == used).then_some(()) }
    })
    .await;
}

fn pod(name: &str, resources: Value, extra: Value) -> Pod {
    let mut spec =
        json!({"containers": [{"name": "c", "image": "busybox", "resources": resources}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    object(json!({"metadata": {"name": name}, "spec": spec}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_status_follows_what_the_namespace_holds() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": NS}})),
        )
        .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let cms = Api::<ConfigMap>::namespaced(client.clone(), NS);
    let deploys = Api::<Deployment>::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    // What exists before the quota does is counted when it appears.
    pods.create(
        &pp,
        &pod(
            "burstable",
            json!({"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}),
            json!({}),
        ),
    )
    .await?;
    pods.create(&pp, &pod("besteffort", json!({}), json!({})))
        .await?;
    cms.create(&pp, &object(json!({"metadata": {"name": "one"}})))
        .await?;
    deploys
        .create(
            &pp,
            &object(json!({"metadata": {"name": "web"}, "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})),
        )
        .await?;

    let mut cm = ControllerManager::start(
        &cluster,
        "controller-manager",
        &[
            "--controllers",
            "resourcequota",
            "--resource-quota-sync-period",
            "1h",
        ],
    )?;
    cm.wait_healthy().await;
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), NS);
    quotas
        .create(
            &pp,
            &object(json!({"metadata": {"name": "compute"}, "spec": {"hard": {
                "pods": "10", "requests.cpu": "2", "requests.memory": "1Gi", "limits.memory": "2Gi",
                "configmaps": "5", "count/deployments.apps": "3", "services": "2",
                "services.nodeports": "4"}}})),
        )
        .await?;
    quotas
        .create(
            &pp,
            &object(json!({"metadata": {"name": "besteffort"},
                "spec": {"hard": {"pods": "10"}, "scopes": ["BestEffort"]}})),
        )
        .await?;
    wait_used(
        &quotas,
        "compute",
        json!({"configmaps": "1", "count/deployments.apps": "1", "limits.memory": "128Mi",
            "pods": "2", "requests.cpu": "250m", "requests.memory": "64Mi",
            "services": "0", "services.nodeports": "0"}),
    )
    .await;
    assert_eq!(
        status(&quotas, "compute").await["hard"]["requests.memory"],
        "1Gi"
    );
    wait_used(&quotas, "besteffort", json!({"pods": "1"})).await;

    // Deletions are given back: a pod, a configmap, a deployment (apps group).
    pods.delete("burstable", &DeleteParams::default()).await?;
    cms.delete("one", &DeleteParams::default()).await?;
    deploys.delete("web", &DeleteParams::default()).await?;
    wait_used(
        &quotas,
        "compute",
        json!({"configmaps": "0", "count/deployments.apps": "0", "limits.memory": "0",
            "pods": "1", "requests.cpu": "0", "requests.memory": "0",
            "services": "0", "services.nodeports": "0"}),
    )
    .await;

    // Services charge node ports; deleting one gives them back.
    let svcs = Api::<Service>::namespaced(client.clone(), NS);
    svcs.create(
        &pp,
        &object(json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort",
            "selector": {"app": "x"}, "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}})),
    )
    .await?;
    wait_for("the node ports charged", WAIT, || async {
        (status(&quotas, "compute").await["used"]["services.nodeports"] == "2").then_some(())
    })
    .await;
    svcs.delete("np", &DeleteParams::default()).await?;
    wait_for("the node ports released", WAIT, || async {
        (status(&quotas, "compute").await["used"]["services.nodeports"] == "0").then_some(())
    })
    .await;

    // A pod that finishes releases its compute resources and its place in `pods` (it
    // would still count in `count/pods`). Admission wants its memory stated: the quota
    // tracks memory.
    pods.create(
        &pp,
        &pod(
            "job",
            json!({"requests": {"cpu": "1", "memory": "32Mi"}, "limits": {"memory": "32Mi"}}),
            json!({"restartPolicy": "Never"}),
        ),
    )
    .await?;
    wait_for("the job charged", WAIT, || async {
        (status(&quotas, "compute").await["used"]["requests.cpu"] == "1").then_some(())
    })
    .await;
    pods.patch_status(
        "job",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
    )
    .await?;
    wait_for("the job released", WAIT, || async {
        let s = status(&quotas, "compute").await;
        (s["used"]["requests.cpu"] == "0" && s["used"]["pods"] == "1").then_some(())
    })
    .await;

    // A raised limit is recounted into status.hard.
    quotas
        .patch(
            "compute",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "20"}}})),
        )
        .await?;
    wait_for("the raised limit", WAIT, || async {
        (status(&quotas, "compute").await["hard"]["pods"] == "20").then_some(())
    })
    .await;
    Ok(())
}
