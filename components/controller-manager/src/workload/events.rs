//! Events of a controller (`SuccessfulCreate`, `ScalingReplicaSet`, …), recorded in the
//! background through kube-runtime's [`Recorder`] so a sync never waits for them.
//!
//! kube-runtime's recorder folds every event with the same object, reason and action into
//! one series, whatever its message. Kubernetes keeps distinct messages apart
//! ("Created pod: web-abcde", "Created pod: web-fghij") and counts only identical ones, so
//! one recorder is kept per distinct (object, type, reason, message) for as long as
//! kube-runtime aggregates (6 minutes): repeats of one message become a series, different
//! messages separate events.
//!
//! Like Kubernetes' broadcaster, the queue is bounded and drops events when full; an event
//! the apiserver refuses is logged and forgotten.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

/// Events waiting to be written at most; more are dropped.
const QUEUE: usize = 1000;
/// How long kube-runtime's recorder aggregates repeats (its cache TTL).
const AGGREGATION: Duration = Duration::from_secs(6 * 60);

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Normal,
    Warning,
}

struct Pending {
    regarding: ObjectReference,
    kind: Kind,
    reason: &'static str,
    action: &'static str,
    note: String,
}

/// Records events for one controller; cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Pending>,
    controller: &'static str,
}

impl Events {
    /// Starts the background writer; it ends when the last `Events` clone is dropped.
    pub fn start(client: Client, controller: &'static str) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        // The host's name as the reporting instance.
        let reporter = Reporter::from(controller);
        tokio::spawn(write_events(client, reporter, rx));
        Self { tx, controller }
    }

    /// Queues an event about `regarding`; never waits.
    pub fn record(
        &self,
        regarding: ObjectReference,
        kind: Kind,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) {
        let pending = Pending {
            regarding,
            kind,
            reason,
            action,
            note,
        };
        if let Err(e) = self.tx.try_send(pending) {
            let p = match e {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            };
            tracing::warn!(controller = self.controller, reason = p.reason, note = %p.note, "event queue full; event dropped");
        }
    }
}

type Key = (String, Kind, &'static str, String);

async fn write_events(client: Client, reporter: Reporter, mut rx: mpsc::Receiver<Pending>) {
    let mut recorders: HashMap<Key, (Recorder, Instant)> = HashMap::new();
    let mut order: VecDeque<(Instant, Key)> = VecDeque::new();
    while let Some(p) = rx.recv().await {
        let now = Instant::now();
        // Forget recorders whose aggregation window has passed (each key is queued once
        // per use; only its latest use counts).
        while let Some((at, key)) = order.front() {
            if now.duration_since(*at) < AGGREGATION {
                break;
            }
            if recorders
                .get(key)
                .is_some_and(|(_, last)| now.duration_since(*last) >= AGGREGATION)
            {
                recorders.remove(key);
            }
            order.pop_front();
        }
        let key: Key = (
            p.regarding.uid.clone().unwrap_or_default(),
            p.kind,
            p.reason,
            p.note.clone(),
        );
        let recorder = {
            let entry = recorders
                .entry(key.clone())
                .or_insert_with(|| (Recorder::new(client.clone(), reporter.clone()), now));
            entry.1 = now;
            entry.0.clone()
        };
        order.push_back((now, key));
        let event = Event {
            type_: match p.kind {
                Kind::Normal => EventType::Normal,
                Kind::Warning => EventType::Warning,
            },
            reason: p.reason.to_string(),
            note: Some(p.note),
            action: p.action.to_string(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &p.regarding).await {
            tracing::warn!(controller = %reporter.controller, reason = p.reason, object = ?p.regarding.name, error = %e, "could not record event");
        }
    }
}
