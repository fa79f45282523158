//! NodeName filter: a pod that names a node (`spec.nodeName`) fits only there.

use crate::cache::pod_info::PodInfo;
use crate::framework::{Plugin, Status};

pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub fn filter(pod: &PodInfo, node_name: &str) -> Option<Status> {
    if pod.node_name.is_empty() || pod.node_name == node_name {
        return None;
    }
    Some(Status::unresolvable(Plugin::NodeName, ERR_REASON))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::pod_info::tests::pod;
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let p = pod(json!({"spec": {"nodeName": "n1"}}));
        assert!(filter(&p, "n1").is_none());
        assert_eq!(
            filter(&p, "n2").map(|s| s.reasons),
            Some(vec![ERR_REASON.into()])
        );
        assert!(filter(&pod(json!({})), "n2").is_none());
    }
}
