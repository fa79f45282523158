//! The node IPAM controller: gives every node its own slice of the cluster's pod network
//! (`spec.podCIDR`, `spec.podCIDRs`), as Kubernetes' range allocator does.
//!
//! ```text
//!  first list of nodes ──► every CIDR nodes already have is marked taken
//!                          (after a restart nothing is handed out twice)
//!                      ──► nodes without one are queued
//!  node added          ──► queued ──► next free CIDR per --cluster-cidr ──► patch the node
//!                                     none left: event CIDRNotAvailable, wait for a release
//!  node deleted        ──► its CIDRs are free again; waiting nodes are queued
//! ```
//!
//! This is a watch loop rather than a per-object reconcile: allocation needs the deletions
//! (to free CIDRs) and the complete first list (before handing anything out), which
//! kube-runtime's `Controller` hides.

pub mod cidrset;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::{Error, Result, api_code};
use crate::workload::events::{Events, Kind};
use cidrset::CidrSet;

/// The component name on the events (Kubernetes' allocator records as `cidrAllocator`).
const EVENT_SOURCE: &str = "cidrAllocator";
/// Attempts at writing one node's CIDRs before waiting for the node to change.
const MAX_ATTEMPTS: u32 = 8;
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// `--cluster-cidr` and the node mask sizes.
#[derive(Debug, Clone)]
pub struct Config {
    /// One CIDR, or an IPv4 and an IPv6 one (dual-stack).
    pub cluster_cidrs: Vec<String>,
    pub node_mask_ipv4: u8,
    pub node_mask_ipv6: u8,
    /// Node writes in flight at once.
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_cidrs: vec!["10.244.0.0/16".to_string()],
            node_mask_ipv4: 24,
            node_mask_ipv6: 64,
            concurrency: 8,
        }
    }
}

impl Config {
    /// The allocators, one per cluster CIDR; a bad flag is an error naming it.
    pub fn cidr_sets(&self) -> Result<Vec<CidrSet>> {
        let cidrs: Vec<&str> = self
            .cluster_cidrs
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect();
        if cidrs.is_empty() || cidrs.len() > 2 {
            return Err(Error::ClusterCidr {
                value: self.cluster_cidrs.join(","),
                reason: "give one CIDR, or one IPv4 and one IPv6 CIDR".into(),
            });
        }
        let mut sets = Vec::new();
        for c in &cidrs {
            let parsed = cidrset::Cidr::parse(c).map_err(|e| Error::ClusterCidr {
                value: (*c).to_string(),
                reason: e.to_string(),
            })?;
            let mask = if parsed.bits == 32 {
                self.node_mask_ipv4
            } else {
                self.node_mask_ipv6
            };
            sets.push(CidrSet::new(c, mask).map_err(|e| Error::ClusterCidr {
                value: (*c).to_string(),
                reason: e.to_string(),
            })?);
        }
        if sets.len() == 2 && sets[0].is_ipv4() == sets[1].is_ipv4() {
            return Err(Error::ClusterCidr {
                value: cidrs.join(","),
                reason: "a dual-stack --cluster-cidr needs one IPv4 and one IPv6 CIDR".into(),
            });
        }
        Ok(sets)
    }
}

struct State {
    client: Client,
    events: Events,
    sets: Mutex<Vec<CidrSet>>,
    /// CIDRs counted as taken, per node (ours in flight, or seen on the node).
    assigned: Mutex<HashMap<String, Vec<String>>>,
    /// Existing nodes and their uids.
    known: Mutex<HashMap<String, String>>,
    /// Nodes that found no free CIDR; queued again when one is released.
    waiting: Mutex<HashSet<String>>,
    pending: Mutex<HashSet<String>>,
    attempts: Mutex<HashMap<String, u32>>,
    queue: mpsc::UnboundedSender<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The CIDRs a node has: `spec.podCIDRs`, else `spec.podCIDR`.
pub fn node_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    match spec.pod_cidrs.as_ref().filter(|c| !c.is_empty()) {
        Some(cidrs) => cidrs.clone(),
        None => spec
            .pod_cidr
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect(),
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let sets = match config.cidr_sets() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(controller = crate::controllers::NODE_IPAM, error = %e, "node IPAM cannot start; nodes get no pod CIDRs");
            shutdown.await;
            return;
        }
    };
    tracing::info!(
        controller = crate::controllers::NODE_IPAM,
        cluster_cidrs = ?config.cluster_cidrs,
        "starting controller"
    );
    let (tx, mut rx) = mpsc::unbounded_channel();
    let state = Arc::new(State {
        events: Events::start(client.clone(), EVENT_SOURCE),
        client,
        sets: Mutex::new(sets),
        assigned: Mutex::default(),
        known: Mutex::default(),
        waiting: Mutex::default(),
        pending: Mutex::default(),
        attempts: Mutex::default(),
        queue: tx,
    });
    let for_workers = state.clone();
    let workers = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).for_each_concurrent(
        config.concurrency.max(1),
        move |name| {
            let state = for_workers.clone();
            async move { state.assign(name).await }
        },
    );
    tokio::select! {
        () = shutdown => {}
        () = workers => {}
        () = state.watch_nodes() => {}
    }
    tracing::info!(
        controller = crate::controllers::NODE_IPAM,
        "controller stopped"
    );
}

