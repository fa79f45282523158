//! Binding pods to nodes through `pods/binding`, as kadm-scheduler would: no scheduler runs
//! in the controller-manager tests, and hollow nodes only run pods bound to them.

#![allow(dead_code)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

/// How long a background binder keeps going at most.
const BINDER_LIFETIME: Duration = Duration::from_secs(600);
const BINDER_PERIOD: Duration = Duration::from_millis(200);

/// Binds `pod` to `node`.
pub async fn bind(client: &Client, ns: &str, pod: &str, node: &str) -> anyhow::Result<()> {
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "namespace": ns},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    Api::<Pod>::namespaced(client.clone(), ns)
        .create_subresource::<_, serde_json::Value>(
            "binding",
            pod,
            &PostParams::default(),
            &binding,
        )
        .await?;
    Ok(())
}

/// The node a DaemonSet pod is pinned to: its `matchFields metadata.name In [node]` term.
pub fn pinned_node(pod: &Pod) -> Option<String> {
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// Binds the unbound pods of a namespace in the background until dropped.
pub struct Binder(JoinHandle<()>);

impl Drop for Binder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every [`BINDER_PERIOD`], binds each unbound, live pod of `ns` to the node `choose` names.
pub fn spawn_binder(
    client: Client,
    ns: &str,
    choose: impl Fn(&Pod) -> Option<String> + Send + 'static,
) -> Binder {
    let ns = ns.to_string();
    Binder(tokio::spawn(async move {
        let api = Api::<Pod>::namespaced(client.clone(), &ns);
        let deadline = tokio::time::Instant::now() + BINDER_LIFETIME;
        while tokio::time::Instant::now() < deadline {
            if let Ok(list) = api
                .list(&ListParams::default().fields("spec.nodeName="))
                .await
            {
                for pod in list.items {
                    if pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if let Some(node) = choose(&pod) {
                        // A pod bound meanwhile or gone is fine.
                        let _ = bind(&client, &ns, &pod.name_any(), &node).await;
                    }
                }
            }
            tokio::time::sleep(BINDER_PERIOD).await;
        }
    }))
}
