//! The scheduling loop: one pod at a time from the queue, on its own thread.
//!
//! ```text
//!  pop ─► (already assumed/bound? skip) ─► PreFilter ─► nominated node first ─► filter
//!  nodes in parallel from a rotating start until enough fit ─► score ─► best node
//!    ├─ fits: assume in the cache, bind in the background ─► Scheduled event
//!    └─ none: preemption ─► PodScheduled=False + FailedScheduling ─► requeue
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams};
use rayon::prelude::*;
use tokio::runtime::Handle;

use crate::binder::Binder;
use crate::cache::Cache;
use crate::cache::pod_info::PodInfo;
use crate::error::api_message;
use crate::events::{EventRecorder, EventType, Record, pod_reference, truncate_note};
use crate::framework::{
    CycleState, PluginSet, Status, filter_with_nominated, fit_error_message,
    num_feasible_nodes_to_find, score,
};
use crate::preemption::{self, Outcome};
use crate::priority::PriorityClasses;
use crate::queue::{ClusterEvent, Popped, SchedulingQueue};
use crate::status::{
    Nomination, REASON_SCHEDULER_ERROR, REASON_UNSCHEDULABLE, mark_preempted,
    unscheduled_condition, update_pod_status,
};

/// Kubernetes' `ErrNoNodesAvailable`.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";
/// Nodes filtered per parallel round while fewer than this many are still needed.
const MIN_FILTER_BATCH: usize = 32;

/// What the watchers and the scheduling thread share.
pub struct Shared {
    pub cache: Mutex<Cache>,
    pub queue: SchedulingQueue,
    pub priorities: RwLock<PriorityClasses>,
    /// The `spec.schedulerName`s served.
    pub scheduler_names: Vec<String>,
}

impl Shared {
    pub fn new(queue: SchedulingQueue, scheduler_names: Vec<String>) -> Self {
        Self {
            cache: Mutex::new(Cache::default()),
            queue,
            priorities: RwLock::new(PriorityClasses::default()),
            scheduler_names,
        }
    }

    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn priorities(&self) -> std::sync::RwLockReadGuard<'_, PriorityClasses> {
        self.priorities
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this scheduler places pods with `scheduler_name`.
    pub fn responsible_for(&self, scheduler_name: &str) -> bool {
        self.scheduler_names.iter().any(|n| n == scheduler_name)
    }
}

/// Tuning of the algorithm.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// 0: adaptive.
    pub percentage_of_nodes_to_score: u32,
}

/// Why no node was chosen.
#[derive(Debug)]
pub enum Decision {
    /// The chosen node (cache slot).
    Fit(usize),
    /// Every node rejected the pod: slot → why.
    Unschedulable(HashMap<usize, Status>),
    NoNodes,
}

/// Finds the node for one pod: the nominated node if it still fits, else filters from
/// `start` until enough nodes fit, then scores them. Returns the decision and how many
/// nodes were looked at (to rotate the next start).
pub fn decide(
    state: &CycleState,
    cache: &Cache,
    nominated: &HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_node: Option<&str>,
    config: Config,
    start: usize,
) -> (Decision, usize) {
    let order = cache.order();
    let n = order.len();
    if n == 0 {
        return (Decision::NoNodes, 0);
    }
    let none = Vec::new();
    let check = |slot: usize| {
        let node = cache.node(slot);
        let nom = nominated.get(&node.name).unwrap_or(&none);
        filter_with_nominated(state, node, nom, cache)
    };
    if let Some(slot) = nominated_node.and_then(|name| cache.slot_of(name))
        && check(slot).is_none()
    {
        return (Decision::Fit(slot), 0);
    }
    let to_find = num_feasible_nodes_to_find(config.percentage_of_nodes_to_score, n);
    let mut feasible: Vec<usize> = Vec::with_capacity(to_find);
    let mut statuses: HashMap<usize, Status> = HashMap::new();
    let mut processed = 0;
    while processed < n && feasible.len() < to_find {
        let take = (to_find - feasible.len())
            .max(MIN_FILTER_BATCH)
            .min(n - processed);
        let slots: Vec<usize> = (processed..processed + take)
            .map(|i| order[(start + i) % n])
            .collect();
        let results: Vec<Option<Status>> = slots.par_iter().map(|&s| check(s)).collect();
        for (slot, r) in slots.into_iter().zip(results) {
            processed += 1;
            match r {
                None => feasible.push(slot),
                Some(s) => {
                    statuses.insert(slot, s);
                }
            }
            if feasible.len() >= to_find {
                break;
            }
        }
    }
    match feasible.len() {
        0 => (Decision::Unschedulable(statuses), processed),
        1 => (Decision::Fit(feasible[0]), processed),
        _ => {
            let scores = score::score(state, cache, &feasible);
            // The first of the best in trial order: deterministic, and rotating with the
            // start index so equal nodes take turns.
            let mut best = 0;
            for (i, s) in scores.iter().enumerate() {
                if *s > scores[best] {
                    best = i;
                }
            }
            (Decision::Fit(feasible[best]), processed)
        }
    }
}

