//! The scheduling queue: an active heap ordered by priority then creation time, a back-off
//! heap, and the unschedulable pods, which move back when a cluster event could help them.
//!
//! ```text
//!   new / updated pod ──► active ──pop──► in flight ──bound──► (gone)
//!                           ▲                 │
//!                           │ back-off over   ├─ rejected by plugins P ──► unschedulable[P]
//!                         backoff ◄───────────┤                                 │
//!                           ▲                 └─ error, or an event arrived     │
//!                           │                    during the attempt ──► backoff │
//!                           └── event relevant to P (node added, pod deleted …) ┘
//!                               or 5 minutes in unschedulable
//! ```
//!
//! Pods wait on events, not on a timer: an unschedulable pod is tried again when a node is
//! added or changes, or a pod goes away, in a way one of the plugins that rejected it cares
//! about. The five-minute flush is Kubernetes' safety net, not the mechanism.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::cache::NodeChange;
use crate::cache::pod_info::PodInfo;
use crate::framework::{Plugin, PluginSet};

/// Kubernetes' `podMaxInUnschedulablePodsDuration`.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);
/// The longest a `pop` sleeps before looking at the back-off heap again.
const IDLE_WAKEUP: Duration = Duration::from_secs(1);
/// How often unschedulable pods are checked against [`MAX_IN_UNSCHEDULABLE`]
/// (Kubernetes' `flushUnschedulablePodsLeftover` period).
const LEFTOVER_FLUSH_PERIOD: Duration = Duration::from_secs(30);

/// A change in the cluster that may make pending pods schedulable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    NodeAdd,
    NodeUpdate(NodeChange),
    NodeDelete,
    /// A pod bound to a node appeared (created bound, or bound by another scheduler).
    AssignedPodAdd,
    /// A bound pod changed labels or requests, or started terminating.
    AssignedPodUpdate,
    AssignedPodDelete,
}

impl ClusterEvent {
    /// The plugins whose rejections this event may resolve (their registered events).
    pub fn plugins(self) -> PluginSet {
        use Plugin::*;
        match self {
            ClusterEvent::NodeAdd => PluginSet::of(&[
                NodeUnschedulable,
                NodeName,
                TaintToleration,
                NodeAffinity,
                NodePorts,
                NodeResourcesFit,
                PodTopologySpread,
                InterPodAffinity,
            ]),
            ClusterEvent::NodeUpdate(c) => {
                let mut s = PluginSet::default();
                if c.allocatable {
                    s.insert(NodeResourcesFit);
                }
                if c.labels {
                    s.insert(NodeAffinity);
                    s.insert(PodTopologySpread);
                    s.insert(InterPodAffinity);
                }
                if c.taints {
                    s.insert(TaintToleration);
                    s.insert(NodeUnschedulable);
                    s.insert(PodTopologySpread);
                }
                if c.unschedulable {
                    s.insert(NodeUnschedulable);
                }
                s
            }
            ClusterEvent::NodeDelete => PluginSet::of(&[PodTopologySpread]),
            ClusterEvent::AssignedPodAdd => PluginSet::of(&[InterPodAffinity, PodTopologySpread]),
            ClusterEvent::AssignedPodUpdate => {
                PluginSet::of(&[InterPodAffinity, PodTopologySpread, NodeResourcesFit])
            }
            ClusterEvent::AssignedPodDelete => PluginSet::of(&[
                NodeResourcesFit,
                NodePorts,
                InterPodAffinity,
                PodTopologySpread,
            ]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
    /// Held back by `spec.schedulingGates`.
    Gated,
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    attempts: u32,
    /// Identifies the live heap entry; stale ones are skipped when popped.
    seq: u64,
    place: Where,
    backoff_until: Option<Instant>,
    unschedulable_since: Instant,
    rejectors: PluginSet,
}

/// The active heap's order: higher priority first, then the older pod, then arrival.
#[derive(Debug, PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    created: i64,
    seq: u64,
    uid: String,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.created.cmp(&self.created))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveKey>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// Unschedulable pods by the set of plugins that rejected them.
    unschedulable: HashMap<PluginSet, HashSet<String>>,
    next_seq: u64,
    scheduling_cycle: u64,
    /// The scheduling cycle during which the last relevant event arrived.
    move_request_cycle: u64,
    /// Nominated node → pods nominated there (preemptors waiting for their victims).
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    nominated_node: HashMap<String, String>,
    /// When unschedulable pods were last checked for their five minutes.
    last_leftover_flush: Option<Instant>,
    closed: bool,
}

/// What [`SchedulingQueue::pop`] hands to the scheduling cycle.
#[derive(Debug, Clone)]
pub struct Popped {
    pub info: Arc<PodInfo>,
    pub attempts: u32,
    pub cycle: u64,
}

/// Back-off timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// `initial * 2^(attempts-1)`, at most `max`.
    pub fn duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempts {
            if d >= self.max {
                break;
            }
            d = d.saturating_mul(2);
        }
        d.min(self.max)
    }
}

