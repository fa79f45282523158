//! The scheduling framework: plugin identities, filter statuses, the per-pod cycle state,
//! and the `FailedScheduling` message in Kubernetes' exact form.
//!
//! Plugins are plain functions over [`CycleState`] and a [`NodeInfo`]; the order and the
//! score weights are Kubernetes' default profile (see [`filter::run`] and [`score::WEIGHTS`]).

pub mod filter;
pub mod score;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cache::Cache;
use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::PodInfo;
use crate::labels::Labels;

/// The plugins of Kubernetes' default profile that kadm implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    PodTopologySpread,
    InterPodAffinity,
    NodeResourcesBalancedAllocation,
    ImageLocality,
    DefaultPreemption,
}

impl Plugin {
    pub const fn name(self) -> &'static str {
        match self {
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
            Plugin::PodTopologySpread => "PodTopologySpread",
            Plugin::InterPodAffinity => "InterPodAffinity",
            Plugin::NodeResourcesBalancedAllocation => "NodeResourcesBalancedAllocation",
            Plugin::ImageLocality => "ImageLocality",
            Plugin::DefaultPreemption => "DefaultPreemption",
        }
    }

    /// The plugin's bit in a [`PluginSet`].
    pub const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of plugins as a bit mask (the plugins that rejected a pod, or that care about an
/// event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PluginSet(pub u16);

impl PluginSet {
    pub const fn of(plugins: &[Plugin]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < plugins.len() {
            bits |= plugins[i].bit();
            i += 1;
        }
        Self(bits)
    }

    pub fn insert(&mut self, p: Plugin) {
        self.0 |= p.bit();
    }

    pub fn contains(self, p: Plugin) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn intersects(self, other: PluginSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Kubernetes' status codes for a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Might fit after other pods go away (preemption may help).
    Unschedulable,
    /// Cannot fit whatever is removed (preemption will not help).
    UnschedulableAndUnresolvable,
}

/// Why one node was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub plugin: Plugin,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    pub fn new(code: Code, plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            plugin,
            reasons: vec![reason.into()],
        }
    }

    pub fn unschedulable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Unschedulable, plugin, reason)
    }

    pub fn unresolvable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, plugin, reason)
    }
}

/// `FitError.Error()`: `0/N nodes are available: <count> <reason>, …. <post-filter message>`.
///
/// Reasons are counted over the nodes (one node may give several), rendered as
/// `"<count> <reason>"` and sorted as strings — so `10 …` sorts before `2 …`, exactly as Go's
/// `sort.Strings` orders them. The post-filter (preemption) message follows after a space.
pub fn fit_error_message<'a>(
    num_all_nodes: usize,
    reasons: impl IntoIterator<Item = &'a str>,
    pre_filter_msg: Option<&str>,
    post_filter_msg: Option<&str>,
) -> String {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    match pre_filter_msg {
        Some(pre) => msg.push_str(&format!(" {pre}.")),
        None => {
            let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
            for r in reasons {
                *histogram.entry(r).or_default() += 1;
            }
            let mut parts: Vec<String> = histogram
                .into_iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            parts.sort();
            if !parts.is_empty() {
                msg.push_str(&format!(" {}.", parts.join(", ")));
            }
        }
    }
    if let Some(post) = post_filter_msg.filter(|p| !p.is_empty()) {
        msg.push(' ');
        msg.push_str(post);
    }
    msg
}

/// What a scheduling cycle knows about the pod beyond its [`PodInfo`]: the PreFilter
/// results that every node's filter reads.
#[derive(Debug, Clone)]
pub struct CycleState {
    pub pod: Arc<PodInfo>,
    /// Labels of the pod's namespace (namespaceSelector matching).
    pub namespace_labels: Option<Labels>,
    pub affinity: filter::inter_pod_affinity::PreFilterState,
    pub spread: filter::pod_topology_spread::PreFilterState,
}

impl CycleState {
    /// Runs the PreFilter computations over the whole cluster once.
    pub fn new(pod: Arc<PodInfo>, cache: &Cache) -> Self {
        let namespace_labels = cache.namespace_labels(&pod.namespace).cloned();
        let affinity = filter::inter_pod_affinity::PreFilterState::compute(&pod, cache);
        let spread = filter::pod_topology_spread::PreFilterState::compute(&pod, cache);
        Self {
            pod,
            namespace_labels,
            affinity,
            spread,
        }
    }

