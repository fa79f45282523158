//! The apiserver keeps no state of its own: everything survives its restart, and it
//! reports etcd's loss on /readyz instead of pretending to be ready.

use k8s_openapi::api::core::v1::ConfigMap;
use kadm_e2e::TestCluster;
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test]
async fn data_written_before_an_apiserver_restart_is_still_there_after_it() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start().await?;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.kube_client().await?, "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "survivor", "labels": {"keep": "yes"}},
        "data": {"answer": "42"},
    }))?;
    let created = cms.create(&PostParams::default(), &cm).await?;

    let old_pid = cluster.apiserver_pid();
    cluster.restart_apiserver().await?;
    assert_ne!(
        cluster.apiserver_pid(),
        old_pid,
        "a new apiserver process runs"
    );
    assert_ne!(cluster.apiserver_pid(), 0);

    let cms: Api<ConfigMap> = Api::namespaced(cluster.kube_client().await?, "default");
    let got = cms.get("survivor").await?;
    assert_eq!(
        got.data
            .unwrap_or_default()
            .get("answer")
            .map(String::as_str),
        Some("42")
    );
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    // The system namespaces are not duplicated or recreated by the second start.
    let out = cluster
        .kubectl(
            Some("1.33"),
            &["get", "ns", "default", "-o", "jsonpath={.metadata.uid}"],
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn readyz_fails_once_etcd_is_gone() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start().await?;
    let anon = cluster.raw_anonymous()?;
    assert_eq!(anon.get("/readyz").await?.status, 200);
    cluster.kill_etcd();
    assert_eq!(cluster.etcd_pid(), 0);
    let r = anon.get("/readyz").await?;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("etcd"), "{}", r.text());
    // Liveness does not depend on etcd: the process itself is fine.
    assert_eq!(anon.get("/livez").await?.status, 200);
    Ok(())
}