/// The queue, shared by the watchers (which add, update and move pods) and the scheduling
/// thread (which pops and requeues).
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    backoff: Backoff,
}

impl SchedulingQueue {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push_active(inner: &mut Inner, uid: &str) {
        inner.next_seq += 1;
        let seq = inner.next_seq;
        let Some(e) = inner.entries.get_mut(uid) else {
            return;
        };
        e.place = Where::Active;
        e.seq = seq;
        inner.active.push(ActiveKey {
            priority: e.info.priority,
            created: e.info.created,
            seq,
            uid: uid.to_string(),
        });
    }

    fn push_backoff(inner: &mut Inner, uid: &str, until: Instant) {
        inner.next_seq += 1;
        let seq = inner.next_seq;
        let Some(e) = inner.entries.get_mut(uid) else {
            return;
        };
        e.place = Where::Backoff;
        e.seq = seq;
        e.backoff_until = Some(until);
        inner.backoff.push(Reverse((until, seq, uid.to_string())));
    }

    fn take_unschedulable(inner: &mut Inner, uid: &str, rejectors: PluginSet) {
        if let Some(set) = inner.unschedulable.get_mut(&rejectors) {
            set.remove(uid);
            if set.is_empty() {
                inner.unschedulable.remove(&rejectors);
            }
        }
    }

    /// Moves a waiting pod to active, or to back-off while its back-off lasts.
    fn reactivate(inner: &mut Inner, uid: &str, now: Instant) {
        let Some((place, rejectors, backoff_until)) = inner
            .entries
            .get(uid)
            .map(|e| (e.place, e.rejectors, e.backoff_until))
        else {
            return;
        };
        if place == Where::Unschedulable {
            Self::take_unschedulable(inner, uid, rejectors);
        }
        match backoff_until {
            Some(until) if until > now => Self::push_backoff(inner, uid, until),
            _ => Self::push_active(inner, uid),
        }
    }

    /// A pending pod appeared or changed.
    pub fn add_or_update(&self, info: Arc<PodInfo>) {
        let mut inner = self.lock();
        let uid = info.uid.clone();
        let gated = info.gated;
        let now = Instant::now();
        match inner.entries.get_mut(&uid) {
            None => {
                inner.entries.insert(
                    uid.clone(),
                    Entry {
                        info,
                        attempts: 0,
                        seq: 0,
                        place: Where::Gated,
                        backoff_until: None,
                        unschedulable_since: now,
                        rejectors: PluginSet::default(),
                    },
                );
                if !gated {
                    Self::push_active(&mut inner, &uid);
                }
            }
            Some(e) => {
                let priority_changed = e.info.priority != info.priority;
                let spec_changed = !e.info.same_scheduling_inputs(&info);
                e.info = info;
                match e.place {
                    Where::Gated if !gated => Self::push_active(&mut inner, &uid),
                    // Kubernetes retries an unschedulable pod whose spec or labels changed;
                    // a status write (its own condition, say) does not count.
                    Where::Unschedulable if !gated && spec_changed => {
                        Self::reactivate(&mut inner, &uid, now)
                    }
                    Where::Active if priority_changed => Self::push_active(&mut inner, &uid),
                    _ => {}
                }
            }
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// The pod was deleted, or bound (by us or anyone): forget it.
    pub fn delete(&self, uid: &str) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.remove(uid)
            && e.place == Where::Unschedulable
        {
            Self::take_unschedulable(&mut inner, uid, e.rejectors);
        }
        Self::clear_nominated_locked(&mut inner, uid);
    }

    /// Updates the info of a pod the queue already tracks; never adds one.
    pub fn update_existing(&self, info: Arc<PodInfo>) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(&info.uid) {
            e.info = info;
        }
    }

