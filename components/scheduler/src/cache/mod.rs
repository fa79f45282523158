//! The scheduler's picture of the cluster: nodes with the pods bound to them (confirmed by
//! the watch) or assumed (chosen by this scheduler, binding in flight), namespaces' labels
//! and image spread.
//!
//! ```text
//!  watch: pod bound ─────────────► add_pod ──► confirmed
//!  scheduling cycle ─► assume ──► assumed ──► (watch sees the binding) confirmed
//!                                    └──────► (binding failed) forget
//!  watch: pod deleted / finished ─► remove_pod
//! ```
//!
//! Assuming at decision time is what lets the next cycle start at once: the pod's
//! resources, ports and labels count on its node before the apiserver has even answered.

pub mod node_info;
pub mod node_tree;
pub mod pod_info;
pub mod resources;

use std::collections::HashMap;
use std::sync::Arc;

use crate::labels::Labels;
use crate::objects::NodeObject;
use node_info::{NodeData, NodeInfo};
use node_tree::{NodeTree, zone_key};
use pod_info::PodInfo;

/// Where a pod the cache holds sits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodState {
    slot: usize,
    /// Chosen by this scheduler and not yet seen bound by the watch.
    assumed: bool,
}

/// What changed on a node, for requeueing the pods that waited on such a change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeChange {
    pub added: bool,
    pub allocatable: bool,
    pub labels: bool,
    pub taints: bool,
    pub unschedulable: bool,
    pub images: bool,
}

impl NodeChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Nodes, their pods and cluster-wide aggregates.
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<Option<NodeInfo>>,
    free: Vec<usize>,
    by_name: HashMap<String, usize>,
    tree: NodeTree,
    /// Zone key of each real node, to move it in the tree when its labels change.
    zones: HashMap<usize, String>,
    /// Real nodes in trial order (zones interleaved).
    order: Vec<usize>,
    pods: HashMap<String, PodState>,
    /// Image name → how many nodes have it.
    image_nodes: HashMap<String, usize>,
    namespaces: HashMap<String, Labels>,
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
}

