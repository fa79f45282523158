//! The dependency graph: every object the monitors observed, by uid, and for every uid that
//! some object names in `metadata.ownerReferences`, the objects naming it (its dependents).
//!
//! The graph is pure bookkeeping: [`Graph::observe`] and [`Graph::forget`] apply one watch
//! event and answer which nodes must be looked at because of it, with the reason. The
//! dependents index is kept by owner uid whether or not the owner itself was observed, so
//! an owner that never appears (deleted while nobody watched) still has its dependents
//! found, and an owner observed later finds the dependents that came first.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::discovery::ApiResource;

/// The finalizer with which `propagationPolicy=Orphan` hands an owner to the garbage collector.
pub const ORPHAN: &str = "orphan";
/// The finalizer with which `propagationPolicy=Foreground` hands an owner to the garbage collector.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Where an object is and which one it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Identity {
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name,
            self.uid
        )
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → the core group, "").
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// What the garbage collector keeps of one observed object.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub identity: Identity,
    /// The resource it was observed through (how to read, patch and delete it).
    pub resource: Arc<ApiResource>,
    pub resource_version: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
    /// `deletionTimestamp` is set.
    pub being_deleted: bool,
}

impl Node {
    /// The node of an object observed through `resource`; `None` without a name or uid.
    pub fn from_meta(meta: &ObjectMeta, resource: Arc<ApiResource>) -> Option<Node> {
        let name = meta.name.clone().filter(|n| !n.is_empty())?;
        let uid = meta.uid.clone().filter(|u| !u.is_empty())?;
        Some(Node {
            identity: Identity {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
                namespace: meta.namespace.clone().filter(|n| !n.is_empty()),
                name,
                uid,
            },
            resource,
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
        })
    }

    pub fn uid(&self) -> &str {
        &self.identity.uid
    }

    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Deleted with `propagationPolicy=Orphan`: its dependents are to be released.
    pub fn orphaning(&self) -> bool {
        self.being_deleted && self.has_finalizer(ORPHAN)
    }

    /// Deleted with `propagationPolicy=Foreground`: it waits for its blocking dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.has_finalizer(FOREGROUND)
    }

    /// Whether this object's reference to `owner_uid` has `blockOwnerDeletion: true`.
    pub fn blocks(&self, owner_uid: &str) -> bool {
        self.owners
            .iter()
            .any(|r| r.uid == owner_uid && r.block_owner_deletion == Some(true))
    }
}

/// Whether `owner` is the object `reference` (held by `dependent`) points at: same uid,
/// group, kind and name, and, for a namespaced owner, the dependent's namespace (owner
/// references never cross namespaces; cluster-scoped owners can be named from anywhere).
pub fn refers_to(dependent: &Identity, reference: &OwnerReference, owner: &Identity) -> bool {
    owner.uid == reference.uid
        && owner.name == reference.name
        && owner.kind == reference.kind
        && owner.group() == group_of(&reference.api_version)
        && match &owner.namespace {
            None => true,
            Some(ns) => dependent.namespace.as_ref() == Some(ns),
        }
}

/// Why a node is to be looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It names an owner the graph cannot vouch for (not observed, other coordinates).
    OwnerUnverified,
    /// Its owner references changed.
    OwnersChanged,
    /// An owner of it was deleted.
    OwnerDeleted,
    /// An owner of it waits for its dependents to be deleted.
    OwnerDeletingDependents,
    /// It was deleted with `propagationPolicy=Orphan`.
    Orphaning,
    /// It was deleted with `propagationPolicy=Foreground`.
    DeletingDependents,
    /// A dependent of this foreground-deleted owner went away or stopped blocking it.
    DependentReleased,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::OwnerUnverified => "owner not observed",
            Why::OwnersChanged => "owner references changed",
            Why::OwnerDeleted => "owner deleted",
            Why::OwnerDeletingDependents => "owner deleting dependents",
            Why::Orphaning => "deleted with orphan propagation",
            Why::DeletingDependents => "deleted with foreground propagation",
            Why::DependentReleased => "a blocking dependent went away",
        }
    }
}

