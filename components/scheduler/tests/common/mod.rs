//! The kadm-scheduler process fixture shared by the integration tests: start it against a
//! `TestCluster`, wait for health, stop it by pid, print its log on failure; plus helpers
//! to create nodes and pods and to wait for bindings and events.

#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Event, Pod};
use kadm_e2e::TestCluster;
pub use kadm_e2e::component::wait_for;
use kadm_e2e::component::{Component, Kind};
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

const KIND: Kind = Kind {
    binary: env!("CARGO_BIN_EXE_kadm-scheduler"),
    kubeconfig: kadm_bootstrap::kubeconfig::SCHEDULER_CONF,
    log_target: "kadm_scheduler",
};
pub const NS: &str = "default";
/// How long a binding, an event or a condition may take to appear.
pub const WAIT: Duration = Duration::from_secs(30);

/// One kadm-scheduler process; killed on drop, its log printed if the test fails.
pub struct Scheduler(Component);

impl Scheduler {
    pub fn start(cluster: &TestCluster, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Component::start(KIND, cluster, name, extra).map(Self)
    }
}

impl Deref for Scheduler {
    type Target = Component;
    fn deref(&self) -> &Component {
        &self.0
    }
}

impl DerefMut for Scheduler {
    fn deref_mut(&mut self) -> &mut Component {
        &mut self.0
    }
}

/// Hollow nodes named `{prefix}-{i}` with the given cpu, labels and taints.
pub async fn nodes(
    client: &kube::Client,
    prefix: &str,
    count: usize,
    cpu: &str,
    labels: &[(&str, &str)],
    taints: Value,
) -> anyhow::Result<HollowNodes> {
    HollowNodes::start(
        client.clone(),
        HollowSpec {
            count,
            name_prefix: prefix.to_string(),
            cpu: cpu.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taints: serde_json::from_value(taints)?,
            ..HollowSpec::default()
        },
    )
    .await
}

pub async fn create_pod(client: &kube::Client, pod: Value) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(pod)?;
    Api::<Pod>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .context("create pod")
}

/// A pod requesting `cpu`, with `extra` merged into its spec.
pub fn pod(name: &str, cpu: &str, labels: Value, spec_extra: Value) -> Value {
    let mut spec = serde_json::json!({
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels}, "spec": spec})
}

pub async fn get_pod(client: &kube::Client, name: &str) -> Option<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

pub fn node_of(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// Waits until the pod is bound; returns its node.
pub async fn wait_bound(client: &kube::Client, name: &str) -> String {
    wait_for(&format!("pod {name} to be bound"), WAIT, || async {
        get_pod(client, name).await.as_ref().and_then(node_of)
    })
    .await
}

/// The pod's `PodScheduled` condition as (status, reason, message).
pub fn scheduled_condition(pod: &Pod) -> Option<(String, String, String)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// Core events about `pod` with `reason`, as (message, source component).
pub async fn events_for(client: &kube::Client, pod: &str, reason: &str) -> Vec<(String, String)> {
    let list = Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .filter(|e| e.reason.as_deref() == Some(reason))
        .map(|e| {
            let source = e
                .reporting_component
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| e.source.as_ref().and_then(|s| s.component.clone()))
                .unwrap_or_default();
            (e.message.unwrap_or_default(), source)
        })
        .collect()
}

/// Waits for an event about `pod` with `reason`; returns its message.
pub async fn wait_event(client: &kube::Client, pod: &str, reason: &str) -> String {
    wait_for(&format!("a {reason} event for {pod}"), WAIT, || async {
        events_for(client, pod, reason)
            .await
            .into_iter()
            .next()
            .map(|(m, _)| m)
    })
    .await
}

/// Starts one scheduler without leader election and waits for it to be healthy.
pub async fn scheduler(cluster: &TestCluster) -> anyhow::Result<Scheduler> {
    let mut s = Scheduler::start(cluster, "kadm-scheduler", &["--leader-elect=false"])?;
    s.wait_healthy().await;
    Ok(s)
}
