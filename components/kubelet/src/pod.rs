//! The pods bound to this node: one watch (`spec.nodeName=<node>`), one worker task per
//! pod, and a relist of the runtime every second that wakes the worker of any pod whose
//! containers changed state (Kubernetes' PLEG).
//!
//! ```text
//!  watch pods ──► worker(uid): loop { sync ─► patch pods/status if changed ─► wait for
//!      │                              a pod update, a relist change, a retry time, or 10 s }
//!      │          deleting: sync stops + removes everything ─► status ─► delete (grace 0,
//!      │                    uid precondition) ─► worker ends
//!      ├─ pod gone from the API ─► its worker stops and removes what is left
//!      └─ first list done ─► sandboxes of pods the API does not know are removed
//! ```
//!
//! Restart-safe: a new kubelet's workers find their pods' sandboxes and containers by the
//! `io.kubernetes.pod.uid` label and keep them; nothing running is recreated.

pub mod backoff;
pub mod cgroups;
pub mod env;
pub mod images;
pub mod labels;
pub mod spec;
pub mod state;
pub mod status;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kadm_base::process::Shutdown;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::cri::{Runtime, api};
use crate::node::NodeView;
use state::PodRuntimeState;
use sync::Syncer;

/// A worker looks at its pod at least this often.
const RESYNC: Duration = Duration::from_secs(10);
/// Back-off after a failed sync or status write.
const ERROR_RETRY: Duration = Duration::from_secs(2);

struct Worker {
    pod: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Runs the node's pods.
pub struct PodManager<R: Runtime, C: Clock> {
    client: Client,
    syncer: Arc<Syncer<R, C>>,
    node: watch::Receiver<NodeView>,
    node_name: String,
    relist_period: Duration,
}

impl<R: Runtime, C: Clock> PodManager<R, C> {
    pub fn new(
        client: Client,
        syncer: Arc<Syncer<R, C>>,
        node: watch::Receiver<NodeView>,
        node_name: &str,
        relist_period: Duration,
    ) -> Self {
        Self {
            client,
            syncer,
            node,
            node_name: node_name.to_string(),
            relist_period,
        }
    }

    /// Runs until shutdown; running containers are left running.
    pub async fn run(self, shutdown: Shutdown) -> crate::Result<()> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut events = watcher(
            api,
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.node_name)),
        )
        .default_backoff()
        .boxed();
        let mut workers: HashMap<String, Worker> = HashMap::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut listing: HashSet<String> = HashSet::new();
        let mut relist = tokio::time::interval(self.relist_period);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut fingerprints: HashMap<String, Vec<(String, i32)>> = HashMap::new();

        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                Some(uid) = done_rx.recv() => {
                    if workers.get(&uid).is_some_and(|w| w.task.is_finished()) {
                        workers.remove(&uid);
                    }
                }
                _ = relist.tick() => {
                    match relist_runtime(self.syncer.runtime.as_ref()).await {
                        Ok(now) => {
                            for (uid, fp) in &now {
                                if fingerprints.get(uid) != Some(fp)
                                    && let Some(w) = workers.get(uid)
                                {
                                    w.wake.notify_one();
                                }
                            }
                            fingerprints = now;
                        }
                        Err(e) => tracing::debug!(error = %e, "relist failed"),
                    }
                }
                ev = events.next() => match ev {
                    None => break,
                    Some(Err(e)) => tracing::warn!(error = %e, "pod watch error"),
                    Some(Ok(watcher::Event::Init)) => listing.clear(),
                    Some(Ok(watcher::Event::InitApply(pod))) => {
                        listing.insert(pod.metadata.uid.clone().unwrap_or_default());
                        self.update(&mut workers, pod, &done_tx, &shutdown);
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        // Pods that vanished while the watch was down.
                        let gone: Vec<String> = workers.keys().filter(|u| !listing.contains(*u)).cloned().collect();
                        for uid in gone {
                            if let Some(w) = workers.get(&uid) {
                                let _ = w.pod.send(None);
                            }
                        }
                        self.remove_orphans(&listing, &workers).await;
                    }
                    Some(Ok(watcher::Event::Apply(pod))) => {
                        self.update(&mut workers, pod, &done_tx, &shutdown);
                    }
                    Some(Ok(watcher::Event::Delete(pod))) => {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        if let Some(w) = workers.get(&uid) {
                            let _ = w.pod.send(None);
                        }
                    }
                }
            }
        }
        for (_, w) in workers {
            w.task.abort();
        }
        Ok(())
    }

    fn update(
        &self,
        workers: &mut HashMap<String, Worker>,
        pod: Pod,
        done: &mpsc::UnboundedSender<String>,
        shutdown: &Shutdown,
    ) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let pod = Arc::new(pod);
        if let Some(w) = workers.get(&uid)
            && !w.task.is_finished()
        {
            let _ = w.pod.send(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(worker(
            uid.clone(),
            Arc::clone(&self.syncer),
            self.client.clone(),
            rx,
            Arc::clone(&wake),
            self.node.clone(),
            done.clone(),
            shutdown.clone(),
        ));
        workers.insert(
            uid,
            Worker {
                pod: tx,
                wake,
                task,
            },
        );
    }

    /// Removes sandboxes and containers whose pod the API does not have (deleted while
    /// the kubelet was down).
    async fn remove_orphans(&self, known: &HashSet<String>, workers: &HashMap<String, Worker>) {
        let runtime = self.syncer.runtime.as_ref();
        let Ok(sandboxes) = runtime.list_pod_sandboxes(None).await else {
            return;
        };
        let orphans: HashSet<String> = sandboxes
            .iter()
            .filter_map(|s| s.labels.get(labels::POD_UID))
            .filter(|u| !known.contains(*u) && !workers.contains_key(*u))
            .cloned()
            .collect();
        for uid in orphans {
            tracing::info!(pod_uid = %uid, "removing the sandbox of a pod the apiserver no longer has");
            match PodRuntimeState::gather(runtime, &uid).await {
                Ok(state) => {
                    for c in state.running() {
                        let _ = runtime.stop_container(&c.id, 2).await;
                    }
                    if let Err(e) = self.syncer.remove_all(&state).await {
                        tracing::warn!(pod_uid = %uid, error = %e, "cannot remove an orphaned pod");
                    } else if self.syncer.settings.cgroup_driver
                        == crate::options::CgroupDriver::Cgroupfs
                    {
                        // The pod's QoS class is unknown without the pod: try each.
                        let root = self.syncer.settings.cgroup_root.trim_end_matches('/');
                        for qos in ["", "burstable/", "besteffort/"] {
                            cgroups::remove_pod_cgroup(&format!("{root}/kubepods/{qos}pod{uid}"));
                        }
                    }
                }
                Err(e) => tracing::warn!(pod_uid = %uid, error = %e, "cannot read an orphaned pod"),
            }
        }
    }
}