impl Cache {
    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(s) = self.by_name.get(name) {
            return *s;
        }
        let info = NodeInfo::new(name, None);
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s] = Some(info);
                s
            }
            None => {
                self.slots.push(Some(info));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.to_string(), slot);
        slot
    }

    fn info_mut(&mut self, slot: usize) -> &mut NodeInfo {
        self.slots[slot]
            .as_mut()
            .unwrap_or_else(|| unreachable!("slot {slot} is live while referenced"))
    }

    /// Drops a placeholder slot that no longer holds pods.
    fn release_if_empty_placeholder(&mut self, slot: usize) {
        let empty_placeholder = self.slots[slot]
            .as_ref()
            .is_some_and(|n| n.node.is_none() && n.pods.is_empty());
        if empty_placeholder && let Some(info) = self.slots[slot].take() {
            self.by_name.remove(&info.name);
            self.free.push(slot);
        }
    }

    fn images_delta(&mut self, data: &NodeData, sign: isize) {
        for name in data.images.keys() {
            let n = self.image_nodes.entry(name.clone()).or_default();
            *n = n.saturating_add_signed(sign);
            if *n == 0 {
                self.image_nodes.remove(name);
            }
        }
    }

    /// Adds or updates a node; returns what changed.
    pub fn set_node(&mut self, node: &NodeObject) -> NodeChange {
        let Some(name) = node.metadata.name.as_deref() else {
            return NodeChange::default();
        };
        let data = NodeData::from_object(node);
        let slot = self.slot_for(name);
        let old = self.info_mut(slot).node.take();
        let change = match &old {
            None => NodeChange {
                added: true,
                ..NodeChange::default()
            },
            Some(o) => NodeChange {
                added: false,
                allocatable: o.allocatable != data.allocatable,
                labels: o.labels != data.labels,
                taints: o.taints != data.taints,
                unschedulable: o.unschedulable != data.unschedulable,
                images: o.images != data.images,
            },
        };
        if let Some(o) = &old {
            self.images_delta(o, -1);
        }
        self.images_delta(&data, 1);
        let zone = zone_key(&data.labels);
        let info = self.info_mut(slot);
        info.node = Some(data);
        info.generation += 1;
        let old_zone = self.zones.insert(slot, zone.clone());
        if old_zone.as_deref() != Some(zone.as_str()) {
            if let Some(z) = old_zone {
                self.tree.remove(&z, slot);
            }
            self.tree.add(&zone, slot);
            self.order = self.tree.list();
        }
        change
    }

    /// Removes a node. Its pods stay (on a placeholder) until their own deletions arrive,
    /// as Kubernetes' cache keeps them.
    pub fn remove_node(&mut self, name: &str) -> bool {
        let Some(&slot) = self.by_name.get(name) else {
            return false;
        };
        let old = self.info_mut(slot).node.take();
        if let Some(o) = &old {
            self.images_delta(o, -1);
        }
        if let Some(z) = self.zones.remove(&slot) {
            self.tree.remove(&z, slot);
            self.order = self.tree.list();
        }
        self.release_if_empty_placeholder(slot);
        old.is_some()
    }

    fn count_pod(&mut self, pod: &PodInfo, sign: isize) {
        if pod.has_pod_affinity {
            self.pods_with_affinity = self.pods_with_affinity.saturating_add_signed(sign);
        }
        if pod.has_required_anti_affinity() {
            self.pods_with_required_anti_affinity = self
                .pods_with_required_anti_affinity
                .saturating_add_signed(sign);
        }
    }

    /// Takes a held pod off its node; returns the node's name.
    fn detach(&mut self, uid: &str) -> Option<String> {
        let state = self.pods.remove(uid)?;
        let info = self.info_mut(state.slot);
        let node = info.name.clone();
        if let Some(p) = info.remove_pod(uid) {
            self.count_pod(&p, -1);
        }
        self.release_if_empty_placeholder(state.slot);
        Some(node)
    }

    fn attach(&mut self, node: &str, pod: Arc<PodInfo>, assumed: bool) {
        let slot = self.slot_for(node);
        self.count_pod(&pod, 1);
        self.pods
            .insert(pod.uid.clone(), PodState { slot, assumed });
        self.info_mut(slot).add_pod(pod);
    }

    /// A pod the watch shows bound to `pod.node_name`: adds it, replaces an older version,
    /// or confirms an assumed one (also when it landed elsewhere than assumed).
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        let node = pod.node_name.clone();
        self.detach(&pod.uid);
        self.attach(&node, pod, false);
    }

    /// Removes a pod (deleted, finished, or rescheduled elsewhere); returns the node it was on.
    pub fn remove_pod(&mut self, uid: &str) -> Option<String> {
        self.detach(uid)
    }

    /// Counts `pod` on `node` before the binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.detach(&pod.uid);
        self.attach(node, pod, true);
    }

    /// Undoes [`assume`](Self::assume) after a failed binding, unless the watch confirmed
    /// the pod meanwhile.
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|s| s.assumed) {
            self.detach(uid);
        }
    }

    /// Whether the cache holds the pod, bound or assumed.
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The info of a held pod.
    pub fn pod(&self, uid: &str) -> Option<&Arc<PodInfo>> {
        let state = self.pods.get(uid)?;
        self.slots[state.slot]
            .as_ref()?
            .pods
            .iter()
            .find(|p| p.uid == uid)
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|s| s.assumed)
    }

    /// Real nodes in trial order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn node(&self, slot: usize) -> &NodeInfo {
        self.slots[slot]
            .as_ref()
            .unwrap_or_else(|| unreachable!("slot {slot} from the node order is live"))
    }

    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.by_name
            .get(name)
            .copied()
            .filter(|s| self.slots[*s].as_ref().is_some_and(|n| n.node.is_some()))
    }

    pub fn node_by_name(&self, name: &str) -> Option<&NodeInfo> {
        self.slot_of(name).map(|s| self.node(s))
    }

    pub fn num_nodes(&self) -> usize {
        self.order.len()
    }

    /// How many nodes report the image.
    pub fn image_num_nodes(&self, image: &str) -> usize {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    pub fn set_namespace(&mut self, name: &str, labels: Labels) {
        self.namespaces.insert(name.to_string(), labels);
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn namespace_labels(&self, name: &str) -> Option<&Labels> {
        self.namespaces.get(name)
    }

    /// Whether any held pod has a pod (anti-)affinity section.
    pub fn any_pod_with_affinity(&self) -> bool {
        self.pods_with_affinity > 0
    }

    /// Whether any held pod has required anti-affinity.
    pub fn any_pod_with_required_anti_affinity(&self) -> bool {
        self.pods_with_required_anti_affinity > 0
    }

    /// Every held pod's uid, for reconciling after a re-list.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    /// Every real node's name, for reconciling after a re-list.
    pub fn node_names(&self) -> Vec<String> {
        self.order
            .iter()
            .map(|s| self.node(*s).name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pod_info::tests::pod;
    use serde_json::json;

    fn node(name: &str, zone: &str) -> NodeObject {
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "images": [{"names": ["nginx:1.27"], "sizeBytes": 1000}]}}))
        .expect("node")
    }

    fn bound(name: &str, node: &str, cpu: &str) -> Arc<PodInfo> {
        Arc::new(pod(
            json!({"metadata": {"name": name}, "spec": {"nodeName": node,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}),
        ))
    }

    #[test]
    fn assumed_pods_count_until_forgotten_or_confirmed() {
        let mut c = Cache::default();
        assert!(c.set_node(&node("n1", "a")).added);
        let p = Arc::new(pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": "1"}}}]}}),
        ));
        c.assume(p.clone(), "n1");
        assert_eq!(
            c.node_by_name("n1").map(|n| n.requested.milli_cpu),
            Some(1000)
        );
        assert!(c.is_assumed(&p.uid));
        c.forget(&p.uid);
        assert_eq!(c.node_by_name("n1").map(|n| n.requested.milli_cpu), Some(0));
        c.assume(p.clone(), "n1");
        c.add_pod(bound("p", "n1", "1"));
        assert!(!c.is_assumed(&p.uid));
        c.forget(&p.uid);
        assert_eq!(c.node_by_name("n1").map(|n| n.pods.len()), Some(1));
        assert_eq!(c.remove_pod(&p.uid).as_deref(), Some("n1"));
        assert_eq!(c.node_by_name("n1").map(|n| n.pods.len()), Some(0));
    }

    #[test]
    fn pods_on_unknown_nodes_wait_on_placeholders() {
        let mut c = Cache::default();
        c.add_pod(bound("early", "n2", "500m"));
        assert_eq!(c.num_nodes(), 0);
        assert!(c.node_by_name("n2").is_none());
        c.set_node(&node("n2", "a"));
        assert_eq!(
            c.node_by_name("n2").map(|n| n.requested.milli_cpu),
            Some(500)
        );
        c.remove_node("n2");
        assert_eq!(c.num_nodes(), 0);
        assert_eq!(c.remove_pod("uid-early").as_deref(), Some("n2"));
        assert!(c.by_name.is_empty());
    }

    #[test]
    fn node_updates_report_changes_and_keep_zone_order() {
        let mut c = Cache::default();
        c.set_node(&node("a1", "a"));
        c.set_node(&node("a2", "a"));
        c.set_node(&node("b1", "b"));
        let names: Vec<_> = c.order().iter().map(|s| c.node(*s).name.clone()).collect();
        assert_eq!(names, ["a1", "b1", "a2"]);
        assert_eq!(c.image_num_nodes("nginx:1.27"), 3);
        let mut tainted = node("a2", "b");
        tainted.spec.taints = Some(vec![
            serde_json::from_value(json!({"key": "k", "effect": "NoSchedule"})).expect("taint"),
        ]);
        let change = c.set_node(&tainted);
        assert!(change.taints && change.labels && !change.allocatable && !change.added);
        let names: Vec<_> = c.order().iter().map(|s| c.node(*s).name.clone()).collect();
        assert_eq!(names, ["a1", "b1", "a2"]);
        assert!(c.set_node(&tainted).is_empty());
        c.remove_node("a1");
        assert_eq!(c.image_num_nodes("nginx:1.27"), 2);
    }
}
