//! From a Pod to CRI configs: the sandbox (hostname, log directory, DNS, port mappings,
//! cgroup parent, Linux namespaces and security context) and each container (command and
//! args, environment, working dir, log path, resources as Linux cgroup values, security
//! context), with the values Kubernetes' kubelet computes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use kadm_apimachinery::quantity::Quantity;

use super::labels;
use crate::cri::api;
use crate::options::CgroupDriver;

/// Node-wide settings pod configs depend on.
#[derive(Debug, Clone)]
pub struct PodSettings {
    pub pod_log_dir: PathBuf,
    pub cgroup_driver: CgroupDriver,
    pub cgroup_root: String,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The resolver config for dnsPolicy Default (its parsed content).
    pub host_dns: api::DnsConfig,
    pub node_hostname: String,
}

/// Kubernetes' QoS classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

type ResourceMap = Option<
    std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
>;

fn quantity(m: &ResourceMap, k: &str) -> Option<Quantity> {
    m.as_ref()?.get(k).and_then(|q| Quantity::parse(&q.0).ok())
}

/// The pod's QoS class (only cpu and memory count, as in Kubernetes).
pub fn qos_class(pod: &Pod) -> Qos {
    let Some(spec) = &pod.spec else {
        return Qos::BestEffort;
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        let r = c.resources.clone().unwrap_or_default();
        for k in ["cpu", "memory"] {
            let req = quantity(&r.requests, k).filter(|q| !q.is_zero());
            let lim = quantity(&r.limits, k).filter(|q| !q.is_zero());
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        Qos::BestEffort
    } else if guaranteed {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

/// The pod's cgroup parent for the runtime: `/kubepods/burstable/pod<uid>` (cgroupfs) or
/// `kubepods-burstable-pod<uid>.slice` (systemd).
pub fn cgroup_parent(pod: &Pod, settings: &PodSettings) -> String {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let qos = match qos_class(pod) {
        Qos::Guaranteed => None,
        Qos::Burstable => Some("burstable"),
        Qos::BestEffort => Some("besteffort"),
    };
    match settings.cgroup_driver {
        CgroupDriver::Cgroupfs => {
            let root = settings.cgroup_root.trim_end_matches('/');
            match qos {
                Some(q) => format!("{root}/kubepods/{q}/pod{uid}"),
                None => format!("{root}/kubepods/pod{uid}"),
            }
        }
        CgroupDriver::Systemd => {
            let uid = uid.replace('-', "_");
            match qos {
                Some(q) => format!("kubepods-{q}-pod{uid}.slice"),
                None => format!("kubepods-pod{uid}.slice"),
            }
        }
    }
}

/// `/var/log/pods/<namespace>_<name>_<uid>`.
pub fn log_directory(pod: &Pod, settings: &PodSettings) -> PathBuf {
    settings.pod_log_dir.join(format!(
        "{}_{}_{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    ))
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's hostname: `spec.hostname`, else its name cut to 63 characters. Host-network
/// sandboxes get none (they share the node's UTS namespace, where runc cannot set one).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = spec
        .hostname
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

/// Parses resolv.conf content into a DNS config.
pub fn parse_resolv_conf(content: &str) -> api::DnsConfig {
    let mut dns = api::DnsConfig::default();
    for line in content.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => dns.servers.extend(f.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                dns.searches = f.map(str::to_string).collect();
            }
            Some("options") => dns.options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    dns.servers.truncate(3);
    dns
}

/// The DNS config of the pod's sandbox by its dnsPolicy and dnsConfig.
pub fn dns_config(pod: &Pod, settings: &PodSettings) -> api::DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    if policy == "ClusterFirst" && host_network(pod) {
        policy = "Default".into();
    }
    if policy == "ClusterFirstWithHostNet" {
        policy = "ClusterFirst".into();
    }
    if policy == "ClusterFirst" && settings.cluster_dns.is_empty() {
        // No cluster DNS configured: the kubelet falls back to the host's resolver.
        policy = "Default".into();
    }
    let mut dns = match policy.as_str() {
        "None" => api::DnsConfig::default(),
        "ClusterFirst" => {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let d = &settings.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(settings.host_dns.searches.iter().cloned());
            api::DnsConfig {
                servers: settings.cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => settings.host_dns.clone(),
    };
    if let Some(c) = spec.dns_config {
        dns.servers.extend(c.nameservers.unwrap_or_default());
        dns.searches.extend(c.searches.unwrap_or_default());
        for o in c.options.unwrap_or_default() {
            let name = o.name.unwrap_or_default();
            dns.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            dns.options.push(match o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    dns.searches.retain(|s| seen.insert(s.clone()));
    dns.searches.truncate(32);
    dns
}

fn namespace_options(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.clone().unwrap_or_default();
    let mode = |host: Option<bool>, default: api::NamespaceMode| {
        if host.unwrap_or(false) {
            api::NamespaceMode::Node as i32
        } else {
            default as i32
        }
    };
    let pid_default = if spec.share_process_namespace.unwrap_or(false) {
        api::NamespaceMode::Pod
    } else {
        api::NamespaceMode::Container
    };
    api::NamespaceOption {
        network: mode(spec.host_network, api::NamespaceMode::Pod),
        pid: mode(spec.host_pid, pid_default),
        ipc: mode(spec.host_ipc, api::NamespaceMode::Pod),
        ..Default::default()
    }
}

fn seccomp(profile: Option<&k8s_openapi::api::core::v1::SeccompProfile>) -> api::SecurityProfile {
    use api::security_profile::ProfileType;
    match profile {
        Some(p) if p.type_ == "RuntimeDefault" => api::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        },
        Some(p) if p.type_ == "Localhost" => api::SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: p.localhost_profile.clone().unwrap_or_default(),
        },
        _ => api::SecurityProfile {
            profile_type: ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        },
    }
}

/// The sandbox config for attempt `attempt` of the pod.
pub fn sandbox_config(pod: &Pod, attempt: u32, settings: &PodSettings) -> api::PodSandboxConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc: PodSecurityContext = spec.security_context.clone().unwrap_or_default();
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            if p.host_port.unwrap_or(0) == 0 {
                continue;
            }
            let protocol = match p.protocol.as_deref() {
                Some("UDP") => api::Protocol::Udp,
                Some("SCTP") => api::Protocol::Sctp,
                _ => api::Protocol::Tcp,
            };
            port_mappings.push(api::PortMapping {
                protocol: protocol as i32,
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let privileged = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let mut groups: Vec<i64> = psc.supplemental_groups.clone().unwrap_or_default();
    if let Some(g) = psc.fs_group {
        groups.push(g);
    }
    let sysctls: HashMap<String, String> = psc
        .sysctls
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname: if host_network(pod) {
            String::new()
        } else {
            hostname(pod)
        },
        log_directory: log_directory(pod, settings).display().to_string(),
        dns_config: Some(dns_config(pod, settings)),
        port_mappings,
        labels: labels::sandbox_labels(pod),
        annotations: labels::sandbox_annotations(pod),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(pod, settings),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod)),
                run_as_user: psc.run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| api::Int64Value { value }),
                supplemental_groups: groups,
                privileged,
                seccomp: Some(seccomp(psc.seccomp_profile.as_ref())),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

/// The kernel's minimum and maximum cpu shares, and the CFS period Kubernetes uses.
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const QUOTA_PERIOD: i64 = 100_000;
const MIN_QUOTA: i64 = 1000;

fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// Kubernetes' OOM score adjustment by QoS class and memory request.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    match qos_class(pod) {
        Qos::Guaranteed => -997,
        Qos::BestEffort => 1000,
        Qos::Burstable => {
            let r = container.resources.clone().unwrap_or_default();
            let request = quantity(&r.requests, "memory").map_or(0, |q| q.value());
            if memory_capacity <= 0 {
                return 999;
            }
            let adj = 1000 - (1000 * request) / memory_capacity;
            if adj < 3 {
                3
            } else if adj >= 1000 {
                999
            } else {
                adj
            }
        }
    }
}

/// Requests and limits as Linux cgroup values.
pub fn linux_resources(
    pod: &Pod,
    container: &Container,
    memory_capacity: i64,
) -> api::LinuxContainerResources {
    let r = container.resources.clone().unwrap_or_default();
    let cpu_request = quantity(&r.requests, "cpu").map_or(0, |q| q.milli_value());
    let cpu_limit = quantity(&r.limits, "cpu").map_or(0, |q| q.milli_value());
    let memory_limit = quantity(&r.limits, "memory").map_or(0, |q| q.value());
    let cpu_shares = if cpu_request == 0 && cpu_limit != 0 {
        milli_cpu_to_shares(cpu_limit)
    } else {
        milli_cpu_to_shares(cpu_request)
    };
    let (cpu_period, cpu_quota) = if cpu_limit > 0 {
        (
            QUOTA_PERIOD,
            (cpu_limit * QUOTA_PERIOD / 1000).max(MIN_QUOTA),
        )
    } else {
        (0, 0)
    };
    api::LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(pod, container, memory_capacity),
        ..Default::default()
    }
}

/// The paths Kubernetes masks and makes read-only in unprivileged containers.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn container_security(pod: &Pod, container: &Container) -> api::LinuxContainerSecurityContext {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc: SecurityContext = container.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let unmasked = sc.proc_mount.as_deref() == Some("Unmasked");
    let caps = sc.capabilities.clone().unwrap_or_default();
    let mut groups: Vec<i64> = psc.supplemental_groups.clone().unwrap_or_default();
    if let Some(g) = psc.fs_group {
        groups.push(g);
    }
    api::LinuxContainerSecurityContext {
        capabilities: Some(api::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..Default::default()
        }),
        privileged,
        namespace_options: Some(namespace_options(pod)),
        run_as_user: sc
            .run_as_user
            .or(psc.run_as_user)
            .map(|value| api::Int64Value { value }),
        run_as_group: sc
            .run_as_group
            .or(psc.run_as_group)
            .map(|value| api::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: groups,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: if privileged || unmasked {
            vec![]
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if privileged || unmasked {
            vec![]
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        },
        seccomp: Some(seccomp(
            sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref()),
        )),
        ..Default::default()
    }
}

/// The container config for its `restart_count`-th run with a resolved environment and the
/// image reference the runtime resolved.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    restart_count: i32,
    image_ref: &str,
    env: &[(String, String)],
    memory_capacity: i64,
) -> api::ContainerConfig {
    let count = u32::try_from(restart_count).unwrap_or(0);
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: container.name.clone(),
            attempt: count,
        }),
        image: Some(api::ImageSpec {
            image: image_ref.to_string(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: super::env::expand_all(&container.command.clone().unwrap_or_default(), env),
        args: super::env::expand_all(&container.args.clone().unwrap_or_default(), env),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env
            .iter()
            .map(|(k, v)| api::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        labels: labels::container_labels(pod, container),
        annotations: labels::container_annotations(pod, container, restart_count),
        log_path: format!("{}/{}.log", container.name, count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(linux_resources(pod, container, memory_capacity)),
            security_context: Some(container_security(pod, container)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> PodSettings {
        PodSettings {
            pod_log_dir: "/var/log/pods".into(),
            cgroup_driver: CgroupDriver::Cgroupfs,
            cgroup_root: "/".into(),
            cluster_dns: vec!["10.96.0.10".parse().expect("ip")],
            cluster_domain: "cluster.local".into(),
            host_dns: parse_resolv_conf(
                "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n",
            ),
            node_hostname: "node1".into(),
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "1234-5678"},
            "spec": spec
        }))
        .expect("pod")
    }

    #[test]
    fn qos_classes_and_cgroup_parents() {
        let be = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(qos_class(&be), Qos::BestEffort);
        assert_eq!(
            cgroup_parent(&be, &settings()),
            "/kubepods/besteffort/pod1234-5678"
        );
        let g = pod(
            json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
        );
        assert_eq!(qos_class(&g), Qos::Guaranteed);
        assert_eq!(cgroup_parent(&g, &settings()), "/kubepods/pod1234-5678");
        let b =
            pod(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}));
        assert_eq!(qos_class(&b), Qos::Burstable);
        let mut s = settings();
        s.cgroup_driver = CgroupDriver::Systemd;
        assert_eq!(
            cgroup_parent(&b, &s),
            "kubepods-burstable-pod1234_5678.slice"
        );
    }

    #[test]
    fn resources_become_cgroup_values() {
        let p = pod(json!({"containers": [{"name": "c", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"}}}]}));
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let r = linux_resources(&p, c, 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 50_000));
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.oom_score_adj, 1000 - (1000 * (64 << 20)) / (1 << 30));
        let be = pod(json!({"containers": [{"name": "c"}]}));
        let r = linux_resources(&be, &be.spec.as_ref().expect("spec").containers[0], 1 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.oom_score_adj), (2, 0, 1000));
    }

    #[test]
    fn sandbox_config_carries_the_pod() {
        let p = pod(json!({"containers": [{"name": "c", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "protocol": "UDP"}]}],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}));
        let s = sandbox_config(&p, 1, &settings());
        let m = s.metadata.expect("metadata");
        assert_eq!(
            (
                m.name.as_str(),
                m.namespace.as_str(),
                m.uid.as_str(),
                m.attempt
            ),
            ("web", "ns", "1234-5678", 1)
        );
        assert_eq!(s.hostname, "web");
        assert_eq!(s.log_directory, "/var/log/pods/ns_web_1234-5678");
        assert_eq!(s.port_mappings.len(), 1);
        assert_eq!(
            (
                s.port_mappings[0].container_port,
                s.port_mappings[0].host_port
            ),
            (80, 8080)
        );
        let dns = s.dns_config.expect("dns");
        assert_eq!(dns.servers, ["10.96.0.10"]);
        assert_eq!(
            dns.searches,
            [
                "ns.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.org"
            ]
        );
        assert_eq!(dns.options, ["ndots:2"]);
        let ns = s
            .linux
            .expect("linux")
            .security_context
            .expect("sc")
            .namespace_options
            .expect("ns");
        assert_eq!(ns.network, api::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, api::NamespaceMode::Container as i32);

        let hn = pod(json!({"hostNetwork": true, "containers": [{"name": "c"}]}));
        let s = sandbox_config(&hn, 0, &settings());
        assert_eq!(s.hostname, "", "the node's UTS namespace keeps its name");
        assert_eq!(
            s.dns_config.expect("dns").servers,
            ["192.0.2.53"],
            "hostNetwork ClusterFirst is Default"
        );
        let ns = s
            .linux
            .expect("linux")
            .security_context
            .expect("sc")
            .namespace_options
            .expect("ns");
        assert_eq!(ns.network, api::NamespaceMode::Node as i32);
    }

    #[test]
    fn container_config_carries_the_container() {
        let p = pod(json!({"containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c"], "args": ["echo $(GREETING)"], "workingDir": "/tmp",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"]}}}]}));
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let cfg = container_config(
            &p,
            c,
            2,
            "sha256:abc",
            &[("GREETING".into(), "hi".into())],
            1 << 30,
        );
        assert_eq!(cfg.metadata.as_ref().expect("meta").attempt, 2);
        assert_eq!(cfg.log_path, "c/2.log");
        assert_eq!(cfg.command, ["sh", "-c"]);
        assert_eq!(cfg.args, ["echo hi"]);
        assert_eq!(cfg.working_dir, "/tmp");
        let img = cfg.image.expect("image");
        assert_eq!(
            (img.image.as_str(), img.user_specified_image.as_str()),
            ("sha256:abc", "busybox")
        );
        assert_eq!(cfg.labels[labels::CONTAINER_NAME], "c");
        let sc = cfg.linux.expect("linux").security_context.expect("sc");
        assert!(sc.no_new_privs);
        assert_eq!(
            sc.capabilities.expect("caps").add_capabilities,
            ["NET_ADMIN"]
        );
        assert!(sc.masked_paths.contains(&"/proc/kcore".to_string()));
    }
}
