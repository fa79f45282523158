//! The Node object and its status as the kubelet reports them: labels at registration,
//! capacity and allocatable, nodeInfo, addresses, images, and the four conditions with
//! Kubernetes' reasons and messages.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerImage, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::pressure::Pressure;

/// How many images the status lists, and names per image (the kubelet's limits).
pub const MAX_IMAGES: usize = 50;
pub const MAX_NAMES_PER_IMAGE: usize = 5;

/// The Node the kubelet creates when it registers.
pub fn initial_node(
    name: &str,
    hostname: &str,
    extra_labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> Node {
    let arch = super::host::go_arch();
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), hostname.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch.to_string()),
    ]);
    labels.extend(extra_labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then(|| taints.to_vec()),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// Host figures the status is built from.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pods: u32,
    /// Subtracted from capacity for allocatable (hard eviction thresholds).
    pub memory_reserved: u64,
    pub ephemeral_storage_reserved: u64,
}

/// `resource.NewQuantity(v, BinarySI)` as it prints (`24682416Ki`).
pub fn binary_quantity(bytes: u64) -> KQuantity {
    let mut v = bytes;
    let mut power = 0;
    while power < 6 && v >= 1024 && v.is_multiple_of(1024) {
        v /= 1024;
        power += 1;
    }
    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
    KQuantity(format!("{v}{suffix}"))
}

impl Capacity {
    pub fn capacity(&self) -> BTreeMap<String, KQuantity> {
        BTreeMap::from([
            ("cpu".to_string(), KQuantity(self.cpus.to_string())),
            (
                "ephemeral-storage".to_string(),
                binary_quantity(self.ephemeral_storage_bytes),
            ),
            ("hugepages-1Gi".to_string(), KQuantity("0".into())),
            ("hugepages-2Mi".to_string(), KQuantity("0".into())),
            ("memory".to_string(), binary_quantity(self.memory_bytes)),
            ("pods".to_string(), KQuantity(self.pods.to_string())),
        ])
    }

    pub fn allocatable(&self) -> BTreeMap<String, KQuantity> {
        let mut a = self.capacity();
        a.insert(
            "memory".to_string(),
            binary_quantity(self.memory_bytes.saturating_sub(self.memory_reserved)),
        );
        a.insert(
            "ephemeral-storage".to_string(),
            KQuantity(
                self.ephemeral_storage_bytes
                    .saturating_sub(self.ephemeral_storage_reserved)
                    .to_string(),
            ),
        );
        a
    }
}

/// What the Ready condition needs to know: the runtime's and network's errors, in the
/// kubelet's order; empty when ready.
pub fn ready_message(errors: &[String]) -> Option<String> {
    match errors {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

/// The kubelet's four conditions for `now`, keeping each one's lastTransitionTime from
/// `old` while its status is unchanged.
pub fn conditions(
    old: &[NodeCondition],
    pressure: Pressure,
    ready_errors: &[String],
    now: Timestamp,
) -> Vec<NodeCondition> {
    let cond = |kind: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" };
        let transition = old
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        NodeCondition {
            type_: kind.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_heartbeat_time: Some(Time(now)),
            last_transition_time: Some(transition),
        }
    };
    let (mem_reason, mem_msg) = if pressure.memory {
        (
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    } else {
        (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        )
    };
    let (disk_reason, disk_msg) = if pressure.disk {
        ("KubeletHasDiskPressure", "kubelet has disk pressure")
    } else {
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure")
    };
    let (pid_reason, pid_msg) = if pressure.pid {
        (
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        )
    } else {
        (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        )
    };
    let ready = match ready_message(ready_errors) {
        None => cond(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        ),
        Some(m) => cond("Ready", false, "KubeletNotReady", m),
    };
    vec![
        cond(
            "MemoryPressure",
            pressure.memory,
            mem_reason,
            mem_msg.into(),
        ),
        cond("DiskPressure", pressure.disk, disk_reason, disk_msg.into()),
        cond("PIDPressure", pressure.pid, pid_reason, pid_msg.into()),
        ready,
    ]
}

/// Node images as the kubelet lists them: biggest first, at most [`MAX_IMAGES`], digests
/// then tags, at most [`MAX_NAMES_PER_IMAGE`] names each.
pub fn images(list: &[crate::cri::api::Image]) -> Vec<ContainerImage> {
    let mut v: Vec<&crate::cri::api::Image> = list
        .iter()
        .filter(|i| !i.repo_digests.is_empty() || !i.repo_tags.is_empty())
        .collect();
    v.sort_by_key(|i| std::cmp::Reverse(i.size));
    v.into_iter()
        .take(MAX_IMAGES)
        .map(|i| ContainerImage {
            names: Some(
                i.repo_digests
                    .iter()
                    .chain(i.repo_tags.iter())
                    .take(MAX_NAMES_PER_IMAGE)
                    .cloned()
                    .collect(),
            ),
            size_bytes: i64::try_from(i.size).ok(),
        })
        .collect()
}

/// Everything but the conditions, from host facts.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub internal_ip: String,
    pub hostname: String,
    pub capacity: Capacity,
    pub info: NodeSystemInfo,
    pub images: Vec<ContainerImage>,
}

/// The full status to post.
pub fn node_status(facts: &Facts, conditions: Vec<NodeCondition>) -> NodeStatus {
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: facts.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: facts.hostname.clone(),
            },
        ]),
        allocatable: Some(facts.capacity.allocatable()),
        capacity: Some(facts.capacity.capacity()),
        conditions: Some(conditions),
        images: Some(facts.images.clone()),
        node_info: Some(facts.info.clone()),
        ..NodeStatus::default()
    }
}

