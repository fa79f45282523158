//! What the node lifecycle controller remembers per node, and how a node's conditions
//! are set to Unknown (Kubernetes' `tryUpdateNodeHealth`).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The conditions the kubelet owns and the controller sets to Unknown when it goes quiet
/// (NetworkUnavailable belongs to the network plugin and is left alone).
pub const KUBELET_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The reason and message of a condition the kubelet stopped updating.
pub const UNKNOWN_REASON: &str = "NodeStatusUnknown";
pub const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
/// The reason and message of a condition the kubelet never posted.
pub const NEVER_REASON: &str = "NodeStatusNeverUpdated";
pub const NEVER_MESSAGE: &str = "Kubelet never posted node status.";

/// The last health signals seen from one node, on the local clock.
#[derive(Debug, Clone)]
pub struct Health {
    /// When a signal (lease renewal, Ready heartbeat) last changed.
    pub probe: Instant,
    /// `lastHeartbeatTime` of the Ready condition when last seen.
    pub heartbeat: Option<Timestamp>,
    /// `spec.renewTime` of the node's Lease when last seen.
    pub lease_renewed: Option<Timestamp>,
    /// Whether the node has a Ready condition at all (else the startup grace applies).
    pub ready_posted: bool,
}

fn ready_heartbeat(node: &Node) -> Option<Option<Timestamp>> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.last_heartbeat_time.as_ref().map(|t| t.0))
}

/// Updates the health of `node` with what it shows now. A node seen for the first time
/// starts its grace period now — or at its creation when it never posted Ready, so that a
/// kubelet that never comes up is noticed after the startup grace period.
pub fn observe(
    previous: Option<Health>,
    node: &Node,
    lease_renewed: Option<Timestamp>,
    now: Instant,
    wall: Timestamp,
) -> Health {
    let heartbeat = ready_heartbeat(node);
    let ready_posted = heartbeat.is_some();
    let heartbeat = heartbeat.flatten();
    let Some(mut h) = previous else {
        let probe = if ready_posted {
            now
        } else {
            let age = node
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|c| wall.duration_since(c.0))
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or_default();
            now.checked_sub(age).unwrap_or(now)
        };
        return Health {
            probe,
            heartbeat,
            lease_renewed,
            ready_posted,
        };
    };
    if heartbeat != h.heartbeat || ready_posted != h.ready_posted {
        h.probe = now;
        h.heartbeat = heartbeat;
        h.ready_posted = ready_posted;
    }
    if let Some(renewed) = lease_renewed
        && h.lease_renewed.is_none_or(|seen| seen < renewed)
    {
        h.probe = now;
        h.lease_renewed = Some(renewed);
    }
    h
}

/// Sets every kubelet-owned condition to Unknown, as Kubernetes does once the grace period
/// is over: existing ones keep their heartbeat and get a new transition time if their
/// status changes; missing ones are added as never updated. Returns whether anything changed.
pub fn mark_unknown(
    conditions: &mut Vec<NodeCondition>,
    created: Option<&Time>,
    now: &Time,
) -> bool {
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(UNKNOWN_REASON.into());
                c.message = Some(UNKNOWN_MESSAGE.into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: (*type_).to_string(),
                    status: "Unknown".into(),
                    reason: Some(NEVER_REASON.into()),
                    message: Some(NEVER_MESSAGE.into()),
                    last_heartbeat_time: created.cloned(),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(heartbeat: Option<&str>, created: &str) -> Node {
        let conditions = match heartbeat {
            Some(h) => json!([{"type": "Ready", "status": "True", "lastHeartbeatTime": h}]),
            None => json!([]),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "n", "creationTimestamp": created},
            "status": {"conditions": conditions},
        }))
        .expect("node")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn lease_renewal_or_heartbeat_moves_the_probe_time() {
        let t0 = Instant::now();
        let wall = ts("2025-01-01T00:10:00Z");
        let n = node(Some("2025-01-01T00:00:00Z"), "2025-01-01T00:00:00Z");
        let lease = Some(ts("2025-01-01T00:09:00Z"));
        let h = observe(None, &n, lease, t0, wall);
        assert_eq!(h.probe, t0);
        assert!(h.ready_posted);
        // Nothing new: the probe time stays.
        let t1 = t0 + Duration::from_secs(30);
        let h = observe(Some(h), &n, lease, t1, wall);
        assert_eq!(h.probe, t0);
        // A renewed lease moves it.
        let h = observe(Some(h), &n, Some(ts("2025-01-01T00:09:10Z")), t1, wall);
        assert_eq!(h.probe, t1);
        // So does a new Ready heartbeat.
        let t2 = t1 + Duration::from_secs(5);
        let n2 = node(Some("2025-01-01T00:09:30Z"), "2025-01-01T00:00:00Z");
        let h = observe(Some(h), &n2, Some(ts("2025-01-01T00:09:10Z")), t2, wall);
        assert_eq!(h.probe, t2);
    }

    #[test]
    fn a_node_that_never_posted_ready_counts_from_its_creation() {
        let now = Instant::now() + Duration::from_secs(3600);
        let n = node(None, "2025-01-01T00:00:00Z");
        let h = observe(None, &n, None, now, ts("2025-01-01T00:02:00Z"));
        assert!(!h.ready_posted);
        assert_eq!(now.duration_since(h.probe), Duration::from_secs(120));
    }

    #[test]
    fn mark_unknown_uses_kubernetes_reasons() {
        let now = Time(ts("2025-01-01T00:05:00Z"));
        let created = Time(ts("2025-01-01T00:00:00Z"));
        let mut conds: Vec<NodeCondition> = serde_json::from_value(json!([
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": "2025-01-01T00:01:00Z", "lastTransitionTime": "2025-01-01T00:00:10Z"},
            {"type": "MemoryPressure", "status": "False"},
            {"type": "NetworkUnavailable", "status": "False"},
        ]))
        .expect("conditions");
        assert!(mark_unknown(&mut conds, Some(&created), &now));
        let ready = conds.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some(UNKNOWN_REASON));
        assert_eq!(ready.message.as_deref(), Some(UNKNOWN_MESSAGE));
        assert_eq!(ready.last_transition_time, Some(now.clone()));
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(ts("2025-01-01T00:01:00Z")))
        );
        let disk = conds
            .iter()
            .find(|c| c.type_ == "DiskPressure")
            .expect("added");
        assert_eq!(disk.reason.as_deref(), Some(NEVER_REASON));
        assert_eq!(disk.last_heartbeat_time, Some(created.clone()));
        let net = conds
            .iter()
            .find(|c| c.type_ == "NetworkUnavailable")
            .expect("net");
        assert_eq!(net.status, "False");
        // Already Unknown: nothing to write.
        assert!(!mark_unknown(&mut conds, Some(&created), &now));
    }
}
