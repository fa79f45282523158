//! The graph behind one lock, shared by the monitors (writers) and the reconciles (readers),
//! and how it feeds kube-runtime's applier: every node is mirrored as a [`GraphNode`] into
//! the applier's store (once the monitors have synced), and the nodes a change wakes are
//! sent to the applier's queue, which de-duplicates them, runs at most one reconcile per
//! node at a time, and carries the requeues and back-offs.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::discovery::ApiResource;
use kube::runtime::controller::{ReconcileReason, ReconcileRequest};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;

use super::graph::{Graph, Node, Wake, Why};

/// The applier's object: one node of the graph, named by its uid. Reconciles read the
/// node's current state from the graph.
#[derive(Debug, Clone)]
pub struct GraphNode {
    metadata: ObjectMeta,
}

impl GraphNode {
    pub fn new(uid: &str) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(uid.to_string()),
                ..ObjectMeta::default()
            },
        }
    }

    pub fn uid(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

impl Resource for GraphNode {
    type DynamicType = ();
    type Scope = k8s_openapi::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "DependencyGraphNode".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "garbagecollector.kadm.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "dependencygraphnodes".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A request for the applier to look at one node.
pub type Request = ReconcileRequest<GraphNode>;

struct Inner {
    graph: Graph,
    store: Writer<GraphNode>,
    /// The monitors have synced and the store holds every node.
    ready: bool,
}

/// The graph, its store mirror, and the applier's queue.
pub struct Shared {
    inner: Mutex<Inner>,
    queue: UnboundedSender<Request>,
}

impl Shared {
    pub fn new(store: Writer<GraphNode>, queue: UnboundedSender<Request>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                graph: Graph::default(),
                store,
                ready: false,
            }),
            queue,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the graph.
    pub fn read<T>(&self, f: impl FnOnce(&Graph) -> T) -> T {
        f(&self.lock().graph)
    }

    /// Asks for `uid` to be looked at.
    pub fn enqueue(&self, uid: &str, why: Why) {
        let request = Request {
            obj_ref: ObjectRef::new(uid),
            reason: ReconcileReason::Custom {
                reason: why.as_str().to_string(),
            },
        };
        // Closed only during shutdown, when nothing is looked at any more.
        let _ = self.queue.unbounded_send(request);
    }

    fn wake(&self, wake: Wake) {
        for (uid, why) in wake {
            self.enqueue(&uid, why);
        }
    }

    /// Records an added or updated object.
    pub fn observe(&self, node: Node) {
        let wake = {
            let mut inner = self.lock();
            let uid = node.identity.uid.clone();
            let new = !inner.graph.contains(&uid);
            let wake = inner.graph.observe(node);
            if new && inner.ready {
                inner
                    .store
                    .apply_watcher_event(&watcher::Event::Apply(GraphNode::new(&uid)));
            }
            wake
        };
        self.wake(wake);
    }

    /// Records a deleted object.
    pub fn forget(&self, uid: &str) {
        let wake = {
            let mut inner = self.lock();
            let wake = inner.graph.forget(uid);
            if inner.ready {
                inner
                    .store
                    .apply_watcher_event(&watcher::Event::Delete(GraphNode::new(uid)));
            }
            wake
        };
        self.wake(wake);
    }

    /// After a relist of `resource`: forgets its objects that were not `seen` (deleted while
    /// the watch was down). Returns how many.
    pub fn forget_unseen(&self, resource: &ApiResource, seen: &HashSet<String>) -> usize {
        let gone: Vec<String> = self.read(|g| {
            g.uids_of(resource)
                .into_iter()
                .filter(|u| !seen.contains(u))
                .collect()
        });
        for uid in &gone {
            self.forget(uid);
        }
        gone.len()
    }

    /// Fills the applier's store with every node and releases the applier.
    pub fn mark_ready(&self) {
        let mut inner = self.lock();
        if inner.ready {
            return;
        }
        let Inner { graph, store, .. } = &mut *inner;
        store.apply_watcher_event(&watcher::Event::Init);
        for uid in graph.uids() {
            store.apply_watcher_event(&watcher::Event::InitApply(GraphNode::new(uid)));
        }
        store.apply_watcher_event(&watcher::Event::InitDone);
        inner.ready = true;
    }

    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use kube::runtime::reflector::store;
    use std::sync::Arc;

    fn cm(name: &str, uid: &str, owner: Option<&str>) -> Node {
        let meta = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: owner.map(|o| {
                vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: o.into(),
                        uid: o.into(),
                        ..Default::default()
                    },
                ]
            }),
            ..ObjectMeta::default()
        };
        let r = Arc::new(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        });
        Node::from_meta(&meta, r).expect("node")
    }

    #[test]
    fn the_store_mirrors_the_graph_once_ready_and_wakes_reach_the_queue() {
        let (reader, writer) = store::store::<GraphNode>();
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let s = Shared::new(writer, tx);
        s.observe(cm("o", "o", None));
        s.observe(cm("d", "d", Some("o")));
        assert!(reader.is_empty(), "nothing is served before the sync");
        s.mark_ready();
        assert!(s.is_ready());
        assert_eq!(reader.len(), 2);
        assert!(reader.get(&ObjectRef::new("d")).is_some());

        s.forget("o");
        assert!(reader.get(&ObjectRef::new("o")).is_none());
        let woken = futures::executor::block_on(rx.next()).expect("a request");
        assert_eq!(woken.obj_ref.name, "d");

        s.observe(cm("n", "n", None));
        assert!(reader.get(&ObjectRef::new("n")).is_some());
        let gone = s.forget_unseen(
            &cm("x", "x", None).resource,
            &HashSet::from(["n".to_string()]),
        );
        assert_eq!(gone, 1, "d was not seen in the relist");
        assert_eq!(reader.len(), 1);
    }
}
