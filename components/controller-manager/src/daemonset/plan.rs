//! What one DaemonSet sync does, decided without I/O from the nodes and the DaemonSet's
//! pods grouped by node:
//!
//! * [`manage`] (`podsShouldBeOnNode` per node): a node that should run the daemon and has
//!   no pod gets one; failed and succeeded pods are deleted (and replaced next sync); extra
//!   pods on a node go, oldest kept (with surge, an old and a new pod may briefly share a
//!   node until the new one is available); a node that must not keep the daemon loses its
//!   pods; unbound pods pinned to nodes that no longer exist are deleted.
//! * [`rolling_update`]: with `maxSurge` 0, old pods are deleted while fewer than
//!   `maxUnavailable` nodes lack an available pod (unavailable old pods always); with
//!   `maxSurge`, new pods are started next to available old ones on up to `maxSurge` nodes
//!   and each old pod goes once its replacement is available.
//! * [`status`]: the counts `kubectl rollout status ds/…` reads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::eligibility::should_run;
use super::pod::TEMPLATE_GENERATION_LABEL;
use crate::history::REVISION_LABEL;
use crate::intstr;
use crate::workload::pods::{PHASE_FAILED, PHASE_SUCCEEDED, is_available, is_ready, phase};

/// The DaemonSet pods by the node they are for.
pub type ByNode<'a> = BTreeMap<String, Vec<&'a Pod>>;

/// What the controller knows of the DaemonSet for planning.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The pod template's spec (eligibility is judged on it).
    pub template: &'a PodSpec,
    /// The current revision's hash.
    pub hash: &'a str,
    /// The template generation, for pods labelled before revisions existed.
    pub generation: Option<i64>,
    pub min_ready_seconds: i32,
    pub now: Timestamp,
}

impl Target<'_> {
    /// `IsPodUpdated`: labelled with the current hash (or template generation).
    pub fn is_updated(&self, pod: &Pod) -> bool {
        let labels = pod.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        let hash_ok = !self.hash.is_empty() && label(REVISION_LABEL) == Some(self.hash);
        let gen_ok = self
            .generation
            .is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(g.to_string().as_str()));
        hash_ok || gen_ok
    }

    fn available(&self, pod: &Pod) -> bool {
        is_available(pod, self.min_ready_seconds, self.now)
    }
}

/// Why a pod is deleted; failed and succeeded pods get a warning/normal event first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Failed {
        node: String,
    },
    Succeeded {
        node: String,
    },
    /// Excess, misplaced or replaced.
    Other,
}

/// Pods to create (by node) and to delete (by name).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub create_on: Vec<String>,
    pub delete: Vec<(String, Removal)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `podByCreationTimestampAndPhase`: bound pods first, then oldest, then by name.
fn sort_oldest_first(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let bound = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        };
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        bound(b)
            .cmp(&bound(a))
            .then_with(|| created(a).cmp(&created(b)))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// `manage`: the pods to create and delete so every eligible node runs one daemon pod.
pub fn manage(t: &Target<'_>, nodes: &[Node], by_node: &ByNode<'_>, surge: bool) -> Plan {
    let mut plan = Plan::default();
    for node in nodes {
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let (run, keep) = should_run(t.template, node);
        let pods = by_node.get(&node_name).map(Vec::as_slice).unwrap_or(&[]);
        if run && pods.is_empty() {
            plan.create_on.push(node_name);
        } else if keep {
            let mut running: Vec<&Pod> = Vec::new();
            for pod in pods.iter().copied().filter(|p| !deleting(p)) {
                match phase(pod) {
                    PHASE_FAILED => plan.delete.push((
                        name(pod),
                        Removal::Failed {
                            node: node_name.clone(),
                        },
                    )),
                    PHASE_SUCCEEDED => plan.delete.push((
                        name(pod),
                        Removal::Succeeded {
                            node: node_name.clone(),
                        },
                    )),
                    _ => running.push(pod),
                }
            }
            sort_oldest_first(&mut running);
            if !surge {
                plan.delete
                    .extend(running.iter().skip(1).map(|p| (name(p), Removal::Other)));
                continue;
            }
            if running.is_empty() {
                if run {
                    plan.create_on.push(node_name);
                }
                continue;
            }
            // Surging: keep the oldest new and the oldest old pod; the old one goes once it
            // is not ready or the new one is available.
            let (mut newest, mut oldest): (Option<&Pod>, Option<&Pod>) = (None, None);
            for pod in running {
                let slot = if t.is_updated(pod) {
                    &mut newest
                } else {
                    &mut oldest
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    plan.delete.push((name(pod), Removal::Other));
                }
            }
            if let (Some(new), Some(old)) = (newest, oldest)
                && (!is_ready(old) || t.available(new))
            {
                plan.delete.push((name(old), Removal::Other));
            }
        } else {
            plan.delete.extend(
                pods.iter()
                    .filter(|p| !deleting(p))
                    .map(|p| (name(p), Removal::Other)),
            );
        }
    }
    // Unbound pods for nodes that are gone never get scheduled; nothing else removes them.
    for (node_name, pods) in by_node {
        if nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(node_name.as_str()))
        {
            continue;
        }
        plan.delete.extend(
            pods.iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_none_or(str::is_empty)
                })
                .map(|p| (name(p), Removal::Other)),
        );
    }
    plan
}

