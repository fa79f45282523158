//! Events about pods, written as core/v1 Events the way the kubelet writes them (source
//! `kubelet` on this host, `involvedObject.fieldPath` naming the container), with repeats
//! folded into one Event whose `count` grows.
//!
//! The kubelet writes core/v1 rather than events.k8s.io/v1 because nodes are allowed only
//! that (Kubernetes' `system:node` rules grant `events` in the core group), so kube-rs'
//! events.k8s.io `Recorder` would be refused for a node's credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// The component name events carry.
pub const COMPONENT: &str = "kubelet";
/// Folded repeats are forgotten after this many distinct events (bounded memory).
const MAX_REMEMBERED: usize = 4096;

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

#[derive(Debug, Clone)]
struct Seen {
    namespace: String,
    name: String,
    count: i32,
}

/// Writes pod events in the background; clones share the fold cache.
#[derive(Clone)]
pub struct Recorder {
    client: Option<Client>,
    node: String,
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    /// Unit tests read what would have been written.
    log: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Recorder {
    pub fn new(client: Client, node: &str) -> Self {
        Self {
            client: Some(client),
            node: node.to_string(),
            seen: Arc::default(),
            log: Arc::default(),
        }
    }

    /// A recorder that writes nothing and keeps (type, reason, message) for assertions.
    pub fn for_tests() -> Self {
        Self {
            client: None,
            node: "test-node".into(),
            seen: Arc::default(),
            log: Arc::default(),
        }
    }

    /// `(type, reason, message)` of every event so far (test recorders only).
    pub fn recorded(&self) -> Vec<(String, String, String)> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records an event about `pod` (and its container at `field_path`, e.g.
    /// `spec.containers{web}`).
    pub fn pod_event(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((kind.as_str().into(), reason.into(), message.clone()));
        let Some(client) = self.client.clone() else {
            return;
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let involved = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(namespace.clone()),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: field_path.clone(),
        };
        let key = format!(
            "{}\x00{}\x00{}\x00{}\x00{}",
            pod.metadata.uid.as_deref().unwrap_or_default(),
            field_path.as_deref().unwrap_or_default(),
            kind.as_str(),
            reason,
            message
        );
        let now = Timestamp::now();
        let previous = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let prev = seen.get_mut(&key).map(|s| {
                s.count += 1;
                s.clone()
            });
            if prev.is_none() && seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
            prev
        };
        let api: Api<Event> = Api::namespaced(client, &namespace);
        let node = self.node.clone();
        let seen = Arc::clone(&self.seen);
        let reason = reason.to_string();
        tokio::spawn(async move {
            if let Some(p) = previous {
                let patch = json!({"count": p.count, "lastTimestamp": Time(now)});
                match api
                    .patch(&p.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, event = %p.name, ns = %p.namespace, "could not update event; writing a new one")
                    }
                }
            }
            let name = format!(
                "{}.{:x}",
                involved.name.as_deref().unwrap_or("pod"),
                now.as_nanosecond()
            );
            let event = Event {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    ..ObjectMeta::default()
                },
                involved_object: involved,
                reason: Some(reason),
                message: Some(message),
                type_: Some(kind.as_str().to_string()),
                source: Some(EventSource {
                    component: Some(COMPONENT.into()),
                    host: Some(node.clone()),
                }),
                count: Some(1),
                first_timestamp: Some(Time(now)),
                last_timestamp: Some(Time(now)),
                event_time: None::<MicroTime>,
                reporting_component: Some(COMPONENT.into()),
                reporting_instance: Some(node),
                ..Event::default()
            };
            match api.create(&PostParams::default(), &event).await {
                Ok(_) => {
                    seen.lock().unwrap_or_else(PoisonError::into_inner).insert(
                        key,
                        Seen {
                            namespace,
                            name,
                            count: 1,
                        },
                    );
                }
                Err(e) => tracing::warn!(error = %e, "could not write event"),
            }
        });
    }
}