fn node_ref(name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.to_string()),
        uid,
        ..ObjectReference::default()
    }
}

impl State {
    fn queue(&self, name: &str) {
        if lock(&self.pending).insert(name.to_string()) {
            let _ = self.queue.send(name.to_string());
        }
    }

    fn queue_later(self: &Arc<Self>, name: &str, delay: Duration) {
        let me = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.queue(&name);
        });
    }

    /// Follows the nodes: the first complete list rebuilds what is taken, then every
    /// change is applied as it comes. A re-list (after a long disconnect) reconciles.
    async fn watch_nodes(self: &Arc<Self>) {
        let api = Api::<Node>::all(self.client.clone());
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listing: Option<Vec<Node>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing = Some(Vec::new()),
                Ok(watcher::Event::InitApply(node)) => {
                    listing.get_or_insert_with(Vec::new).push(node);
                }
                Ok(watcher::Event::InitDone) => self.resync(listing.take().unwrap_or_default()),
                Ok(watcher::Event::Apply(node)) => self.observe(&node),
                Ok(watcher::Event::Delete(node)) => self.forget(&node.name_any()),
                Err(e) => tracing::warn!(error = %e, "node watch trouble, retrying"),
            }
        }
    }

    /// A complete list: forget nodes that are gone, mark every existing CIDR taken, and
    /// only then queue the nodes that need one.
    fn resync(&self, nodes: Vec<Node>) {
        let names: HashSet<String> = nodes.iter().map(ResourceExt::name_any).collect();
        let gone: Vec<String> = lock(&self.known)
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.forget(&name);
        }
        let mut missing = Vec::new();
        for node in &nodes {
            if !self.record(node) {
                missing.push(node.name_any());
            }
        }
        let taken: usize = lock(&self.sets).iter().map(CidrSet::allocated).sum();
        tracing::info!(
            nodes = nodes.len(),
            taken,
            to_assign = missing.len(),
            "node CIDR allocations rebuilt from the nodes"
        );
        for name in missing {
            self.queue(&name);
        }
    }

    fn observe(&self, node: &Node) {
        if !self.record(node) {
            self.queue(&node.name_any());
        }
    }

    /// Notes the node and the CIDRs it shows; false when it still needs CIDRs.
    fn record(&self, node: &Node) -> bool {
        let name = node.name_any();
        lock(&self.known).insert(name.clone(), node.uid().unwrap_or_default());
        let cidrs = node_cidrs(node);
        if cidrs.is_empty() {
            // Ours may be on the way to the node already.
            return lock(&self.assigned).contains_key(&name);
        }
        let mut assigned = lock(&self.assigned);
        if assigned.get(&name) == Some(&cidrs) {
            return true;
        }
        let mut sets = lock(&self.sets);
        if let Some(old) = assigned.remove(&name) {
            release(&mut sets, &name, &old);
        }
        for cidr in &cidrs {
            match sets.iter_mut().find(|s| s.same_family(cidr)) {
                Some(set) => {
                    if let Err(e) = set.occupy(cidr) {
                        tracing::warn!(node = %name, cidr = %cidr, error = %e, "node has a pod CIDR outside the cluster CIDR; left alone");
                    }
                }
                None => {
                    tracing::warn!(node = %name, cidr = %cidr, "node has a pod CIDR of a family the cluster CIDR does not have")
                }
            }
        }
        assigned.insert(name.clone(), cidrs);
        lock(&self.waiting).remove(&name);
        true
    }

    /// A deleted node: its CIDRs are free again, and nodes waiting for one get a chance.
    fn forget(&self, name: &str) {
        lock(&self.known).remove(name);
        lock(&self.waiting).remove(name);
        lock(&self.attempts).remove(name);
        let Some(cidrs) = lock(&self.assigned).remove(name) else {
            return;
        };
        release(&mut lock(&self.sets), name, &cidrs);
        tracing::info!(node = name, cidrs = ?cidrs, "node deleted; its pod CIDRs are free");
        let waiting: Vec<String> = lock(&self.waiting).iter().cloned().collect();
        for w in waiting {
            self.queue(&w);
        }
    }

    /// Gives a node one CIDR per cluster CIDR and writes them to it.
    async fn assign(self: Arc<Self>, name: String) {
        lock(&self.pending).remove(&name);
        let Some(uid) = lock(&self.known).get(&name).cloned() else {
            return;
        };
        if lock(&self.assigned).contains_key(&name) {
            return;
        }
        let Some(cidrs) = self.allocate(&name) else {
            if lock(&self.waiting).insert(name.clone()) {
                tracing::warn!(node = %name, "no pod CIDR left in the cluster CIDR");
                self.events.record(
                    node_ref(&name, Some(uid)),
                    Kind::Warning,
                    "CIDRNotAvailable",
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                );
            }
            return;
        };
        match self.write(&name, &cidrs).await {
            Ok(()) => {
                lock(&self.attempts).remove(&name);
                tracing::info!(node = %name, cidrs = ?cidrs, "pod CIDRs assigned");
            }
            Err(e) => {
                if let Some(mine) = lock(&self.assigned).remove(&name) {
                    release(&mut lock(&self.sets), &name, &mine);
                }
                if api_code_of(&e) == Some(404) {
                    return;
                }
                let attempts = {
                    let mut a = lock(&self.attempts);
                    let n = a.entry(name.clone()).or_default();
                    *n += 1;
                    *n
                };
                if attempts >= MAX_ATTEMPTS {
                    lock(&self.attempts).remove(&name);
                    tracing::error!(node = %name, error = %e, attempts, "could not write the node's pod CIDRs; waiting for the node to change");
                    self.events.record(
                        node_ref(&name, Some(uid)),
                        Kind::Warning,
                        "CIDRAssignmentFailed",
                        "CIDRAssignmentFailed",
                        format!("Node {name} status is now: CIDRAssignmentFailed"),
                    );
                } else {
                    let delay = crate::backoff::exponential(attempts, RETRY_BASE, RETRY_MAX);
                    tracing::warn!(node = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "could not write the node's pod CIDRs");
                    self.queue_later(&name, delay);
                }
            }
        }
    }

    /// Takes the next free CIDR of every set (all or none), recorded for the node.
    fn allocate(&self, name: &str) -> Option<Vec<String>> {
        let mut assigned = lock(&self.assigned);
        let mut sets = lock(&self.sets);
        let mut cidrs = Vec::with_capacity(sets.len());
        for set in sets.iter_mut() {
            match set.allocate_next() {
                Some(c) => cidrs.push(c.to_string()),
                None => {
                    release(&mut sets, name, &cidrs);
                    return None;
                }
            }
        }
        assigned.insert(name.to_string(), cidrs.clone());
        Some(cidrs)
    }

    /// Writes the CIDRs unless the node got some meanwhile (then those are recorded).
    async fn write(&self, name: &str, cidrs: &[String]) -> Result<()> {
        let api = Api::<Node>::all(self.client.clone());
        let node_error = |action: &'static str| {
            let object = format!("node {name}");
            move |source| Error::NodeController {
                action,
                object,
                source: Box::new(source),
            }
        };
        let node = api.get(name).await.map_err(node_error("get"))?;
        if !node_cidrs(&node).is_empty() {
            if let Some(mine) = lock(&self.assigned).remove(name) {
                release(&mut lock(&self.sets), name, &mine);
            }
            self.record(&node);
            return Ok(());
        }
        let patch = json!({"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(node_error("set the pod CIDRs of"))?;
        Ok(())
    }
}