/// `findUpdatedPodsOnNode`: the node's live new and old pod; `None` when there is more than
/// one of either (the manage step cleans that up first).
fn new_and_old<'a>(t: &Target<'_>, pods: &[&'a Pod]) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().copied().filter(|p| !deleting(p)) {
        let slot = if t.is_updated(pod) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(pod).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// The rolling-update budget: `maxSurge` and `maxUnavailable` scaled to the desired count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_surge: usize,
    pub max_unavailable: usize,
}

/// `rollingUpdate`: the old pods to replace now within the budget.
pub fn rolling_update(
    t: &Target<'_>,
    nodes: &[Node],
    by_node: &ByNode<'_>,
    budget: Budget,
) -> Plan {
    let mut plan = Plan::default();
    if budget.max_surge == 0 {
        let mut unavailable = 0usize;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            let Some((new, old)) = new_and_old(t, pods) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !t.available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !t.available(old) {
                        replace.push(name(old));
                        unavailable += 1;
                    } else if unavailable < budget.max_unavailable {
                        candidates.push(name(old));
                    }
                }
            }
        }
        let room = budget
            .max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        plan.delete = replace
            .into_iter()
            .chain(candidates.into_iter().take(room))
            .map(|n| (n, Removal::Other))
            .collect();
        return plan;
    }
    let node_named = |n: &str| nodes.iter().find(|x| x.metadata.name.as_deref() == Some(n));
    let runs_here = |n: &str| node_named(n).is_some_and(|node| should_run(t.template, node).0);
    let desired = nodes.iter().filter(|n| should_run(t.template, n).0).count();
    let mut surging = 0usize;
    let mut available = 0usize;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let mut leaving = Vec::new();
    for (node, pods) in by_node {
        let Some((new, old)) = new_and_old(t, pods) else {
            surging += 1;
            continue;
        };
        if let Some(p) = old.or(new)
            && t.available(p)
        {
            available += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) if !t.available(old) => {
                if runs_here(node) {
                    allowed.push(node.clone());
                } else {
                    plan.delete.push((name(old), Removal::Other));
                }
            }
            (None, Some(old)) => {
                if !runs_here(node) {
                    leaving.push(name(old));
                } else if surging < budget.max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if t.available(new) {
                    plan.delete.push((name(old), Removal::Other));
                } else {
                    surging += 1;
                }
            }
        }
    }
    // Pods on nodes the DaemonSet left go only while enough pods elsewhere are available.
    let deletable = available.saturating_sub(desired).min(leaving.len());
    plan.delete.extend(
        leaving
            .into_iter()
            .take(deletable)
            .map(|n| (n, Removal::Other)),
    );
    let room = budget
        .max_surge
        .saturating_sub(surging)
        .min(candidates.len());
    plan.create_on = allowed
        .into_iter()
        .chain(candidates.into_iter().take(room))
        .collect();
    plan
}

/// The DaemonSet's status counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `updateDaemonSetStatus`: per node, the oldest daemon pod decides readiness and
/// availability.
pub fn status(t: &Target<'_>, nodes: &[Node], by_node: &ByNode<'_>) -> Counts {
    let mut c = Counts::default();
    for node in nodes {
        let (run, _) = should_run(t.template, node);
        let pods = node
            .metadata
            .name
            .as_ref()
            .and_then(|n| by_node.get(n))
            .filter(|p| !p.is_empty());
        match (run, pods) {
            (true, None) => c.desired += 1,
            (true, Some(pods)) => {
                c.desired += 1;
                c.current += 1;
                let mut pods = pods.clone();
                sort_oldest_first(&mut pods);
                let pod = pods[0];
                if is_ready(pod) {
                    c.ready += 1;
                    if t.available(pod) {
                        c.available += 1;
                    }
                }
                if t.is_updated(pod) {
                    c.updated += 1;
                }
            }
            (false, Some(_)) => c.misscheduled += 1,
            (false, None) => {}
        }
    }
    c.unavailable = c.desired - c.available;
    c
}

/// The budget of a RollingUpdate DaemonSet for `desired` nodes (`updatedDesiredNodeCounts`):
/// both values round up, and a budget of nothing at all becomes one unavailable pod.
pub fn budget(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: usize,
) -> Budget {
    let total = count(desired);
    let scaled = |v: Option<&IntOrString>| {
        v.and_then(|v| intstr::scaled(v, total, true))
            .map_or(0, |n| usize::try_from(n.max(0)).unwrap_or(0))
    };
    let max_surge = scaled(max_surge);
    let mut max_unavailable = scaled(max_unavailable);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Budget {
        max_surge,
        max_unavailable,
    }
}

#[cfg(test)]
mod tests;
