//! kadm-kubelet flags, named like the kubelet's where they mean the same.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;
use kadm_base::leader::parse_duration;

use crate::error::{Error, Result};

/// Production location of the kubelet's kubeconfig.
pub const DEFAULT_KUBECONFIG: &str = "/etc/kadm/kubelet.conf";

/// How the runtime names cgroups; must match containerd's `SystemdCgroup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kadm-kubelet",
    version = kadm_base::VERSION,
    about = "kadm's node agent: registers the node and runs its pods through containerd (CRI)"
)]
pub struct Options {
    /// Kubeconfig with the apiserver address and this node's client certificate
    /// (user system:node:<name>, group system:nodes; production: /etc/kadm/kubelet.conf).
    #[arg(long)]
    pub kubeconfig: PathBuf,

    /// The Node's name (default: the host name, lower-cased).
    #[arg(long = "hostname-override", visible_alias = "node-name")]
    pub node_name: Option<String>,

    /// The CRI endpoint of the container runtime.
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    pub container_runtime_endpoint: String,

    /// The kubelet's own state (pod directories).
    #[arg(long, default_value = "/var/lib/kadm-kubelet")]
    pub root_dir: PathBuf,

    /// Where container logs go: `<dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
    #[arg(long, default_value = "/var/log/pods", hide = true)]
    pub pod_log_dir: PathBuf,

    /// The directory containerd reads its CNI config from; the kubelet writes the node's
    /// conflist there once the node has a pod CIDR.
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,

    /// Take the pod CIDR from the Node's `spec.podCIDR` (assigned by the node IPAM
    /// controller) and write the CNI config for it.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub pod_cidr_from_node: bool,

    /// The address reported as the node's InternalIP (default: the address of the
    /// interface holding the default route, else the first non-loopback address).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,

    /// Extra labels for the Node at registration (`key=value,…`).
    #[arg(long, value_delimiter = ',')]
    pub node_labels: Vec<String>,

    /// Taints the Node is registered with (`key=value:Effect,…` or `key:Effect`).
    #[arg(long, value_delimiter = ',')]
    pub register_with_taints: Vec<String>,

    /// How often the node status is computed (and posted when it changed).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub node_status_update_frequency: Duration,

    /// How often an unchanged node status is posted anyway.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub node_status_report_frequency: Duration,

    /// The Lease's `leaseDurationSeconds`; it is renewed every quarter of it.
    #[arg(long, default_value_t = 40)]
    pub node_lease_duration_seconds: i32,

    /// Maximum pods on this node (the `pods` capacity).
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,

    /// The cgroup driver; must match containerd's (SystemdCgroup).
    #[arg(long, value_enum, default_value = "cgroupfs")]
    pub cgroup_driver: CgroupDriver,

    /// The cgroup all pods live under (`<root>/kubepods/…`).
    #[arg(long, default_value = "/")]
    pub cgroup_root: String,

    /// Cluster DNS server addresses for pods with dnsPolicy ClusterFirst.
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Vec<IpAddr>,

    /// The cluster's DNS domain, searched by pods with cluster DNS.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,

    /// The resolver config pods with dnsPolicy Default (or without cluster DNS) get.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,

    /// The CNI bridge the pods of this node attach to (one per host; tests use their own).
    #[arg(long, default_value = "kadm0", hide = true)]
    pub cni_bridge: String,

    /// Where host-local IPAM keeps its allocations (default: the CNI plugins' own
    /// /var/lib/cni/networks).
    #[arg(long, hide = true)]
    pub cni_ipam_data_dir: Option<PathBuf>,