fn api_code_of(e: &Error) -> Option<u16> {
    match e {
        Error::NodeController { source, .. } => api_code(source),
        _ => None,
    }
}

fn release(sets: &mut [CidrSet], name: &str, cidrs: &[String]) {
    for cidr in cidrs {
        if let Some(set) = sets.iter_mut().find(|s| s.same_family(cidr))
            && let Err(e) = set.release(cidr)
        {
            tracing::debug!(node = name, cidr = %cidr, error = %e, "pod CIDR was not ours to release");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_builds_single_and_dual_stack_sets() {
        let single = Config::default().cidr_sets().expect("default");
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].capacity(), 256);
        let dual = Config {
            cluster_cidrs: vec!["10.244.0.0/16".into(), "fd00:10:244::/56".into()],
            ..Config::default()
        }
        .cidr_sets()
        .expect("dual");
        assert_eq!(dual.len(), 2);
        let bad = Config {
            cluster_cidrs: vec!["10.244.0.0/16".into(), "10.245.0.0/16".into()],
            ..Config::default()
        }
        .cidr_sets()
        .expect_err("two v4");
        assert!(bad.to_string().contains("one IPv4 and one IPv6"), "{bad}");
        let garbage = Config {
            cluster_cidrs: vec!["10.244.0.0".into()],
            ..Config::default()
        }
        .cidr_sets()
        .expect_err("no prefix");
        assert!(garbage.to_string().contains("10.244.0.0"), "{garbage}");
    }

    #[test]
    fn node_cidrs_prefers_the_list() {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24", "fd00::/64"]},
        }))
        .expect("node");
        assert_eq!(node_cidrs(&n), vec!["10.0.0.0/24", "fd00::/64"]);
        let old: Node = serde_json::from_value(json!({
            "metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0/24"},
        }))
        .expect("node");
        assert_eq!(node_cidrs(&old), vec!["10.0.0.0/24"]);
    }
}
