//! [`NodeInfo`]: one node and the pods bound or assumed on it, with the aggregates the
//! filters read (requested resources, used host ports) kept up to date on every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Taint;

use crate::cache::pod_info::{BIND_ALL, HostPort, PodInfo};
use crate::cache::resources::Resources;
use crate::labels::Labels;
use crate::objects::NodeObject;

/// The node object's scheduling-relevant fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeData {
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    /// Image name → size in bytes, every name of every image the node reports.
    pub images: BTreeMap<String, i64>,
}

impl NodeData {
    pub fn from_object(node: &NodeObject) -> Self {
        let mut images = BTreeMap::new();
        for img in node.status.images.iter().flatten() {
            for name in img.names.iter().flatten() {
                images.insert(name.clone(), img.size_bytes.unwrap_or(0));
            }
        }
        Self {
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: node.spec.taints.clone().unwrap_or_default(),
            unschedulable: node.spec.unschedulable.unwrap_or(false),
            allocatable: Resources::from_list(node.status.allocatable.as_ref()),
            images,
        }
    }
}

/// Host ports in use on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsedPorts {
    /// A multiset: two pods may (wrongly) claim the same port; removing one keeps the other.
    ports: Vec<(HostPort, u32)>,
}

impl UsedPorts {
    pub fn add(&mut self, p: &HostPort) {
        match self.ports.iter_mut().find(|(q, _)| q == p) {
            Some((_, n)) => *n += 1,
            None => self.ports.push((p.clone(), 1)),
        }
    }

    pub fn remove(&mut self, p: &HostPort) {
        if let Some(i) = self.ports.iter().position(|(q, _)| q == p) {
            self.ports[i].1 -= 1;
            if self.ports[i].1 == 0 {
                self.ports.swap_remove(i);
            }
        }
    }

    /// `HostPortInfo.CheckConflict`: the same protocol and port on the same IP, or on any IP
    /// when either side binds 0.0.0.0.
    pub fn conflicts(&self, want: &HostPort) -> bool {
        self.ports.iter().any(|(used, _)| {
            used.port == want.port
                && used.protocol == want.protocol
                && (want.ip == BIND_ALL || used.ip == BIND_ALL || used.ip == want.ip)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// A node with its pods and aggregates. `node` is `None` for a placeholder that holds pods
/// bound to a node the scheduler has not seen (yet).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub node: Option<NodeData>,
    pub pods: Vec<Arc<PodInfo>>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// cpu and memory with non-zero defaults, for scoring.
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: UsedPorts,
    /// Pods with any pod (anti-)affinity section, and with required anti-affinity.
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    /// Bumped on every change.
    pub generation: u64,
}

impl NodeInfo {
    pub fn new(name: &str, node: Option<NodeData>) -> Self {
        Self {
            name: name.to_string(),
            node,
            pods: Vec::new(),
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            used_ports: UsedPorts::default(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            generation: 0,
        }
    }

    pub fn labels(&self) -> &Labels {
        static EMPTY: Labels = BTreeMap::new();
        self.node.as_ref().map_or(&EMPTY, |n| &n.labels)
    }

    pub fn allocatable(&self) -> Option<&Resources> {
        self.node.as_ref().map(|n| &n.allocatable)
    }

    fn account(&mut self, pod: &PodInfo, sign: i64) {
        self.requested.add(&pod.requests, sign);
        self.non_zero_milli_cpu += sign * pod.non_zero_milli_cpu;
        self.non_zero_memory += sign * pod.non_zero_memory;
        for p in &pod.host_ports {
            if sign > 0 {
                self.used_ports.add(p);
            } else {
                self.used_ports.remove(p);
            }
        }
        let delta = |n: &mut usize| {
            if sign > 0 {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        if pod.has_pod_affinity {
            delta(&mut self.pods_with_affinity);
        }
        if pod.has_required_anti_affinity() {
            delta(&mut self.pods_with_required_anti_affinity);
        }
        self.generation += 1;
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.account(&pod, 1);
        self.pods.push(pod);
    }

    /// Removes the pod with `uid`; returns it if it was here.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.account(&pod, -1);
        Some(pod)
    }

    /// The pods with required anti-affinity terms.
    pub fn pods_with_required_anti_affinity(&self) -> impl Iterator<Item = &Arc<PodInfo>> {
        self.pods.iter().filter(|p| p.has_required_anti_affinity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use serde_json::json;

    #[test]
    fn aggregates_follow_adds_and_removes() {
        let mut n = NodeInfo::new("n1", None);
        let a = Arc::new(pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "100m"}}, "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
        ));
        let b = Arc::new(pod(
            json!({"metadata": {"name": "b"}, "spec": {"containers": [{"name": "c"}]}}),
        ));
        n.add_pod(a.clone());
        n.add_pod(b.clone());
        assert_eq!(n.requested.milli_cpu, 100);
        assert_eq!(n.non_zero_milli_cpu, 200);
        assert!(n.used_ports.conflicts(&a.host_ports[0]));
        assert_eq!(
            n.remove_pod(&a.uid).map(|p| p.name.clone()),
            Some("a".into())
        );
        assert_eq!(n.requested.milli_cpu, 0);
        assert!(n.used_ports.is_empty());
        assert!(n.remove_pod(&a.uid).is_none());
        assert_eq!(n.pods.len(), 1);
    }

    #[test]
    fn port_conflicts_follow_host_port_info() {
        let mut used = UsedPorts::default();
        let p = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        used.add(&p("10.0.0.1", "TCP", 80));
        assert!(used.conflicts(&p("10.0.0.1", "TCP", 80)));
        assert!(used.conflicts(&p(BIND_ALL, "TCP", 80)));
        assert!(!used.conflicts(&p("10.0.0.2", "TCP", 80)));
        assert!(!used.conflicts(&p("10.0.0.1", "UDP", 80)));
        used.add(&p(BIND_ALL, "UDP", 53));
        assert!(used.conflicts(&p("10.0.0.9", "UDP", 53)));
    }
}
