//! Events as Kubernetes' scheduler records them: `events.k8s.io/v1` Events with a reporting
//! controller (the pod's scheduler name), an action and a note, sent in the background so
//! the scheduling thread never waits on the apiserver.
//!
//! Repeats follow client-go's events broadcaster: an event with the same controller,
//! action, reason, regarding and related object as one recorded in the last six minutes
//! does not create a new Event; the first repeat patches `series.count` to 2, later repeats
//! are counted and written back periodically. When the buffer is full, events are dropped
//! (as client-go drops them) rather than slowing scheduling down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::cache::pod_info::PodInfo;

/// How many events may wait to be written.
const BUFFER: usize = 1000;
/// How many Event writes may be in flight at once.
const CONCURRENT_WRITES: usize = 16;
/// client-go's `finishTime`: a series ends when no repeat came for this long.
const FINISH_TIME: Duration = Duration::from_secs(6 * 60);
/// How often finished series are forgotten.
const EXPIRE_EVERY: Duration = Duration::from_secs(30);
/// client-go's `refreshTime`: how often ongoing series counts are written back.
const REFRESH_TIME: Duration = Duration::from_secs(30 * 60);
/// Kubernetes limits a scheduler event's note to 1024 bytes.
pub const MAX_NOTE_LENGTH: usize = 1024;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A reference to a pod, as an event's `regarding` or `related`.
pub fn pod_reference(pod: &PodInfo) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(pod.namespace.clone()),
        name: Some(pod.name.clone()),
        uid: Some(pod.uid.clone()),
        resource_version: Some(pod.resource_version.clone()).filter(|s| !s.is_empty()),
        field_path: None,
    }
}

/// Cuts `note` to `max` bytes (on a character boundary) with Kubernetes' ` ...` suffix.
pub fn truncate_note(note: &str, max: usize) -> String {
    if note.len() <= max {
        return note.to_string();
    }
    const SUFFIX: &str = " ...";
    let mut end = max.saturating_sub(SUFFIX.len());
    while end > 0 && !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{SUFFIX}", &note[..end])
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Record {
    pub controller: String,
    pub regarding: ObjectReference,
    pub related: Option<ObjectReference>,
    pub type_: EventType,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
}

/// The isomorphism key of client-go's events broadcaster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    controller: String,
    action: &'static str,
    reason: &'static str,
    regarding: (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    related: Option<(Option<String>, Option<String>, Option<String>)>,
}

impl Key {
    fn of(r: &Record) -> Self {
        let g = &r.regarding;
        Self {
            controller: r.controller.clone(),
            action: r.action,
            reason: r.reason,
            regarding: (
                g.namespace.clone(),
                g.name.clone(),
                g.uid.clone(),
                g.resource_version.clone(),
            ),
            related: r
                .related
                .as_ref()
                .map(|o| (o.namespace.clone(), o.name.clone(), o.uid.clone())),
        }
    }
}

struct Series {
    namespace: String,
    name: String,
    /// Repeats so far (0: none; then 2, 3, …).
    count: i32,
    /// `count` as last written.
    written: i32,
    last_seen: Instant,
    last_observed: Timestamp,
    /// Becomes true once the Event exists (patches wait for it).
    created: watch::Receiver<bool>,
}

/// Records events through a background task; cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Record>,
}

impl EventRecorder {
    /// Starts the writer task on the current runtime. `instance` is the reporting
    /// instance suffix (the host name).
    pub fn start(client: Client, instance: String) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(writer(client, instance, rx));
        Self { tx }
    }

    /// Queues an event; drops it when the buffer is full.
    pub fn record(&self, record: Record) {
        if let Err(e) = self.tx.try_send(record) {
            tracing::debug!(error = %e, "event buffer full, dropping event");
        }
    }
}

fn now_micros() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