/// The plugins that rejected the pod on some node.
pub fn rejectors(statuses: &HashMap<usize, Status>) -> PluginSet {
    let mut set = PluginSet::default();
    for s in statuses.values() {
        set.insert(s.plugin);
    }
    set
}

/// The scheduling thread's state.
pub struct Scheduler {
    pub shared: Arc<Shared>,
    pub binder: Binder,
    pub events: EventRecorder,
    pub client: Client,
    pub runtime: Handle,
    pub pool: rayon::ThreadPool,
    pub config: Config,
    next_start: usize,
}

impl Scheduler {
    pub fn new(
        shared: Arc<Shared>,
        client: Client,
        events: EventRecorder,
        binder: Binder,
        runtime: Handle,
        pool: rayon::ThreadPool,
        config: Config,
    ) -> Self {
        Self {
            shared,
            binder,
            events,
            client,
            runtime,
            pool,
            config,
            next_start: 0,
        }
    }

    /// Schedules pods until `stop` is set or the queue closes.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::SeqCst) {
            if let Some(p) = self.shared.queue.pop(Duration::from_millis(200)) {
                self.schedule_one(p);
            }
        }
        tracing::info!("scheduling loop stopped");
    }

    /// One scheduling cycle.
    pub fn schedule_one(&mut self, popped: Popped) {
        let started = Instant::now();
        let pod = Arc::clone(&popped.info);
        let queue = &self.shared.queue;
        let nominated = queue.nominated_snapshot();
        let nominated_node = queue
            .nominated_node(&pod.uid)
            .or_else(|| Some(pod.nominated_node_name.clone()).filter(|n| !n.is_empty()));
        let cache = self.shared.cache();
        if cache.has_pod(&pod.uid) || !queue.contains(&pod.uid) {
            // Assumed or bound already (a late update re-queued it), or deleted meanwhile.
            drop(cache);
            queue.done(&pod.uid);
            return;
        }
        let state = CycleState::new(Arc::clone(&pod), &cache);
        let config = self.config;
        let start = self.next_start;
        let (decision, processed) = self.pool.install(|| {
            decide(
                &state,
                &cache,
                &nominated,
                nominated_node.as_deref(),
                config,
                start,
            )
        });
        let num_nodes = cache.num_nodes();
        if num_nodes > 0 {
            self.next_start = (start + processed) % num_nodes;
        }
        match decision {
            Decision::Fit(slot) => {
                let node = cache.node(slot).name.clone();
                let mut cache = cache;
                cache.assume(Arc::clone(&pod), &node);
                drop(cache);
                queue.clear_nominated(&pod.uid);
                tracing::debug!(pod = %pod.key(), node = %node, attempts = popped.attempts,
                    elapsed_us = started.elapsed().as_micros() as u64, "assumed pod on node");
                self.bind(pod, node, popped.cycle);
            }
            Decision::NoNodes => {
                drop(cache);
                queue.requeue(&pod.uid, PluginSet::default(), popped.cycle);
                self.report_failure(
                    &pod,
                    REASON_SCHEDULER_ERROR,
                    NO_NODES_AVAILABLE.to_string(),
                    Nomination::Keep,
                );
            }
            Decision::Unschedulable(statuses) => {
                let outcome = self
                    .pool
                    .install(|| preemption::preempt(&state, &cache, &statuses, &nominated));
                // Lower-priority pods nominated on the chosen node may no longer fit there.
                let displaced: Vec<Arc<PodInfo>> = match &outcome {
                    Outcome::Nominated { node, .. } => nominated
                        .get(node)
                        .into_iter()
                        .flatten()
                        .filter(|p| p.priority < pod.priority && p.uid != pod.uid)
                        .cloned()
                        .collect(),
                    Outcome::Failed { .. } => Vec::new(),
                };
                drop(cache);
                self.handle_unschedulable(&popped, &statuses, num_nodes, outcome, displaced);
            }
        }
    }

    fn handle_unschedulable(
        &self,
        popped: &Popped,
        statuses: &HashMap<usize, Status>,
        num_nodes: usize,
        outcome: Outcome,
        displaced: Vec<Arc<PodInfo>>,
    ) {
        let pod = &popped.info;
        let queue = &self.shared.queue;
        let post = match &outcome {
            Outcome::Failed { message, .. } => Some(message.as_str()),
            Outcome::Nominated { .. } => None,
        };
        let reasons = statuses
            .values()
            .flat_map(|s| s.reasons.iter().map(|r| r.as_ref()));
        let message = fit_error_message(num_nodes, reasons, None, post);
        let nomination = match &outcome {
            Outcome::Nominated { node, victims } => {
                queue.set_nominated(Arc::clone(pod), node);
                self.preempt_victims(pod, node, victims);
                for d in &displaced {
                    queue.clear_nominated(&d.uid);
                    self.write_status(d, None, Nomination::Clear);
                }
                Nomination::Set(node.clone())
            }
            Outcome::Failed {
                clear_nomination: true,
                ..
            } => {
                queue.clear_nominated(&pod.uid);
                Nomination::Clear
            }
            Outcome::Failed { .. } => Nomination::Keep,
        };
        tracing::debug!(pod = %pod.key(), attempts = popped.attempts, %message, "unschedulable");
        queue.requeue(&pod.uid, rejectors(statuses), popped.cycle);
        self.report_failure(pod, REASON_UNSCHEDULABLE, message, nomination);
    }

    /// Deletes the victims (after marking them `DisruptionTarget`) and records `Preempted`.
    fn preempt_victims(&self, pod: &Arc<PodInfo>, node: &str, victims: &[Arc<PodInfo>]) {
        for v in victims {
            let client = self.client.clone();
            let events = self.events.clone();
            let v = Arc::clone(v);
            let pod = Arc::clone(pod);
            let node = node.to_string();
            self.runtime.spawn(async move {
                if let Err(e) = mark_preempted(client.clone(), &v, &pod.scheduler_name).await {
                    tracing::warn!(victim = %v.key(), error = %e, "could not mark the preemption victim");
                }
                let api: Api<Pod> = Api::namespaced(client, &v.namespace);
                match api.delete(&v.name, &DeleteParams::default()).await {
                    Ok(_) => tracing::info!(victim = %v.key(), preemptor = %pod.key(), node = %node, "preempted pod"),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(victim = %v.key(), error = %e, "could not delete the preemption victim");
                        return;
                    }
                }
                events.record(Record {
                    controller: pod.scheduler_name.clone(),
                    regarding: pod_reference(&v),
                    related: Some(pod_reference(&pod)),
                    type_: EventType::Normal,
                    reason: "Preempted",
                    action: "Preempting",
                    note: format!("Preempted by pod {} on node {node}", pod.uid),
                });
            });
        }
    }

    fn write_status(
        &self,
        pod: &Arc<PodInfo>,
        condition: Option<(&str, &str)>,
        nomination: Nomination,
    ) {
        let client = self.client.clone();
        let pod = Arc::clone(pod);
        let condition = condition.map(|(r, m)| unscheduled_condition(r, m));
        self.runtime.spawn(async move {
            let result = match condition {
                Some(c) => update_pod_status(client, &pod, c, nomination).await,
                None => update_pod_status_nomination_only(client, &pod, nomination).await,
            };
            if let Err(e) = result
                && e.code() != Some(404)
            {
                tracing::warn!(pod = %pod.key(), error = %e, "could not update pod status");
            }
        });
    }

    /// `PodScheduled=False` with `reason` and a `FailedScheduling` event with `message`.
    fn report_failure(
        &self,
        pod: &Arc<PodInfo>,
        reason: &str,
        message: String,
        nomination: Nomination,
    ) {
        let message = truncate_note(&message, crate::events::MAX_NOTE_LENGTH);
        self.write_status(pod, Some((reason, &message)), nomination);
        self.events.record(Record {
            controller: pod.scheduler_name.clone(),
            regarding: pod_reference(pod),
            related: None,
            type_: EventType::Warning,
            reason: "FailedScheduling",
            action: "Scheduling",
            note: message,
        });
    }

    fn bind(&self, pod: Arc<PodInfo>, node: String, cycle: u64) {
        let shared = Arc::clone(&self.shared);
        let events = self.events.clone();
        let client = self.client.clone();
        let runtime = self.runtime.clone();
        self.binder.bind(pod, node, move |pod, node, outcome| match outcome {
            Ok(()) => {
                shared.queue.done(&pod.uid);
                events.record(Record {
                    controller: pod.scheduler_name.clone(),
                    regarding: pod_reference(&pod),
                    related: None,
                    type_: EventType::Normal,
                    reason: "Scheduled",
                    action: "Binding",
                    note: format!(
                        "Successfully assigned {}/{} to {node}",
                        pod.namespace, pod.name
                    ),
                });
            }
            Err(e) => {
                shared.cache().forget(&pod.uid);
                // The forgotten pod's room is free again.
                shared.queue.on_event(ClusterEvent::AssignedPodDelete);
                let code = e.code();
                tracing::info!(pod = %pod.key(), node = %node, error = %e, "binding failed");
                if code == Some(404) || !shared.queue.contains(&pod.uid) {
                    shared.queue.delete(&pod.uid);
                    return;
                }
                shared.queue.requeue(&pod.uid, PluginSet::default(), cycle);
                if code == Some(409) {
                    // Bound by someone else or being deleted: the watch brings the truth,
                    // and a SchedulerError condition on such a pod would be wrong.
                    return;
                }
                let message = match &e {
                    crate::Error::Api { source, .. } => api_message(source),
                    other => other.to_string(),
                };
                let condition = unscheduled_condition(REASON_SCHEDULER_ERROR, &message);
                let pod2 = Arc::clone(&pod);
                runtime.spawn(async move {
                    if let Err(e) = update_pod_status(client, &pod2, condition, Nomination::Keep).await
                        && e.code() != Some(404)
                    {
                        tracing::warn!(pod = %pod2.key(), error = %e, "could not update pod status");
                    }
                });
                events.record(Record {
                    controller: pod.scheduler_name.clone(),
                    regarding: pod_reference(&pod),
                    related: None,
                    type_: EventType::Warning,
                    reason: "FailedScheduling",
                    action: "Scheduling",
                    note: truncate_note(&message, crate::events::MAX_NOTE_LENGTH),
                });
            }
        });
    }
}

