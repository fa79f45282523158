//! NodePorts filter: a pod's host ports must be free on the node (same protocol and port
//! on the same IP, or on any IP where either side binds 0.0.0.0).

use crate::cache::node_info::NodeInfo;
use crate::cache::pod_info::PodInfo;
use crate::framework::{Plugin, Status};

pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub fn filter(pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    if pod.host_ports.is_empty() || node.used_ports.is_empty() {
        return None;
    }
    if pod.host_ports.iter().any(|p| node.used_ports.conflicts(p)) {
        return Some(Status::unschedulable(Plugin::NodePorts, ERR_REASON));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use crate::framework::Code;
    use serde_json::json;
    use std::sync::Arc;

    fn with_port(name: &str, port: i32, ip: &str, protocol: &str) -> PodInfo {
        pod(
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": 1, "hostPort": port, "hostIP": ip, "protocol": protocol}]}]}}),
        )
    }

    #[test]
    fn host_port_conflicts_reject_with_unschedulable() {
        let mut n = NodeInfo::new("n", None);
        n.add_pod(Arc::new(with_port("a", 8080, "", "TCP")));
        let s = filter(&with_port("b", 8080, "10.0.0.1", "TCP"), &n).expect("conflict");
        assert_eq!(
            (s.code, s.reasons.clone()),
            (Code::Unschedulable, vec![ERR_REASON.into()])
        );
        assert!(filter(&with_port("c", 8080, "", "UDP"), &n).is_none());
        assert!(filter(&with_port("d", 8081, "", "TCP"), &n).is_none());
        assert!(filter(&pod(json!({})), &n).is_none());
    }
}
