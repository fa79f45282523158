//! Filter plugins, run per node in Kubernetes' default order; the first rejection wins.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::cache::node_info::NodeInfo;
use crate::framework::{CycleState, Plugin, Status};

/// Runs every filter on `node`: NodeUnschedulable, NodeName, TaintToleration, NodeAffinity,
/// NodePorts, NodeResourcesFit, PodTopologySpread, InterPodAffinity (the default profile's
/// order). `None` means the node fits.
pub fn run(state: &CycleState, node: &NodeInfo) -> Option<Status> {
    let pod = &state.pod;
    let Some(data) = node.node.as_ref() else {
        return Some(Status::unresolvable(Plugin::NodeName, "node(s) not found"));
    };
    node_unschedulable::filter(pod, data)
        .or_else(|| node_name::filter(pod, &node.name))
        .or_else(|| taint_toleration::filter(pod, data))
        .or_else(|| node_affinity::filter(pod, data, &node.name))
        .or_else(|| node_ports::filter(pod, node))
        .or_else(|| node_resources_fit::filter(pod, node))
        .or_else(|| state.spread.filter(pod, data))
        .or_else(|| {
            state
                .affinity
                .filter_with(pod, data, state.namespace_labels.as_ref())
        })
}