/// Clears or sets only the nomination (lower-priority pods displaced by a preemptor).
async fn update_pod_status_nomination_only(
    client: Client,
    pod: &PodInfo,
    nomination: Nomination,
) -> crate::Result<()> {
    let Some(body) = crate::status::status_patch(None, &nomination) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    api.patch_status(
        &pod.name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(body),
    )
    .await
    .map(|_| ())
    .map_err(|e| crate::Error::api("patch status of pod", pod.key(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::objects::NodeObject;
    use serde_json::json;

    fn cluster(n: usize, taint_first: bool) -> Cache {
        let mut c = Cache::default();
        for i in 0..n {
            let mut node = json!({"metadata": {"name": format!("n{i:04}"),
                "labels": {"kubernetes.io/hostname": format!("n{i:04}")}},
                "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
            if taint_first && i == 0 {
                node["spec"] = json!({"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]});
            }
            let obj: NodeObject = serde_json::from_value(node).expect("node");
            c.set_node(&obj);
        }
        c
    }

    fn requesting(name: &str, cpu: &str) -> Arc<PodInfo> {
        Arc::new(pod(
            json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]}}),
        ))
    }

    fn run(c: &Cache, p: Arc<PodInfo>, start: usize) -> (Decision, usize) {
        let state = CycleState::new(p, c);
        let config = Config {
            percentage_of_nodes_to_score: 0,
        };
        decide(&state, c, &HashMap::new(), None, config, start)
    }

    #[test]
    fn pods_spread_over_equal_nodes() {
        let mut c = cluster(3, false);
        let mut used = Vec::new();
        let mut start = 0;
        for i in 0..6 {
            let p = requesting(&format!("p{i}"), "500m");
            let (d, processed) = run(&c, Arc::clone(&p), start);
            start = (start + processed) % 3;
            let Decision::Fit(slot) = d else {
                panic!("no fit: {d:?}")
            };
            let node = c.node(slot).name.clone();
            c.assume(p, &node);
            used.push(node);
        }
        used.sort();
        assert_eq!(used, ["n0000", "n0000", "n0001", "n0001", "n0002", "n0002"]);
    }

    #[test]
    fn failure_message_counts_every_node() {
        let c = cluster(3, true);
        let (d, processed) = run(&c, requesting("big", "5"), 0);
        assert_eq!(processed, 3);
        let Decision::Unschedulable(statuses) = d else {
            panic!("expected failure")
        };
        let reasons = statuses
            .values()
            .flat_map(|s| s.reasons.iter().map(|r| r.as_ref()));
        assert_eq!(
            fit_error_message(3, reasons, None, None),
            "0/3 nodes are available: 1 node(s) had untolerated taint \
             {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."
        );
        let r = rejectors(&statuses);
        assert!(r.contains(crate::framework::Plugin::TaintToleration));
        assert!(r.contains(crate::framework::Plugin::NodeResourcesFit));
    }

    #[test]
    fn large_clusters_stop_after_enough_feasible_nodes() {
        let c = cluster(1000, false);
        let (d, processed) = run(&c, requesting("p", "100m"), 990);
        assert!(matches!(d, Decision::Fit(_)));
        assert_eq!(processed, 420);
        assert!(matches!(
            run(&Cache::default(), requesting("p", "1"), 0).0,
            Decision::NoNodes
        ));
    }

    #[test]
    fn the_nominated_node_is_tried_first() {
        let c = cluster(5, false);
        let state = CycleState::new(requesting("p", "1"), &c);
        let config = Config {
            percentage_of_nodes_to_score: 0,
        };
        let (d, processed) = decide(&state, &c, &HashMap::new(), Some("n0003"), config, 0);
        assert_eq!(processed, 0);
        let Decision::Fit(slot) = d else {
            panic!("expected fit")
        };
        assert_eq!(c.node(slot).name, "n0003");
    }

    #[test]
    fn nominated_pods_reserve_room_for_lower_priority_pods() {
        let c = cluster(1, false);
        let mut big = pod(
            json!({"metadata": {"name": "vip"}, "spec": {"priority": 100, "containers": [
            {"name": "c", "resources": {"requests": {"cpu": "3"}}}]}}),
        );
        big.priority = 100;
        let mut nominated = HashMap::new();
        nominated.insert("n0000".to_string(), vec![Arc::new(big)]);
        let state = CycleState::new(requesting("small", "2"), &c);
        let config = Config {
            percentage_of_nodes_to_score: 0,
        };
        let (d, _) = decide(&state, &c, &nominated, None, config, 0);
        assert!(matches!(d, Decision::Unschedulable(_)), "{d:?}");
    }
}