    /// PreFilter extension AddPod: `added` now counts on `node` (nominated pods, preemption
    /// reprieves).
    pub fn add_pod(&mut self, added: &PodInfo, node: &NodeInfo, cache: &Cache) {
        self.affinity
            .update_with_pod(&self.pod, added, node, cache, 1);
        self.spread.update_with_pod(&self.pod, added, node, 1);
    }

    /// PreFilter extension RemovePod.
    pub fn remove_pod(&mut self, removed: &PodInfo, node: &NodeInfo, cache: &Cache) {
        self.affinity
            .update_with_pod(&self.pod, removed, node, cache, -1);
        self.spread.update_with_pod(&self.pod, removed, node, -1);
    }
}

/// Runs the filters with the nominated pods of `node` that weigh at least as much as the
/// pod counted in (`RunFilterPluginsWithNominatedPods`): first with them, and — when that
/// passes — again without them, since a nominated pod must not be what satisfies an
/// affinity.
pub fn filter_with_nominated(
    state: &CycleState,
    node: &NodeInfo,
    nominated: &[Arc<PodInfo>],
    cache: &Cache,
) -> Option<Status> {
    let pod = &state.pod;
    let relevant: Vec<&Arc<PodInfo>> = nominated
        .iter()
        .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
        .collect();
    if relevant.is_empty() {
        return filter::run(state, node);
    }
    let mut with = node.clone();
    let mut with_state = state.clone();
    for p in relevant {
        with.add_pod(Arc::clone(p));
        with_state.add_pod(p, &with, cache);
    }
    if let Some(s) = filter::run(&with_state, &with) {
        return Some(s);
    }
    filter::run(state, node)
}

/// `numFeasibleNodesToFind`: how many feasible nodes to find before scoring.
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
    const MIN_FEASIBLE_NODES_PERCENTAGE: i64 = 5;
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = i64::from(percentage);
    if pct == 0 {
        pct = 50 - (num_all_nodes as i64) / 125;
        if pct < MIN_FEASIBLE_NODES_PERCENTAGE {
            pct = MIN_FEASIBLE_NODES_PERCENTAGE;
        }
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_matches_kubernetes_wording_and_sorting() {
        let taint = "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }";
        let msg = fit_error_message(
            3,
            ["Insufficient cpu", taint, taint],
            None,
            Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
            ),
        );
        assert_eq!(
            msg,
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: \
             3 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn reasons_sort_as_strings_like_go() {
        let mut reasons = vec!["Insufficient memory"; 10];
        reasons.extend(vec!["Insufficient cpu"; 2]);
        let msg = fit_error_message(12, reasons, None, None);
        assert_eq!(
            msg,
            "0/12 nodes are available: 10 Insufficient memory, 2 Insufficient cpu."
        );
        assert_eq!(
            fit_error_message(0, [], None, None),
            "0/0 nodes are available:"
        );
        assert_eq!(
            fit_error_message(2, ["x"], Some("pre failed"), None),
            "0/2 nodes are available: pre failed."
        );
    }

    #[test]
    fn feasible_nodes_to_find_is_adaptive() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 100), 100);
        // 1000 nodes: 50 - 8 = 42%.
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        // 5000 nodes: 50 - 40 = 10%.
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        // 6000 nodes: 50 - 48 = 2% → at least 5%.
        assert_eq!(num_feasible_nodes_to_find(0, 6000), 300);
        assert_eq!(num_feasible_nodes_to_find(10, 500), 100);
        assert_eq!(num_feasible_nodes_to_find(100, 500), 500);
        assert_eq!(num_feasible_nodes_to_find(30, 1000), 300);
    }

    #[test]
    fn plugin_sets_are_bit_masks() {
        let s = PluginSet::of(&[Plugin::NodeResourcesFit, Plugin::NodePorts]);
        assert!(s.contains(Plugin::NodePorts));
        assert!(!s.contains(Plugin::NodeAffinity));
        assert!(s.intersects(PluginSet::of(&[Plugin::NodePorts])));
        assert!(!PluginSet::default().intersects(s));
    }
}
