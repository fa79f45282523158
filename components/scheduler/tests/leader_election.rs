//! Two kadm-scheduler replicas: exactly one schedules (the Lease holder); when it is
//! killed, the standby takes the Lease `kube-system/kadm-scheduler` over and schedules.

mod common;

use std::time::Duration;

use common::{Scheduler, create_pod, nodes, pod, wait_bound, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use kadm_e2e::TestCluster;
use kube::api::Api;
use serde_json::json;

const FAST_ELECTION: [&str; 3] = [
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=1s",
];

async fn holder(client: &kube::Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), "kube-system")
        .get_opt("kadm-scheduler")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_is_killed() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let _n = nodes(&client, "node", 2, "4", &[], json!([])).await?;
    let mut a = Scheduler::start(&cluster, "scheduler-a", &FAST_ELECTION)?;
    a.wait_healthy().await;
    let first = wait_for("a lease holder", Duration::from_secs(20), || {
        holder(&client)
    })
    .await;
    assert_eq!(first, a.identity);
    let mut b = Scheduler::start(&cluster, "scheduler-b", &FAST_ELECTION)?;
    b.wait_healthy().await;

    create_pod(&client, pod("before", "100m", json!({}), json!({}))).await?;
    wait_bound(&client, "before").await;
    assert!(
        a.log_text().contains("default/before"),
        "the leader scheduled it"
    );
    assert!(
        !b.log_text().contains("assumed pod"),
        "the standby must not schedule"
    );
    assert_eq!(holder(&client).await.as_deref(), Some(a.identity.as_str()));

    a.signal(nix::sys::signal::Signal::SIGKILL)?;
    let next = wait_for(
        "the standby to take the lease",
        Duration::from_secs(30),
        || async { holder(&client).await.filter(|h| *h != a.identity) },
    )
    .await;
    assert_eq!(next, b.identity);

    create_pod(&client, pod("after", "100m", json!({}), json!({}))).await?;
    wait_bound(&client, "after").await;
    assert!(
        b.log_text().contains("default/after"),
        "the new leader scheduled it"
    );
    assert!(b.process.exited().is_none());
    Ok(())
}
