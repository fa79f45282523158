//! Binding: `POST pods/<name>/binding` with the chosen node, asynchronously and with a
//! bounded number in flight, so the scheduling thread moves on to the next pod while the
//! apiserver writes this one (the pod is already assumed in the cache).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::cache::pod_info::PodInfo;
use crate::error::{Error, Result};

/// Sends bindings.
#[derive(Clone)]
pub struct Binder {
    client: Client,
    permits: Arc<Semaphore>,
    runtime: Handle,
}

/// The `Binding` object for `pod` on `node`; the uid makes the apiserver refuse to bind a
/// different pod that reused the name.
pub fn binding_body(pod: &PodInfo, node: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    })
}

impl Binder {
    pub fn new(client: Client, concurrency: usize, runtime: Handle) -> Self {
        Self {
            client,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            runtime,
        }
    }

    /// Binds in the background and calls `done` with the outcome.
    pub fn bind<F>(&self, pod: Arc<PodInfo>, node: String, done: F)
    where
        F: FnOnce(Arc<PodInfo>, String, Result<()>) + Send + 'static,
    {
        let client = self.client.clone();
        let permits = Arc::clone(&self.permits);
        self.runtime.spawn(async move {
            let outcome = match permits.acquire_owned().await {
                Ok(_permit) => bind_now(client, &pod, &node).await,
                Err(_) => Ok(()),
            };
            done(pod, node, outcome);
        });
    }
}

async fn bind_now(client: Client, pod: &PodInfo, node: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &pod.name,
        &PostParams::default(),
        &binding_body(pod, node),
    )
    .await
    .map(|_| ())
    .map_err(|e| Error::api("bind pod", pod.key(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;

    #[test]
    fn binding_names_the_pod_uid_and_node() {
        let p = pod(serde_json::json!({"metadata": {"name": "web", "namespace": "shop"}}));
        let b = binding_body(&p, "n7");
        assert_eq!(b["kind"], "Binding");
        assert_eq!(b["metadata"]["uid"], "uid-web");
        assert_eq!(b["metadata"]["namespace"], "shop");
        assert_eq!(b["target"]["name"], "n7");
        assert_eq!(b["target"]["kind"], "Node");
    }
}