async fn writer(client: Client, instance: String, mut rx: mpsc::Receiver<Record>) {
    let permits = Arc::new(Semaphore::new(CONCURRENT_WRITES));
    let mut series: HashMap<Key, Series> = HashMap::new();
    let mut refresh = tokio::time::interval(REFRESH_TIME);
    refresh.tick().await;
    let mut expire = tokio::time::interval(EXPIRE_EVERY);
    loop {
        tokio::select! {
            r = rx.recv() => {
                let Some(r) = r else { return };
                handle(&client, &instance, &permits, &mut series, r).await;
            }
            _ = expire.tick() => {
                let now = Instant::now();
                series.retain(|_, s| now.duration_since(s.last_seen) < FINISH_TIME);
            }
            _ = refresh.tick() => {
                for s in series.values_mut().filter(|s| s.count > s.written) {
                    s.written = s.count;
                    spawn_patch(&client, &permits, s).await;
                }
            }
        }
    }
}

async fn handle(
    client: &Client,
    instance: &str,
    permits: &Arc<Semaphore>,
    series: &mut HashMap<Key, Series>,
    r: Record,
) {
    let key = Key::of(&r);
    let now = now_micros();
    if let Some(s) = series.get_mut(&key) {
        s.last_seen = Instant::now();
        s.last_observed = now;
        s.count = if s.count == 0 { 2 } else { s.count + 1 };
        if s.written == 0 {
            s.written = s.count;
            spawn_patch(client, permits, s).await;
        }
        return;
    }
    let namespace = r.regarding.namespace.clone().unwrap_or_default();
    let name = format!(
        "{}.{:x}",
        r.regarding.name.as_deref().unwrap_or("unknown"),
        now.as_nanosecond()
    );
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        reporting_controller: Some(r.controller.clone()),
        reporting_instance: Some(format!("{}-{instance}", r.controller)),
        action: Some(r.action.to_string()),
        reason: Some(r.reason.to_string()),
        regarding: Some(r.regarding),
        related: r.related,
        note: Some(truncate_note(&r.note, MAX_NOTE_LENGTH)),
        type_: Some(r.type_.as_str().to_string()),
        ..Event::default()
    };
    let (done, created) = watch::channel(false);
    series.insert(
        key,
        Series {
            namespace: namespace.clone(),
            name,
            count: 0,
            written: 0,
            last_seen: Instant::now(),
            last_observed: now,
            created,
        },
    );
    let Ok(permit) = Arc::clone(permits).acquire_owned().await else {
        return;
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    tokio::spawn(async move {
        let _permit = permit;
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => {
                let _ = done.send(true);
            }
            Err(e) => tracing::warn!(
                event = event.metadata.name.as_deref().unwrap_or(""),
                reason = event.reason.as_deref().unwrap_or(""),
                error = %e,
                "could not create event"
            ),
        }
    });
}

async fn spawn_patch(client: &Client, permits: &Arc<Semaphore>, s: &Series) {
    let Ok(permit) = Arc::clone(permits).acquire_owned().await else {
        return;
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &s.namespace);
    let name = s.name.clone();
    let patch = serde_json::json!({"series": EventSeries {
        count: s.count,
        last_observed_time: MicroTime(s.last_observed),
    }});
    let mut created = s.created.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let ready = matches!(
            tokio::time::timeout(Duration::from_secs(30), created.wait_for(|c| *c)).await,
            Ok(Ok(_))
        );
        if !ready {
            return;
        }
        if let Err(e) = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(event = %name, error = %e, "could not update event series");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_with_kubernetes_suffix() {
        assert_eq!(truncate_note("short", 10), "short");
        assert_eq!(truncate_note("0123456789abc", 10), "012345 ...");
        let cut = truncate_note(&"é".repeat(10), 9);
        assert!(cut.ends_with(" ...") && cut.len() <= 9, "{cut}");
    }

    #[test]
    fn repeats_share_a_key_regardless_of_note() {
        let r = |note: &str| Record {
            controller: "default-scheduler".into(),
            regarding: ObjectReference {
                namespace: Some("ns".into()),
                name: Some("p".into()),
                uid: Some("u".into()),
                ..ObjectReference::default()
            },
            related: None,
            type_: EventType::Warning,
            reason: "FailedScheduling",
            action: "Scheduling",
            note: note.into(),
        };
        assert_eq!(Key::of(&r("a")), Key::of(&r("b")));
        let mut other = r("a");
        other.reason = "Scheduled";
        assert_ne!(Key::of(&r("a")), Key::of(&other));
    }
}