    /// The uids of every tracked pod, for reconciling after a re-list.
    pub fn uids(&self) -> Vec<String> {
        self.lock().entries.keys().cloned().collect()
    }

    /// Whether the queue still tracks the pod (not deleted or bound meanwhile).
    pub fn contains(&self, uid: &str) -> bool {
        self.lock().entries.contains_key(uid)
    }

    fn flush(inner: &mut Inner, now: Instant) {
        while let Some(Reverse((until, seq, uid))) = inner.backoff.peek() {
            if *until > now {
                break;
            }
            let (seq, uid) = (*seq, uid.clone());
            inner.backoff.pop();
            let live = inner
                .entries
                .get(&uid)
                .is_some_and(|e| e.place == Where::Backoff && e.seq == seq);
            if live {
                Self::push_active(inner, &uid);
            }
        }
        if inner
            .last_leftover_flush
            .is_some_and(|t| now.duration_since(t) < LEFTOVER_FLUSH_PERIOD)
        {
            return;
        }
        inner.last_leftover_flush = Some(now);
        let stale: Vec<String> = inner
            .unschedulable
            .values()
            .flatten()
            .filter(|uid| {
                inner.entries.get(*uid).is_some_and(|e| {
                    now.duration_since(e.unschedulable_since) >= MAX_IN_UNSCHEDULABLE
                })
            })
            .cloned()
            .collect();
        for uid in stale {
            Self::reactivate(inner, &uid, now);
        }
    }

    fn next_wakeup(inner: &Inner, now: Instant) -> Duration {
        inner
            .backoff
            .peek()
            .map(|Reverse((until, _, _))| until.saturating_duration_since(now))
            .unwrap_or(IDLE_WAKEUP)
            .min(IDLE_WAKEUP)
    }

