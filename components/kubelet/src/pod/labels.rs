//! The labels and annotations the kubelet puts on CRI sandboxes and containers, named as
//! Kubernetes names them: after a restart the kubelet finds its pods' sandboxes and
//! containers by them, and so do tools like crictl.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";

fn meta(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// Sandbox labels: the pod's labels plus name, namespace and uid.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let (name, namespace, uid) = meta(pod);
    let mut l: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    l.insert(POD_NAME.into(), name);
    l.insert(POD_NAMESPACE.into(), namespace);
    l.insert(POD_UID.into(), uid);
    l
}

/// Sandbox annotations: the pod's annotations.
pub fn sandbox_annotations(pod: &Pod) -> HashMap<String, String> {
    pod.metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Container labels: pod name, namespace, uid and the container's name.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let (name, namespace, uid) = meta(pod);
    HashMap::from([
        (POD_NAME.into(), name),
        (POD_NAMESPACE.into(), namespace),
        (POD_UID.into(), uid),
        (CONTAINER_NAME.into(), container.name.clone()),
    ])
}

/// Container annotations: what the kubelet needs to know about a container it finds in the
/// runtime later (spec hash, restart count, termination message settings, ports).
pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: i32,
) -> HashMap<String, String> {
    let mut a = HashMap::from([
        (
            CONTAINER_HASH.into(),
            format!("{:x}", container_hash(container)),
        ),
        (CONTAINER_RESTART_COUNT.into(), restart_count.to_string()),
        (
            TERMINATION_MESSAGE_PATH.into(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        ),
        (
            TERMINATION_MESSAGE_POLICY.into(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
    ]);
    if let Some(g) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        a.insert(POD_TERMINATION_GRACE_PERIOD.into(), g.to_string());
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty())
        && let Ok(j) = serde_json::to_string(ports)
    {
        a.insert(CONTAINER_PORTS.into(), j);
    }
    a
}

/// A stable hash of a container's spec (FNV-1a over its JSON), so a container whose spec
/// changed (a new image) is recognised and replaced.
pub fn container_hash(container: &Container) -> u64 {
    let json = serde_json::to_vec(container).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_kubernetes_names() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"},
                          "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "terminationGracePeriodSeconds": 30}
        }))
        .expect("pod");
        let l = sandbox_labels(&pod);
        assert_eq!(l[POD_UID], "u1");
        assert_eq!(l["app"], "a");
        assert_eq!(sandbox_annotations(&pod)["x"], "y");
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        assert_eq!(container_labels(&pod, c)[CONTAINER_NAME], "c");
        let a = container_annotations(&pod, c, 3);
        assert_eq!(a[CONTAINER_RESTART_COUNT], "3");
        assert_eq!(a[POD_TERMINATION_GRACE_PERIOD], "30");
        assert_eq!(a[TERMINATION_MESSAGE_PATH], "/dev/termination-log");
        let mut c2 = c.clone();
        assert_eq!(container_hash(c), container_hash(&c2));
        c2.image = Some("busybox:2".into());
        assert_ne!(container_hash(c), container_hash(&c2));
    }
}
