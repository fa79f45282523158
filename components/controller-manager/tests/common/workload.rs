//! The setting the workload controller tests share: a cluster, a controller manager running
//! the controllers under test, the test's namespace and hollow nodes acting as kubelets,
//! plus the small readings of pods and events the tests assert on.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kadm_e2e::TestCluster;
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::task::JoinHandle;

use super::ControllerManager;

/// What [`start`] brings up; each part stops on drop, so tests hold all of them.
pub type Started = (TestCluster, Client, ControllerManager, HollowNodes);

/// `count` hollow nodes named `<prefix>-<n>`, renewing their leases often enough that the
/// node lifecycle controller (when it runs) never finds them stale.
pub fn hollow(prefix: &str, count: usize) -> HollowSpec {
    HollowSpec {
        count,
        name_prefix: prefix.into(),
        lease_renew: Duration::from_secs(5),
        ..HollowSpec::default()
    }
}

/// Starts a cluster and a healthy controller manager with `flags`, creates namespace `ns`,
/// then starts the hollow `nodes`.
pub async fn start(flags: &[&str], ns: &str, nodes: HollowSpec) -> anyhow::Result<Started> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let mut cm = ControllerManager::start(&cluster, "controller-manager", flags)?;
    cm.wait_healthy().await;
    create_namespace(&client, ns).await?;
    let nodes = HollowNodes::start(client.clone(), nodes).await?;
    Ok((cluster, client, cm, nodes))
}

pub async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    Ok(())
}

/// Whether the pod's `Ready` condition is true.
pub fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn label<'a>(obj: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    obj.labels().get(key).map(String::as_str)
}

/// The reasons of the events in `ns` about the object named `name`; none while the events
/// cannot be listed (callers poll).
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// Watches the objects of kind `K` in `ns` and calls `seen` with all of them after every
/// change (and once the first list is in), so that a test can check an invariant at every
/// step it can observe. Runs until the task is aborted.
pub fn on_every_change<K>(
    client: &Client,
    ns: &str,
    mut seen: impl FnMut(&[Arc<K>]) + Send + 'static,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    tokio::spawn(
        watcher(
            Api::<K>::namespaced(client.clone(), ns),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer)
        .for_each(move |ev| {
            if matches!(
                ev,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
            ) {
                seen(&store.state());
            }
            futures::future::ready(())
        }),
    )
}