    /// Takes the most important ready pod, waiting up to `timeout` for one. `None` on
    /// timeout or after [`close`](Self::close).
    pub fn pop(&self, timeout: Duration) -> Option<Popped> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            if inner.closed {
                return None;
            }
            let now = Instant::now();
            Self::flush(&mut inner, now);
            while let Some(key) = inner.active.pop() {
                let live = inner
                    .entries
                    .get(&key.uid)
                    .is_some_and(|e| e.place == Where::Active && e.seq == key.seq);
                if !live {
                    continue;
                }
                inner.scheduling_cycle += 1;
                let cycle = inner.scheduling_cycle;
                let Some(e) = inner.entries.get_mut(&key.uid) else {
                    continue;
                };
                e.place = Where::InFlight;
                e.attempts += 1;
                return Some(Popped {
                    info: Arc::clone(&e.info),
                    attempts: e.attempts,
                    cycle,
                });
            }
            if now >= deadline {
                return None;
            }
            let wait = Self::next_wakeup(&inner, now).min(deadline - now);
            inner = self
                .ready
                .wait_timeout(inner, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A cluster event: unschedulable pods rejected by a plugin that cares move on.
    pub fn on_event(&self, event: ClusterEvent) {
        let plugins = event.plugins();
        if plugins.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.move_request_cycle = inner.scheduling_cycle;
        let buckets: Vec<PluginSet> = inner
            .unschedulable
            .keys()
            .filter(|k| k.intersects(plugins))
            .copied()
            .collect();
        if buckets.is_empty() {
            return;
        }
        let now = Instant::now();
        for b in buckets {
            let uids: Vec<String> = inner
                .unschedulable
                .get(&b)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for uid in uids {
                Self::reactivate(&mut inner, &uid, now);
            }
        }
        drop(inner);
        self.ready.notify_all();
    }

    /// After a failed attempt: the pod waits for an event (rejected by `rejectors`), or
    /// backs off (an error, or an event arrived while it was being scheduled).
    pub fn requeue(&self, uid: &str, rejectors: PluginSet, cycle: u64) {
        let mut inner = self.lock();
        let move_request_cycle = inner.move_request_cycle;
        let now = Instant::now();
        let backoff = self.backoff;
        let Some(e) = inner.entries.get_mut(uid) else {
            return;
        };
        if e.place != Where::InFlight {
            return;
        }
        let until = now + backoff.duration(e.attempts);
        e.backoff_until = Some(until);
        e.rejectors = rejectors;
        if rejectors.is_empty() || move_request_cycle >= cycle {
            Self::push_backoff(&mut inner, uid, until);
        } else {
            e.place = Where::Unschedulable;
            e.unschedulable_since = now;
            inner
                .unschedulable
                .entry(rejectors)
                .or_default()
                .insert(uid.to_string());
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// The pod is bound: it leaves the queue.
    pub fn done(&self, uid: &str) {
        self.delete(uid);
    }

    /// Stops every `pop`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn clear_nominated_locked(inner: &mut Inner, uid: &str) {
        if let Some(node) = inner.nominated_node.remove(uid)
            && let Some(list) = inner.nominated.get_mut(&node)
        {
            list.retain(|p| p.uid != uid);
            if list.is_empty() {
                inner.nominated.remove(&node);
            }
        }
    }

    /// Records that `pod` waits for room on `node` (after preempting there).
    pub fn set_nominated(&self, pod: Arc<PodInfo>, node: &str) {
        let mut inner = self.lock();
        Self::clear_nominated_locked(&mut inner, &pod.uid);
        inner
            .nominated_node
            .insert(pod.uid.clone(), node.to_string());
        inner
            .nominated
            .entry(node.to_string())
            .or_default()
            .push(pod);
    }

    pub fn clear_nominated(&self, uid: &str) {
        Self::clear_nominated_locked(&mut self.lock(), uid);
    }

    pub fn nominated_node(&self, uid: &str) -> Option<String> {
        self.lock().nominated_node.get(uid).cloned()
    }

    /// Node → nominated pods, for one scheduling cycle (usually empty).
    pub fn nominated_snapshot(&self) -> HashMap<String, Vec<Arc<PodInfo>>> {
        let inner = self.lock();
        if inner.nominated.is_empty() {
            return HashMap::new();
        }
        inner.nominated.clone()
    }

    /// Pods waiting in each part of the queue: (active, backoff, unschedulable).
    pub fn lengths(&self) -> (usize, usize, usize) {
        let inner = self.lock();
        let count = |w: Where| inner.entries.values().filter(|e| e.place == w).count();
        (
            count(Where::Active),
            count(Where::Backoff),
            count(Where::Unschedulable),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use serde_json::json;

    fn info(name: &str, priority: i32, created: &str) -> Arc<PodInfo> {
        Arc::new(pod(
            json!({"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"priority": priority}}),
        ))
    }

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        })
    }

    fn pop_name(q: &SchedulingQueue) -> Option<String> {
        q.pop(Duration::from_millis(10))
            .map(|p| p.info.name.clone())
    }

    #[test]
    fn priority_then_creation_time() {
        let q = queue();
        q.add_or_update(info("late-low", 0, "2025-01-01T00:00:09Z"));
        q.add_or_update(info("early-low", 0, "2025-01-01T00:00:01Z"));
        q.add_or_update(info("high", 100, "2025-01-01T00:00:05Z"));
        assert_eq!(pop_name(&q).as_deref(), Some("high"));
        assert_eq!(pop_name(&q).as_deref(), Some("early-low"));
        assert_eq!(pop_name(&q).as_deref(), Some("late-low"));
        assert_eq!(pop_name(&q), None);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_relevant_event() {
        let q = queue();
        q.add_or_update(info("p", 0, "2025-01-01T00:00:00Z"));
        let popped = q.pop(Duration::ZERO).expect("pod");
        q.requeue(
            &popped.info.uid,
            PluginSet::of(&[Plugin::NodeResourcesFit]),
            popped.cycle,
        );
        assert_eq!(q.lengths(), (0, 0, 1));
        // A new pod bound elsewhere does not free resources.
        q.on_event(ClusterEvent::AssignedPodAdd);
        assert_eq!(q.lengths(), (0, 0, 1));
        std::thread::sleep(Duration::from_millis(60));
        q.on_event(ClusterEvent::NodeAdd);
        assert_eq!(pop_name(&q).as_deref(), Some("p"));
    }

    #[test]
    fn moved_pods_still_serve_their_backoff() {
        let q = queue();
        q.add_or_update(info("p", 0, "2025-01-01T00:00:00Z"));
        let popped = q.pop(Duration::ZERO).expect("pod");
        q.requeue(
            &popped.info.uid,
            PluginSet::of(&[Plugin::TaintToleration]),
            popped.cycle,
        );
        q.on_event(ClusterEvent::NodeUpdate(NodeChange {
            taints: true,
            ..NodeChange::default()
        }));
        assert_eq!(q.lengths(), (0, 1, 0));
        assert_eq!(pop_name(&q), None);
        let again = q.pop(Duration::from_secs(2)).expect("after back-off");
        assert_eq!(again.attempts, 2);
    }

    #[test]
    fn events_during_an_attempt_send_the_pod_to_backoff() {
        let q = queue();
        q.add_or_update(info("p", 0, "2025-01-01T00:00:00Z"));
        let popped = q.pop(Duration::ZERO).expect("pod");
        q.on_event(ClusterEvent::AssignedPodDelete);
        q.requeue(
            &popped.info.uid,
            PluginSet::of(&[Plugin::NodeResourcesFit]),
            popped.cycle,
        );
        assert_eq!(q.lengths(), (0, 1, 0));
    }

    #[test]
    fn deleted_and_gated_pods_are_not_popped() {
        let q = queue();
        q.add_or_update(info("gone", 0, "2025-01-01T00:00:00Z"));
        q.delete("uid-gone");
        let gated = Arc::new(pod(
            json!({"metadata": {"name": "gated"}, "spec": {"schedulingGates": [{"name": "g"}]}}),
        ));
        q.add_or_update(gated);
        assert_eq!(pop_name(&q), None);
        q.add_or_update(Arc::new(pod(json!({"metadata": {"name": "gated"}}))));
        assert_eq!(pop_name(&q).as_deref(), Some("gated"));
        // A requeue after deletion is dropped.
        q.delete("uid-gated");
        q.requeue("uid-gated", PluginSet::default(), 1);
        assert_eq!(q.lengths(), (0, 0, 0));
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        assert_eq!(b.duration(1), Duration::from_secs(1));
        assert_eq!(b.duration(2), Duration::from_secs(2));
        assert_eq!(b.duration(4), Duration::from_secs(8));
        assert_eq!(b.duration(5), Duration::from_secs(10));
        assert_eq!(b.duration(50), Duration::from_secs(10));
    }

    #[test]
    fn nominations_are_tracked_per_node() {
        let q = queue();
        let p = info("p", 10, "2025-01-01T00:00:00Z");
        q.set_nominated(p.clone(), "n1");
        assert_eq!(q.nominated_snapshot().get("n1").map(Vec::len), Some(1));
        q.set_nominated(p.clone(), "n2");
        assert!(!q.nominated_snapshot().contains_key("n1"));
        assert_eq!(q.nominated_node(&p.uid).as_deref(), Some("n2"));
        q.delete(&p.uid);
        assert!(q.nominated_snapshot().is_empty());
    }
}