/// Nodes to look at (by uid) and why.
pub type Wake = Vec<(String, Why)>;

/// Owners and dependents, by uid.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid → uids of the observed objects that name it.
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.nodes.contains_key(uid)
    }

    pub fn uids(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }

    /// The observed objects that name `owner_uid` as an owner.
    pub fn dependents(&self, owner_uid: &str) -> Vec<&Node> {
        self.dependents
            .get(owner_uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// The observed owner `reference` of `dependent` points at, if the graph has it at the
    /// coordinates the reference gives.
    pub fn owner(&self, dependent: &Identity, reference: &OwnerReference) -> Option<&Node> {
        self.nodes
            .get(&reference.uid)
            .filter(|o| refers_to(dependent, reference, &o.identity))
    }

    /// The uids of the nodes observed through `resource`.
    pub fn uids_of(&self, resource: &ApiResource) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource.group == resource.group && n.resource.plural == resource.plural)
            .map(|n| n.identity.uid.clone())
            .collect()
    }

    /// Records an added or updated object; answers which nodes to look at because of it.
    pub fn observe(&mut self, node: Node) -> Wake {
        let uid = node.identity.uid.clone();
        let old = self.nodes.remove(&uid);
        let mut wake = Wake::new();
        let old_owners = old.as_ref().map(|o| o.owners.as_slice()).unwrap_or(&[]);

        // Owners this object stopped naming, or stopped blocking, may be waiting for it.
        for before in old_owners {
            let now = node.owners.iter().find(|r| r.uid == before.uid);
            if now.is_none() {
                self.unlink(&before.uid, &uid);
            }
            let released = match now {
                None => true,
                Some(r) => {
                    before.block_owner_deletion == Some(true)
                        && r.block_owner_deletion != Some(true)
                }
            };
            if released
                && self
                    .nodes
                    .get(&before.uid)
                    .is_some_and(Node::deleting_dependents)
            {
                wake.push((before.uid.clone(), Why::DependentReleased));
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(uid.clone());
        }

        // The object itself: when new, if it names owners the graph cannot vouch for or
        // owners waiting for their dependents; later, whenever its references change.
        let why = if old.is_none() {
            node.owners
                .iter()
                .find_map(|r| match self.owner(&node.identity, r) {
                    None => Some(Why::OwnerUnverified),
                    Some(o) if o.deleting_dependents() => Some(Why::OwnerDeletingDependents),
                    Some(_) => None,
                })
        } else if same_references(old_owners, &node.owners) {
            None
        } else {
            Some(Why::OwnersChanged)
        };
        if let Some(w) = why {
            wake.push((uid.clone(), w));
        }

        // Transitions into the two deletions the garbage collector finishes.
        let was = |f: fn(&Node) -> bool| old.as_ref().is_some_and(f);
        if node.orphaning() && !was(Node::orphaning) {
            wake.push((uid.clone(), Why::Orphaning));
        }
        if node.deleting_dependents() && !was(Node::deleting_dependents) {
            wake.push((uid.clone(), Why::DeletingDependents));
            for d in self.dependents.get(&uid).into_iter().flatten() {
                wake.push((d.clone(), Why::OwnerDeletingDependents));
            }
        }
        self.nodes.insert(uid, node);
        wake
    }

    /// Records a deleted object; answers which nodes to look at because of it: its
    /// dependents, and its owners that wait for their dependents to go.
    pub fn forget(&mut self, uid: &str) -> Wake {
        let Some(node) = self.nodes.remove(uid) else {
            return Wake::new();
        };
        let mut wake = Wake::new();
        for r in &node.owners {
            self.unlink(&r.uid, uid);
            if self
                .nodes
                .get(&r.uid)
                .is_some_and(Node::deleting_dependents)
            {
                wake.push((r.uid.clone(), Why::DependentReleased));
            }
        }
        for d in self.dependents.get(uid).into_iter().flatten() {
            wake.push((d.clone(), Why::OwnerDeleted));
        }
        wake
    }

    fn unlink(&mut self, owner_uid: &str, dependent_uid: &str) {
        if let Some(set) = self.dependents.get_mut(owner_uid) {
            set.remove(dependent_uid);
            if set.is_empty() {
                self.dependents.remove(owner_uid);
            }
        }
    }
}

