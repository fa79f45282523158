//! Watchers that feed the cache and the queue: pods (all but finished ones), nodes,
//! namespaces (labels, for namespaceSelector) and PriorityClasses.
//!
//! Each watcher is kube-runtime's list+watch with back-off. After every (re-)list the
//! objects that were not listed are dropped, so a missed deletion cannot leave a ghost pod
//! holding resources on a node.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::oneshot;

use crate::cache::pod_info::PodInfo;
use crate::objects::{NodeObject, PodObject};
use crate::queue::ClusterEvent;
use crate::scheduler::Shared;

/// Kubernetes' scheduler watches every pod that has not finished.
pub const POD_FIELD_SELECTOR: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// Signals the first complete list once.
struct Synced(Option<oneshot::Sender<()>>);

impl Synced {
    fn done(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A pod event from the watch.
pub fn apply_pod(shared: &Shared, obj: &PodObject) {
    let info = Arc::new(PodInfo::new(obj, &shared.priorities()));
    let uid = info.uid.clone();
    if uid.is_empty() {
        return;
    }
    let queue = &shared.queue;
    if !info.node_name.is_empty() {
        let event = {
            let mut cache = shared.cache();
            let event = match cache.pod(&uid) {
                None => Some(ClusterEvent::AssignedPodAdd),
                // Our own assumption confirmed: it counted already, but pods waiting for a
                // pod like it (affinity, spreading) learn of it now, as from Kubernetes'
                // informer.
                Some(_) if cache.is_assumed(&uid) => Some(ClusterEvent::AssignedPodAdd),
                Some(old)
                    if old.same_scheduling_inputs(&info) && old.terminating == info.terminating =>
                {
                    None
                }
                Some(_) => Some(ClusterEvent::AssignedPodUpdate),
            };
            cache.add_pod(Arc::clone(&info));
            event
        };
        queue.delete(&uid);
        if let Some(e) = event {
            queue.on_event(e);
        }
        return;
    }
    if info.terminating || !shared.responsible_for(&info.scheduler_name) {
        queue.delete(&uid);
        return;
    }
    if shared.cache().has_pod(&uid) {
        // Assumed, binding in flight: keep the newest info but do not queue it again.
        queue.update_existing(info);
    } else {
        queue.add_or_update(info);
    }
}

/// A pod left the watch (deleted, or finished).
pub fn delete_pod(shared: &Shared, uid: &str) {
    let removed = shared.cache().remove_pod(uid);
    shared.queue.delete(uid);
    if removed.is_some() {
        shared.queue.on_event(ClusterEvent::AssignedPodDelete);
    }
}

fn reconcile_pods(shared: &Shared, seen: &HashSet<String>) {
    let cached = shared.cache().pod_uids();
    for uid in cached.iter().chain(shared.queue.uids().iter()) {
        if !seen.contains(uid) && !shared.cache().is_assumed(uid) {
            delete_pod(shared, uid);
        }
    }
}

async fn watch_pods(client: Client, shared: Arc<Shared>, mut synced: Synced) {
    let api: Api<PodObject> = Api::all(client);
    let config = watcher::Config::default().fields(POD_FIELD_SELECTOR);
    let mut seen: Option<HashSet<String>> = None;
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => match event {
                Event::Init => seen = Some(HashSet::new()),
                Event::InitApply(obj) => {
                    if let (Some(s), Some(uid)) = (seen.as_mut(), obj.metadata.uid.clone()) {
                        s.insert(uid);
                    }
                    apply_pod(&shared, &obj);
                }
                Event::InitDone => {
                    if let Some(s) = seen.take() {
                        reconcile_pods(&shared, &s);
                    }
                    synced.done();
                }
                Event::Apply(obj) => apply_pod(&shared, &obj),
                Event::Delete(obj) => {
                    if let Some(uid) = obj.metadata.uid.as_deref() {
                        delete_pod(&shared, uid);
                    }
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "pod watch failed, retrying"),
        }
    }
}

fn apply_node(shared: &Shared, obj: &NodeObject) {
    let change = shared.cache().set_node(obj);
    if change.added {
        shared.queue.on_event(ClusterEvent::NodeAdd);
    } else if !change.is_empty() {
        shared.queue.on_event(ClusterEvent::NodeUpdate(change));
    }
}

fn delete_node(shared: &Shared, name: &str) {
    if shared.cache().remove_node(name) {
        shared.queue.on_event(ClusterEvent::NodeDelete);
    }
}

async fn watch_nodes(client: Client, shared: Arc<Shared>, mut synced: Synced) {
    let api: Api<NodeObject> = Api::all(client);
    let mut seen: Option<HashSet<String>> = None;
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(event)) => match event {
                Event::Init => seen = Some(HashSet::new()),
                Event::InitApply(obj) => {
                    if let (Some(s), Some(name)) = (seen.as_mut(), obj.metadata.name.clone()) {
                        s.insert(name);
                    }
                    apply_node(&shared, &obj);
                }
                Event::InitDone => {
                    if let Some(s) = seen.take() {
                        let names = shared.cache().node_names();
                        for n in names.iter().filter(|n| !s.contains(*n)) {
                            delete_node(&shared, n);
                        }
                    }
                    synced.done();
                }
                Event::Apply(obj) => apply_node(&shared, &obj),
                Event::Delete(obj) => {
                    if let Some(name) = obj.metadata.name.as_deref() {
                        delete_node(&shared, name);
                    }
                }
            },
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "node watch failed, retrying"),
        }
    }
}

