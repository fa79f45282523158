//! Which pods back a Service, with which address, and on which port numbers — the rules
//! Kubernetes' endpoints and EndpointSlice controllers share (`ShouldPodBeInEndpoints`,
//! `FindPort`, `ShouldSetHostname`, the IP family choice).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::workload::pods;

/// The label that marks the Endpoints and EndpointSlices of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Which IP family an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of a textual IP address (anything with a colon is IPv6).
    pub fn of(ip: &str) -> Self {
        if ip.contains(':') {
            Family::V6
        } else {
            Family::V4
        }
    }

    /// Kubernetes' `addressType` for EndpointSlices of this family.
    pub fn address_type(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The pod-selecting part of a Service: `None` for Services that select nothing
/// (no or an empty selector — Kubernetes drops empty maps, so both mean "no selector"),
/// which this controller leaves alone, and for `ExternalName` Services.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `labels` carry every key/value of a Service selector.
pub fn selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Kubernetes' `ShouldPodBeInEndpoints`: not finished, has an IP, and not terminating
/// unless `include_terminating`.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pods::phase(pod);
    if phase == pods::PHASE_SUCCEEDED || phase == pods::PHASE_FAILED {
        return false;
    }
    let has_ip = pod.status.as_ref().is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    has_ip && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// Whether a Service has a cluster IP (Kubernetes' `IsServiceIPSet`).
pub fn has_cluster_ip(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The IP family a Service's endpoints use: its first `ipFamilies` entry, else the family
/// of its cluster IP, else that of the pod's primary IP.
pub fn service_family(svc: &Service, pod: &Pod) -> Family {
    let spec = svc.spec.as_ref();
    if let Some(f) = spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        return if f == "IPv6" { Family::V6 } else { Family::V4 };
    }
    if has_cluster_ip(svc)
        && let Some(ip) = spec.and_then(|s| s.cluster_ip.as_deref())
    {
        return Family::of(ip);
    }
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .map_or(Family::V4, Family::of)
}

/// The pod's address in `family`, from `status.podIPs` (or `podIP` when the list is empty).
pub fn pod_ip(pod: &Pod, family: Family) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.as_deref().unwrap_or_default();
    if listed.is_empty() {
        return status
            .pod_ip
            .clone()
            .filter(|ip| !ip.is_empty() && Family::of(ip) == family);
    }
    listed
        .iter()
        .map(|p| p.ip.clone())
        .find(|ip| !ip.is_empty() && Family::of(ip) == family)
}

/// Kubernetes' `ShouldSetHostname`: the pod names a hostname and this Service as its
/// subdomain.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace()
}

fn protocol(p: Option<&str>) -> &str {
    p.unwrap_or("TCP")
}

/// Kubernetes' `FindPort`: the container port a Service port's `targetPort` means for this
/// pod. A number is taken as is; a name is looked up (with the same protocol) in the
/// containers, then in sidecars (init containers with `restartPolicy: Always`). `None`
/// when the pod has no such named port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let target = port
        .target_port
        .clone()
        .unwrap_or(IntOrString::Int(port.port));
    let name = match target {
        IntOrString::Int(n) => return Some(n),
        IntOrString::String(s) => s,
    };
    let spec = pod.spec.as_ref()?;
    let proto = protocol(port.protocol.as_deref());
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name.as_str()) && protocol(p.protocol.as_deref()) == proto
        })
        .map(|p| p.container_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("service")
    }

    fn sport(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).expect("port")
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let p = pod(json!({"spec": {
            "containers": [{"name": "a", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                {"name": "init", "ports": [{"name": "setup", "containerPort": 1}]}]
        }}));
        let find = |v| find_port(&p, &sport(v));
        assert_eq!(find(json!({"port": 80, "targetPort": "http"})), Some(8080));
        assert_eq!(
            find(json!({"port": 80, "targetPort": "http", "protocol": "UDP"})),
            None
        );
        assert_eq!(
            find(json!({"port": 53, "targetPort": "dns", "protocol": "UDP"})),
            Some(5353)
        );
        assert_eq!(
            find(json!({"port": 1, "targetPort": "metrics"})),
            Some(9090)
        );
        // Plain init containers do not serve.
        assert_eq!(find(json!({"port": 1, "targetPort": "setup"})), None);
        assert_eq!(find(json!({"port": 80, "targetPort": 3000})), Some(3000));
        assert_eq!(find(json!({"port": 80})), Some(80));
        assert_eq!(find(json!({"port": 80, "targetPort": "missing"})), None);
    }

    #[test]
    fn membership_excludes_finished_ipless_and_terminating_pods() {
        let base = json!({"status": {"phase": "Running", "podIP": "10.0.0.1"}});
        assert!(should_be_in_endpoints(&pod(base.clone()), false));
        assert!(!should_be_in_endpoints(
            &pod(json!({"status": {"phase": "Running"}})),
            true
        ));
        assert!(!should_be_in_endpoints(
            &pod(json!({"status": {"phase": "Succeeded", "podIP": "10.0.0.1"}})),
            true
        ));
        let terminating = pod(
            json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}}),
        );
        assert!(!should_be_in_endpoints(&terminating, false));
        assert!(should_be_in_endpoints(&terminating, true));
    }

    #[test]
    fn selectors_hostnames_and_families() {
        let s = svc(json!({"metadata": {"name": "db", "namespace": "n"},
            "spec": {"selector": {"app": "db"}, "clusterIP": "None"}}));
        let sel = selector(&s).expect("selector");
        let labels: BTreeMap<String, String> = [
            ("app".to_string(), "db".to_string()),
            ("x".into(), "y".into()),
        ]
        .into();
        assert!(selects(sel, Some(&labels)));
        assert!(!selects(sel, None));
        assert!(!has_cluster_ip(&s));
        assert!(selector(&svc(json!({"spec": {"selector": {}}}))).is_none());
        assert!(
            selector(&svc(
                json!({"spec": {"type": "ExternalName", "selector": {"a": "b"}}})
            ))
            .is_none()
        );

        let p = pod(json!({"metadata": {"namespace": "n"},
            "spec": {"hostname": "db-0", "subdomain": "db", "containers": []},
            "status": {"podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}]}}));
        assert!(should_set_hostname(&p, &s));
        assert_eq!(service_family(&s, &p), Family::V4);
        assert_eq!(pod_ip(&p, Family::V6).as_deref(), Some("fd00::7"));
        let v6 = svc(json!({"metadata": {"name": "db", "namespace": "n"},
            "spec": {"ipFamilies": ["IPv6"]}}));
        assert_eq!(service_family(&v6, &p), Family::V6);
    }
}
