//! The slices of Pods and Nodes the scheduler reads, as the watchers decode them.
//!
//! A full `k8s_openapi` Pod decodes every field (env, volumes, probes, managedFields, …)
//! into memory. The scheduler needs perhaps a tenth of that, and it watches every pod in
//! the cluster, so these types name only what it reads: serde skips the rest while
//! decoding, which keeps the watch stream cheap and the resident set small.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ContainerImage, ContainerPort, PodCondition, ResourceRequirements, Taint, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::Deserialize;

/// The metadata fields the scheduler reads (no annotations, no managedFields).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetaWire {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<MetaWire> for ObjectMeta {
    fn from(w: MetaWire) -> Self {
        ObjectMeta {
            name: w.name,
            namespace: w.namespace,
            uid: w.uid,
            resource_version: w.resource_version,
            labels: w.labels,
            creation_timestamp: w.creation_timestamp,
            deletion_timestamp: w.deletion_timestamp,
            owner_references: w.owner_references,
            ..ObjectMeta::default()
        }
    }
}

/// A container as far as scheduling goes.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerLite {
    pub name: String,
    pub image: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub ports: Option<Vec<ContainerPort>>,
    /// `Always` on an init container makes it a sidecar (restartable init container).
    pub restart_policy: Option<String>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpecLite {
    pub node_name: Option<String>,
    pub scheduler_name: Option<String>,
    pub priority: Option<i32>,
    pub priority_class_name: Option<String>,
    pub preemption_policy: Option<String>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub affinity: Option<Affinity>,
    pub tolerations: Option<Vec<Toleration>>,
    pub containers: Vec<ContainerLite>,
    pub init_containers: Option<Vec<ContainerLite>>,
    pub overhead: Option<BTreeMap<String, Quantity>>,
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    pub scheduling_gates: Option<Vec<SchedulingGateLite>>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SchedulingGateLite {
    pub name: String,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatusLite {
    pub phase: Option<String>,
    pub nominated_node_name: Option<String>,
    pub conditions: Option<Vec<PodCondition>>,
    pub start_time: Option<Time>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodWire {
    metadata: MetaWire,
    spec: PodSpecLite,
    status: PodStatusLite,
}

/// A Pod as the scheduler watches it.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(from = "PodWire")]
pub struct PodObject {
    pub metadata: ObjectMeta,
    pub spec: PodSpecLite,
    pub status: PodStatusLite,
}

impl From<PodWire> for PodObject {
    fn from(w: PodWire) -> Self {
        Self {
            metadata: w.metadata.into(),
            spec: w.spec,
            status: w.status,
        }
    }
}

impl kube::Resource for PodObject {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct NodeSpecLite {
    pub unschedulable: Option<bool>,
    pub taints: Option<Vec<Taint>>,
}

#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct NodeStatusLite {
    pub allocatable: Option<BTreeMap<String, Quantity>>,
    pub images: Option<Vec<ContainerImage>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeWire {
    metadata: MetaWire,
    spec: NodeSpecLite,
    status: NodeStatusLite,
}

/// A Node as the scheduler watches it.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(from = "NodeWire")]
pub struct NodeObject {
    pub metadata: ObjectMeta,
    pub spec: NodeSpecLite,
    pub status: NodeStatusLite,
}

impl From<NodeWire> for NodeObject {
    fn from(w: NodeWire) -> Self {
        Self {
            metadata: w.metadata.into(),
            spec: w.spec,
            status: w.status,
        }
    }
}

impl kube::Resource for NodeObject {
    type DynamicType = ();
    type Scope = ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Node".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "nodes".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_decode_only_what_scheduling_reads() {
        let pod: PodObject = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web"}, "annotations": {"big": "x"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"schedulerName": "default-scheduler", "priority": 5,
                "containers": [{"name": "c", "image": "nginx", "env": [{"name": "A", "value": "b"}],
                    "resources": {"requests": {"cpu": "100m"}}, "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Pending", "nominatedNodeName": "n1"}
        }))
        .expect("decode");
        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(pod.metadata.resource_version.as_deref(), Some("7"));
        assert!(pod.metadata.managed_fields.is_none());
        assert!(pod.metadata.annotations.is_none());
        assert_eq!(pod.spec.priority, Some(5));
        assert_eq!(pod.spec.containers[0].image.as_deref(), Some("nginx"));
        assert_eq!(pod.status.nominated_node_name.as_deref(), Some("n1"));
        assert_eq!(kube::Resource::meta(&pod).uid.as_deref(), Some("u1"));
    }

    #[test]
    fn nodes_decode_labels_taints_allocatable_images() {
        let node: NodeObject = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {"allocatable": {"cpu": "4", "pods": "110"},
                "images": [{"names": ["nginx:1.27"], "sizeBytes": 100}],
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("decode");
        assert_eq!(node.spec.unschedulable, Some(true));
        assert_eq!(node.spec.taints.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            node.status
                .allocatable
                .as_ref()
                .and_then(|a| a.get("cpu"))
                .map(|q| q.0.as_str()),
            Some("4")
        );
        assert_eq!(node.status.images.as_ref().map(Vec::len), Some(1));
    }
}