    /// Hard eviction thresholds; the pressure conditions are measured against them and
    /// allocatable is capacity minus them (memory, ephemeral-storage).
    #[arg(
        long,
        default_value = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%"
    )]
    pub eviction_hard: String,

    /// How long a pressure condition stays True after the pressure went away.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub eviction_pressure_transition_period: Duration,

    /// The filesystem holding images (imagefs): containerd's root.
    #[arg(long, default_value = "/var/lib/containerd", hide = true)]
    pub image_fs_dir: PathBuf,

    /// Address of the plain-HTTP `/healthz` endpoint (for the host supervisor's probe).
    #[arg(long, default_value = "127.0.0.1")]
    pub healthz_bind_address: IpAddr,

    /// Port of `/healthz`; 0 disables it.
    #[arg(long, default_value_t = 10248)]
    pub healthz_port: u16,

    /// How often the runtime is relisted to notice container state changes.
    #[arg(long, default_value = "1s", value_parser = parse_duration, hide = true)]
    pub relist_period: Duration,

    /// The first back-off after a container crash; it doubles to the maximum.
    #[arg(long, default_value = "10s", value_parser = parse_duration, hide = true)]
    pub crash_backoff_initial: Duration,

    /// The longest back-off between restarts of a crashing container.
    #[arg(long, default_value = "5m", value_parser = parse_duration, hide = true)]
    pub crash_backoff_max: Duration,
}

impl Options {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<()> {
        let invalid = |flag, reason: &str| {
            Err(Error::InvalidFlag {
                flag,
                reason: reason.to_string(),
            })
        };
        if self.node_lease_duration_seconds < 4 {
            return invalid("--node-lease-duration-seconds", "must be at least 4");
        }
        if self.node_status_update_frequency.is_zero() {
            return invalid("--node-status-update-frequency", "must be positive");
        }
        if self.node_status_report_frequency < self.node_status_update_frequency {
            return invalid(
                "--node-status-report-frequency",
                "must not be shorter than --node-status-update-frequency",
            );
        }
        if self.max_pods == 0 {
            return invalid("--max-pods", "must be at least 1");
        }
        if !self.cgroup_root.starts_with('/') {
            return invalid("--cgroup-root", "must be an absolute cgroup path like /");
        }
        if self.relist_period.is_zero() || self.crash_backoff_initial.is_zero() {
            return invalid("--relist-period", "periods must be positive");
        }
        if self.cni_bridge.is_empty() || self.cni_bridge.len() > 15 {
            return invalid(
                "--cni-bridge",
                "must be 1 to 15 characters (a Linux interface name)",
            );
        }
        crate::node::pressure::parse_thresholds(&self.eviction_hard).map_err(|reason| {
            Error::InvalidFlag {
                flag: "--eviction-hard",
                reason,
            }
        })?;
        for l in &self.node_labels {
            if !l.contains('=') {
                return invalid("--node-labels", "give key=value pairs");
            }
        }
        for t in &self.register_with_taints {
            crate::node::parse_taint(t).map_err(|reason| Error::InvalidFlag {
                flag: "--register-with-taints",
                reason,
            })?;
        }
        Ok(())
    }

    /// The node name: the flag, else the host name, lower-cased as the kubelet does.
    pub fn node_name(&self) -> Result<String> {
        match &self.node_name {
            Some(n) if !n.trim().is_empty() => Ok(n.trim().to_lowercase()),
            _ => crate::node::host::hostname().map(|h| h.to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_match_the_kubelet() {
        let o = Options::try_parse_from(["kadm-kubelet", "--kubeconfig", "/k"]).expect("parse");
        assert_eq!(
            o.container_runtime_endpoint,
            "unix:///run/containerd/containerd.sock"
        );
        assert_eq!(o.node_status_update_frequency, Duration::from_secs(10));
        assert_eq!(o.node_status_report_frequency, Duration::from_secs(300));
        assert_eq!(o.node_lease_duration_seconds, 40);
        assert_eq!(o.max_pods, 110);
        assert_eq!(o.cgroup_driver, CgroupDriver::Cgroupfs);
        assert_eq!(o.crash_backoff_initial, Duration::from_secs(10));
        assert_eq!(o.crash_backoff_max, Duration::from_secs(300));
        assert!(o.pod_cidr_from_node);
        o.validate().expect("defaults are valid");
    }

    #[test]
    fn node_name_flag_and_taints_parse() {
        let o = Options::try_parse_from([
            "kadm-kubelet",
            "--kubeconfig=/k",
            "--node-name=Worker-1",
            "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule",
            "--node-ip=127.0.0.1",
        ])
        .expect("parse");
        assert_eq!(o.node_name().expect("name"), "worker-1");
        o.validate().expect("valid");
        let bad = Options::try_parse_from([
            "kadm-kubelet",
            "--kubeconfig=/k",
            "--register-with-taints=a:Sometimes",
        ])
        .expect("parse");
        assert!(bad.validate().is_err());
    }
}