async fn watch_namespaces(client: Client, shared: Arc<Shared>, mut synced: Synced) {
    let api: Api<Namespace> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(Event::Apply(ns) | Event::InitApply(ns))) => {
                if let Some(name) = ns.metadata.name.as_deref() {
                    shared
                        .cache()
                        .set_namespace(name, ns.metadata.labels.clone().unwrap_or_default());
                }
            }
            Ok(Some(Event::Delete(ns))) => {
                if let Some(name) = ns.metadata.name.as_deref() {
                    shared.cache().remove_namespace(name);
                }
            }
            Ok(Some(Event::InitDone)) => synced.done(),
            Ok(Some(Event::Init)) => {}
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "namespace watch failed, retrying"),
        }
    }
}

fn write(shared: &Shared) -> std::sync::RwLockWriteGuard<'_, crate::priority::PriorityClasses> {
    shared
        .priorities
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn watch_priority_classes(client: Client, shared: Arc<Shared>, mut synced: Synced) {
    let api: Api<PriorityClass> = Api::all(client);
    let mut listed: Option<Vec<PriorityClass>> = None;
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(Event::Init)) => listed = Some(Vec::new()),
            Ok(Some(Event::InitApply(pc))) => {
                if let Some(l) = listed.as_mut() {
                    l.push(pc);
                }
            }
            Ok(Some(Event::InitDone)) => {
                if let Some(l) = listed.take() {
                    write(&shared).replace(&l);
                }
                synced.done();
            }
            Ok(Some(Event::Apply(pc))) => write(&shared).apply(&pc),
            Ok(Some(Event::Delete(pc))) => {
                if let Some(name) = pc.metadata.name.as_deref() {
                    write(&shared).delete(name);
                }
            }
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "priorityclass watch failed, retrying"),
        }
    }
}

/// The running watchers; aborted on drop.
pub struct Informers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Informers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Informers {
    /// Starts every watcher and returns once each has listed once: PriorityClasses and
    /// namespaces first, since a pod's priority is resolved when it is first seen.
    pub async fn start(client: Client, shared: Arc<Shared>) -> Self {
        let mut tasks = Vec::new();
        let (pc_tx, pc_rx) = oneshot::channel();
        let (ns_tx, ns_rx) = oneshot::channel();
        tasks.push(tokio::spawn(watch_priority_classes(
            client.clone(),
            Arc::clone(&shared),
            Synced(Some(pc_tx)),
        )));
        tasks.push(tokio::spawn(watch_namespaces(
            client.clone(),
            Arc::clone(&shared),
            Synced(Some(ns_tx)),
        )));
        let _ = pc_rx.await;
        let _ = ns_rx.await;
        let (node_tx, node_rx) = oneshot::channel();
        let (pod_tx, pod_rx) = oneshot::channel();
        tasks.push(tokio::spawn(watch_nodes(
            client.clone(),
            Arc::clone(&shared),
            Synced(Some(node_tx)),
        )));
        tasks.push(tokio::spawn(watch_pods(
            client,
            Arc::clone(&shared),
            Synced(Some(pod_tx)),
        )));
        let _ = node_rx.await;
        let _ = pod_rx.await;
        Self { tasks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{Backoff, SchedulingQueue};
    use serde_json::json;
    use std::time::Duration;

    fn shared() -> Shared {
        Shared::new(
            SchedulingQueue::new(Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(10),
            }),
            vec!["default-scheduler".into()],
        )
    }

    fn obj(v: serde_json::Value) -> PodObject {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn pending_pods_queue_and_bound_pods_cache() {
        let s = shared();
        apply_pod(
            &s,
            &obj(
                json!({"metadata": {"name": "p", "namespace": "d", "uid": "u1"}, "spec": {"containers": []}}),
            ),
        );
        assert_eq!(s.queue.lengths(), (1, 0, 0));
        apply_pod(
            &s,
            &obj(
                json!({"metadata": {"name": "p", "namespace": "d", "uid": "u1"}, "spec": {"nodeName": "n1", "containers": []}}),
            ),
        );
        assert_eq!(s.queue.lengths(), (0, 0, 0));
        assert!(s.cache().has_pod("u1"));
        delete_pod(&s, "u1");
        assert!(!s.cache().has_pod("u1"));
    }

    #[test]
    fn other_schedulers_pods_and_terminating_pods_are_ignored() {
        let s = shared();
        apply_pod(
            &s,
            &obj(
                json!({"metadata": {"name": "a", "namespace": "d", "uid": "u1"},
            "spec": {"schedulerName": "someone-else", "containers": []}}),
            ),
        );
        apply_pod(
            &s,
            &obj(
                json!({"metadata": {"name": "b", "namespace": "d", "uid": "u2",
            "deletionTimestamp": "2025-01-01T00:00:00Z"}, "spec": {"containers": []}}),
            ),
        );
        assert_eq!(s.queue.lengths(), (0, 0, 0));
    }
}