/// Every pod's containers and sandboxes with their states, by pod uid.
async fn relist_runtime<R: Runtime>(
    runtime: &R,
) -> crate::Result<HashMap<String, Vec<(String, i32)>>> {
    let mut out: HashMap<String, Vec<(String, i32)>> = HashMap::new();
    for c in runtime.list_containers(None).await? {
        if let Some(uid) = c.labels.get(labels::POD_UID) {
            out.entry(uid.clone()).or_default().push((c.id, c.state));
        }
    }
    for s in runtime.list_pod_sandboxes(None).await? {
        if let Some(uid) = s.labels.get(labels::POD_UID) {
            out.entry(uid.clone()).or_default().push((
                s.id,
                s.state + 100 * (api::PodSandboxState::SandboxReady as i32 + 1),
            ));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

fn status_json(pod: &Pod) -> Value {
    pod.status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

#[allow(clippy::too_many_arguments)]
async fn worker<R: Runtime, C: Clock>(
    uid: String,
    syncer: Arc<Syncer<R, C>>,
    client: Client,
    mut pod_rx: watch::Receiver<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    node_rx: watch::Receiver<NodeView>,
    done: mpsc::UnboundedSender<String>,
    shutdown: Shutdown,
) {
    let mut last_known: Option<Arc<Pod>> = None;
    let mut written: Option<Value> = None;
    loop {
        let current = pod_rx.borrow_and_update().clone();
        let node = node_rx.borrow().clone();
        let mut next = RESYNC;
        match current {
            None => {
                // Deleted from the API (forcefully, or while we were away): stop and
                // remove whatever is left.
                if let Some(pod) = &last_known {
                    match PodRuntimeState::gather(syncer.runtime.as_ref(), &uid).await {
                        Ok(state) => {
                            let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
                            let r = async {
                                syncer.kill_pod(pod, &state, grace).await?;
                                let stopped =
                                    PodRuntimeState::gather(syncer.runtime.as_ref(), &uid).await?;
                                syncer.remove_pod(pod, &stopped).await
                            };
                            if let Err(e) = r.await {
                                tracing::warn!(pod_uid = %uid, error = %e, "cannot remove a deleted pod's containers");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(pod_uid = %uid, error = %e, "cannot read a deleted pod's containers")
                        }
                    }
                }
                syncer.forget(&uid);
                break;
            }
            Some(pod) => {
                last_known = Some(Arc::clone(&pod));
                let name = pod.metadata.name.clone().unwrap_or_default();
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                match syncer.sync(&pod, &node).await {
                    Ok(out) => {
                        let new = serde_json::to_value(&out.status).unwrap_or(Value::Null);
                        let old = status_json(&pod);
                        if new != old && written.as_ref() != Some(&new) {
                            let patch = json!({
                                "metadata": {"uid": uid},
                                "status": crate::patch::two_way(&old, &new, crate::patch::status_merge_keys),
                            });
                            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                            match api
                                .patch_status(
                                    &name,
                                    &PatchParams::default(),
                                    &Patch::Strategic(patch),
                                )
                                .await
                            {
                                Ok(_) => written = Some(new),
                                // Gone (or replaced by a pod of the same name) meanwhile: the
                                // watch brings the deletion next.
                                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                                    tracing::debug!(pod = %format!("{ns}/{name}"), code = s.code, "pod status not written: the pod is gone");
                                }
                                Err(e) => {
                                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "cannot update the pod status");
                                    next = ERROR_RETRY;
                                }
                            }
                        }
                        if out.removed {
                            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                            let dp = DeleteParams {
                                grace_period_seconds: Some(0),
                                preconditions: Some(Preconditions {
                                    uid: Some(uid.clone()),
                                    resource_version: None,
                                }),
                                ..DeleteParams::default()
                            };
                            match api.delete(&name, &dp).await {
                                Ok(_) => {}
                                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                                Err(e) => {
                                    tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "cannot finish the pod's deletion");
                                    next = ERROR_RETRY;
                                }
                            }
                        }
                        if let Some(r) = out.retry_after {
                            next = next.min(r.max(Duration::from_millis(100)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "pod sync failed");
                        next = ERROR_RETRY;
                    }
                }
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            r = pod_rx.changed() => {
                if r.is_err() {
                    return;
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(next) => {}
        }
    }
    let _ = done.send(uid);
}