/// The status without heartbeat times: what "changed" compares (the kubelet posts an
/// unchanged status only every report period).
pub fn without_heartbeats(status: &NodeStatus) -> NodeStatus {
    let mut s = status.clone();
    if let Some(cs) = s.conditions.as_mut() {
        for c in cs {
            c.last_heartbeat_time = None;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("ts")
    }

    #[test]
    fn conditions_carry_kubernetes_reasons() {
        let c = conditions(&[], Pressure::default(), &[], t(100));
        let by = |k: &str| c.iter().find(|c| c.type_ == k).expect(k).clone();
        assert_eq!(
            c.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(by("Ready").reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            by("Ready").message.as_deref(),
            Some("kubelet is posting ready status")
        );
        assert_eq!(by("MemoryPressure").status, "False");
        assert_eq!(
            by("MemoryPressure").reason.as_deref(),
            Some("KubeletHasSufficientMemory")
        );
        assert_eq!(
            by("DiskPressure").reason.as_deref(),
            Some("KubeletHasNoDiskPressure")
        );
        assert_eq!(
            by("PIDPressure").reason.as_deref(),
            Some("KubeletHasSufficientPID")
        );

        let errs = vec!["container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:x".to_string()];
        let p = Pressure {
            memory: true,
            disk: true,
            pid: true,
        };
        let c2 = conditions(&c, p, &errs, t(110));
        let by2 = |k: &str| c2.iter().find(|c| c.type_ == k).expect(k).clone();
        assert_eq!(by2("Ready").status, "False");
        assert_eq!(by2("Ready").reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(by2("Ready").message.as_deref(), Some(errs[0].as_str()));
        assert_eq!(
            by2("MemoryPressure").reason.as_deref(),
            Some("KubeletHasInsufficientMemory")
        );
        assert_eq!(
            by2("DiskPressure").reason.as_deref(),
            Some("KubeletHasDiskPressure")
        );
        assert_eq!(
            by2("PIDPressure").reason.as_deref(),
            Some("KubeletHasInsufficientPID")
        );
        assert_eq!(by2("Ready").last_transition_time, Some(Time(t(110))));

        // Unchanged status keeps its transition time; the heartbeat moves.
        let c3 = conditions(&c2, p, &errs, t(120));
        let r3 = c3.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(r3.last_transition_time, Some(Time(t(110))));
        assert_eq!(r3.last_heartbeat_time, Some(Time(t(120))));
    }

    #[test]
    fn several_ready_errors_are_aggregated() {
        assert_eq!(
            ready_message(&["a".into(), "b".into()]).as_deref(),
            Some("[a, b]")
        );
        assert_eq!(ready_message(&[]), None);
    }

    #[test]
    fn capacity_prints_like_the_kubelet() {
        let c = Capacity {
            cpus: 2,
            memory_bytes: 24_682_416 * 1024,
            ephemeral_storage_bytes: 100 << 30,
            pods: 110,
            memory_reserved: 100 << 20,
            ephemeral_storage_reserved: 10 << 30,
        };
        let cap = c.capacity();
        assert_eq!(cap["memory"].0, "24682416Ki");
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cap["ephemeral-storage"].0, "100Gi");
        let a = c.allocatable();
        assert_eq!(a["memory"].0, "24580016Ki");
        assert_eq!(a["ephemeral-storage"].0, (90u64 << 30).to_string());
    }

    #[test]
    fn images_are_listed_biggest_first() {
        let img = |id: &str, size: u64, tags: &[&str]| crate::cri::api::Image {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            size,
            ..Default::default()
        };
        let l = images(&[
            img("a", 10, &["small:1"]),
            img("b", 30, &["big:1", "big:latest"]),
            img("c", 20, &[]),
        ]);
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0].names.as_deref(),
            Some(&["big:1".to_string(), "big:latest".to_string()][..])
        );
        assert_eq!(l[0].size_bytes, Some(30));
    }

    #[test]
    fn registration_labels() {
        let n = initial_node("n1", "host1", &BTreeMap::new(), &[]);
        let l = n.metadata.labels.expect("labels");
        assert_eq!(l["kubernetes.io/hostname"], "host1");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l["beta.kubernetes.io/arch"], super::super::host::go_arch());
        assert!(n.spec.expect("spec").taints.is_none());
    }
}