/// Whether two reference lists name the same owners with the same blocking.
fn same_references(a: &[OwnerReference], b: &[OwnerReference]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                y.uid == x.uid
                    && y.api_version == x.api_version
                    && y.kind == x.kind
                    && y.name == x.name
                    && y.block_owner_deletion == x.block_owner_deletion
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn cm() -> Arc<ApiResource> {
        Arc::new(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        })
    }

    pub(crate) fn owner_ref(name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: name.into(),
            uid: uid.into(),
            block_owner_deletion: block.then_some(true),
            controller: None,
        }
    }

    fn node(name: &str, uid: &str, owners: Vec<OwnerReference>) -> Node {
        let meta = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            resource_version: Some("1".into()),
            owner_references: Some(owners),
            ..ObjectMeta::default()
        };
        Node::from_meta(&meta, cm()).expect("node")
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.being_deleted = true;
        n.finalizers.push(finalizer.into());
        n
    }

    fn uids(w: &Wake) -> Vec<(&str, Why)> {
        w.iter().map(|(u, w)| (u.as_str(), *w)).collect()
    }

    #[test]
    fn from_meta_needs_name_and_uid() {
        let meta = ObjectMeta {
            name: Some("a".into()),
            deletion_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
            ..ObjectMeta::default()
        };
        assert!(Node::from_meta(&meta, cm()).is_none());
        let meta = ObjectMeta {
            uid: Some("u".into()),
            ..meta
        };
        let n = Node::from_meta(&meta, cm()).expect("node");
        assert!(n.being_deleted);
        assert_eq!(n.identity.namespace, None);
        assert_eq!(
            n.identity.to_string(),
            "[v1/ConfigMap, namespace: , name: a, uid: u]"
        );
    }

    #[test]
    fn a_dependent_of_an_unobserved_owner_is_checked_once() {
        let mut g = Graph::default();
        let d = node("d", "d1", vec![owner_ref("o", "o1", false)]);
        assert_eq!(
            uids(&g.observe(d.clone())),
            vec![("d1", Why::OwnerUnverified)]
        );
        // An update that leaves the references alone does not check again.
        let mut again = d;
        again.resource_version = "2".into();
        assert!(g.observe(again).is_empty());
        assert_eq!(g.dependents("o1").len(), 1);
    }

    #[test]
    fn a_dependent_of_an_observed_owner_needs_nothing() {
        let mut g = Graph::default();
        assert!(g.observe(node("o", "o1", vec![])).is_empty());
        assert!(
            g.observe(node("d", "d1", vec![owner_ref("o", "o1", true)]))
                .is_empty()
        );
    }

    #[test]
    fn owners_elsewhere_or_with_other_coordinates_are_unverified() {
        let mut g = Graph::default();
        let mut other_ns = node("o", "o1", vec![]);
        other_ns.identity.namespace = Some("elsewhere".into());
        g.observe(other_ns);
        let w = g.observe(node("d", "d1", vec![owner_ref("o", "o1", false)]));
        assert_eq!(uids(&w), vec![("d1", Why::OwnerUnverified)]);
        // The same uid under another name is not the owner either.
        let w = g.observe(node("e", "e1", vec![owner_ref("renamed", "o1", false)]));
        assert_eq!(uids(&w), vec![("e1", Why::OwnerUnverified)]);
        // Cluster-scoped owners can be named from any namespace.
        let mut cluster = node("c", "c1", vec![]);
        cluster.identity.namespace = None;
        g.observe(cluster);
        assert!(
            g.observe(node("f", "f1", vec![owner_ref("c", "c1", false)]))
                .is_empty()
        );
    }

    #[test]
    fn deleting_an_owner_wakes_its_dependents() {
        let mut g = Graph::default();
        g.observe(node("o", "o1", vec![]));
        g.observe(node("a", "a1", vec![owner_ref("o", "o1", false)]));
        g.observe(node("b", "b1", vec![owner_ref("o", "o1", false)]));
        let w = g.forget("o1");
        assert_eq!(
            uids(&w),
            vec![("a1", Why::OwnerDeleted), ("b1", Why::OwnerDeleted)]
        );
        assert!(g.get("o1").is_none());
        // The index still knows who named the gone owner.
        assert_eq!(g.dependents("o1").len(), 2);
        g.forget("a1");
        g.forget("b1");
        assert!(g.dependents.is_empty());
        assert!(g.forget("nothing").is_empty());
    }

    #[test]
    fn foreground_deletion_wakes_the_owner_and_all_its_dependents() {
        let mut g = Graph::default();
        g.observe(node("o", "o1", vec![]));
        g.observe(node("a", "a1", vec![owner_ref("o", "o1", true)]));
        let w = g.observe(deleting(node("o", "o1", vec![]), FOREGROUND));
        assert_eq!(
            uids(&w),
            vec![
                ("o1", Why::DeletingDependents),
                ("a1", Why::OwnerDeletingDependents)
            ]
        );
        // Only the transition wakes them.
        assert!(
            g.observe(deleting(node("o", "o1", vec![]), FOREGROUND))
                .is_empty()
        );
        // A blocking dependent that goes wakes the waiting owner.
        assert_eq!(uids(&g.forget("a1")), vec![("o1", Why::DependentReleased)]);
    }

    #[test]
    fn a_dependent_that_stops_blocking_wakes_the_waiting_owner() {
        let mut g = Graph::default();
        g.observe(deleting(node("o", "o1", vec![]), FOREGROUND));
        let w = g.observe(node("a", "a1", vec![owner_ref("o", "o1", true)]));
        assert_eq!(uids(&w), vec![("a1", Why::OwnerDeletingDependents)]);
        let w = g.observe(node("a", "a1", vec![owner_ref("o", "o1", false)]));
        assert_eq!(
            uids(&w),
            vec![("o1", Why::DependentReleased), ("a1", Why::OwnersChanged)]
        );
        let w = g.observe(node("a", "a1", vec![]));
        assert_eq!(
            uids(&w),
            vec![("o1", Why::DependentReleased), ("a1", Why::OwnersChanged)]
        );
        assert!(g.dependents("o1").is_empty());
    }

    #[test]
    fn orphan_deletion_wakes_the_owner_once() {
        let mut g = Graph::default();
        g.observe(node("o", "o1", vec![]));
        let w = g.observe(deleting(node("o", "o1", vec![]), ORPHAN));
        assert_eq!(uids(&w), vec![("o1", Why::Orphaning)]);
        assert!(
            g.observe(deleting(node("o", "o1", vec![]), ORPHAN))
                .is_empty()
        );
    }

    #[test]
    fn changed_references_wake_the_dependent() {
        let mut g = Graph::default();
        g.observe(node("o", "o1", vec![]));
        g.observe(node("p", "p1", vec![]));
        g.observe(node("d", "d1", vec![owner_ref("o", "o1", false)]));
        let w = g.observe(node(
            "d",
            "d1",
            vec![owner_ref("o", "o1", false), owner_ref("p", "p1", false)],
        ));
        assert_eq!(uids(&w), vec![("d1", Why::OwnersChanged)]);
        assert_eq!(g.dependents("p1").len(), 1);
    }

    #[test]
    fn uids_of_selects_one_resource() {
        let mut g = Graph::default();
        g.observe(node("a", "a1", vec![]));
        let mut pod = node("p", "p1", vec![]);
        pod.resource = Arc::new(ApiResource {
            kind: "Pod".into(),
            plural: "pods".into(),
            ..(*cm()).clone()
        });
        g.observe(pod);
        assert_eq!(g.uids_of(&cm()), vec!["a1".to_string()]);
        assert_eq!(g.len(), 2);
    }
}
