//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation: when the earliest
//! change that an Endpoints (or EndpointSlice) write reflects happened, so that the
//! network-programming latency can be measured from it (Kubernetes'
//! `TriggerTimeTracker`).
//!
//! A pod's trigger time is the last transition of its `Ready` condition, a Service's its
//! creation. Per Service, the tracker remembers the times seen at the previous sync; the
//! annotation is the earliest time that is newer than what was seen — or absent when
//! nothing changed (a pod deletion, for instance, carries no time).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// The annotation's name.
pub const ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Debug, Default)]
struct State {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

/// Trigger times seen per Service (`namespace/name`).
#[derive(Debug, Default)]
pub struct Tracker {
    services: Mutex<HashMap<String, State>>,
}

fn pod_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// What one sync saw; [`Tracker::commit`] makes it the baseline of the next sync.
#[derive(Debug)]
pub struct Observed {
    key: String,
    state: State,
}

impl Tracker {
    /// The trigger time for a sync of `svc` over `pods` (the pods its selector matches).
    /// Kubernetes forgets the times as soon as it computes them; here they count as seen
    /// only once the sync's write succeeded ([`Tracker::commit`]), so a retried write still
    /// carries the time of the change it reflects.
    pub fn compute<'a>(
        &self,
        svc: &Service,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> (Option<Timestamp>, Observed) {
        let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let empty = State::default();
        let state = services.get(&key).unwrap_or(&empty);
        let mut earliest: Option<Timestamp> = None;
        let mut seen = HashMap::new();
        for pod in pods {
            let Some(t) = pod_time(pod) else {
                continue;
            };
            let name = pod.name_any();
            if state.pods.get(&name).is_none_or(|prev| t > *prev) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            seen.insert(name, t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(c) = created
            && state.service.is_none_or(|prev| c > prev)
        {
            earliest = Some(earliest.map_or(c, |e| e.min(c)));
        }
        let observed = Observed {
            key,
            state: State {
                pods: seen,
                service: created,
            },
        };
        (earliest, observed)
    }

    /// Records what a successful sync saw.
    pub fn commit(&self, observed: Observed) {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(observed.key, observed.state);
    }

    /// Forgets a deleted Service.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&format!("{namespace}/{name}"));
    }
}

/// The annotation value: UTC, RFC 3339 with nanoseconds as needed (Go's `RFC3339Nano`).
pub fn format(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready_at: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}}))
        .expect("pod")
    }

    #[test]
    fn the_earliest_unseen_change_counts_once() {
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "n",
            "creationTimestamp": "2024-01-01T00:00:00Z"}}))
            .expect("svc");
        let t = Tracker::default();
        let a = pod("a", "2024-01-01T00:01:00Z");
        let b = pod("b", "2024-01-01T00:02:00Z");
        let sync = |pods: &[&Pod]| {
            let (at, seen) = t.compute(&svc, pods.iter().copied());
            t.commit(seen);
            at.map(format)
        };
        // First sync: the Service's creation is the earliest change.
        assert_eq!(sync(&[&a, &b]).as_deref(), Some("2024-01-01T00:00:00Z"));
        // Nothing new: no trigger time.
        assert_eq!(sync(&[&a, &b]), None);
        // b turned ready again later; a is unchanged. A sync whose write failed (no
        // commit) leaves the change pending.
        let b2 = pod("b", "2024-01-01T00:05:00.5Z");
        let (at, _failed) = t.compute(&svc, [&a, &b2]);
        assert_eq!(at.map(format).as_deref(), Some("2024-01-01T00:05:00.5Z"));
        assert_eq!(sync(&[&a, &b2]).as_deref(), Some("2024-01-01T00:05:00.5Z"));
        // A pod that left carries no time.
        assert_eq!(sync(&[&a]), None);
        t.forget("n", "s");
        assert!(t.compute(&svc, [&a]).0.is_some());
    }
}
