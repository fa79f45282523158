//! kadm-controller-manager flags, named like kube-controller-manager's where they mean the same.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;
use kadm_base::leader::parse_duration;

/// Production location of the controller manager's kubeconfig.
pub const DEFAULT_KUBECONFIG: &str = "/etc/kadm/controller-manager.conf";
/// kube-controller-manager's health port.
pub const DEFAULT_PORT: u16 = 10257;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kadm-controller-manager",
    version = kadm_base::VERSION,
    about = "kadm's controller manager: the control loops that move the cluster toward what its objects declare"
)]
pub struct Options {
    /// Kubeconfig with the apiserver address and this component's client certificate
    /// (production: /etc/kadm/controller-manager.conf).
    #[arg(long)]
    pub kubeconfig: PathBuf,

    /// Controllers to run: `*` runs every controller that is on by default, `foo` enables
    /// foo, `-foo` disables foo. Known: namespace-controller (alias namespace),
    /// garbage-collector-controller (alias garbagecollector).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// Run the controllers only while holding the leader lease, so that one replica works.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub leader_elect: bool,

    /// How long standby replicas wait after the leader's last renewal before taking over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,

    /// How long the leader keeps trying to renew before it steps down (and exits).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,

    /// How long to wait between attempts to acquire or renew the lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,

    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "kadm-controller-manager")]
    pub leader_elect_resource_name: String,

    /// Namespace of the Lease used for leader election.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,

    /// Holder identity to write into the lease (default: <hostname>_<random uuid>). Meant
    /// for tests and debugging; two replicas must never share one.
    #[arg(long, hide = true)]
    pub leader_elect_identity: Option<String>,

    /// How often every namespace is looked at again even when nothing changed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub namespace_sync_period: Duration,

    /// How many namespaces are processed at the same time.
    #[arg(long, default_value_t = 10)]
    pub concurrent_namespace_syncs: u16,

    /// Run the garbage collector (with `garbage-collector-controller` enabled). Keep it in
    /// step with the apiserver: without it, orphan and foreground deletions never finish.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub enable_garbage_collector: bool,

    /// How many objects the garbage collector processes at the same time.
    #[arg(long, default_value_t = 20)]
    pub concurrent_gc_syncs: u16,

    /// How many ReplicaSets are synced at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_replicaset_syncs: u16,

    /// How many Deployments are synced at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_deployment_syncs: u16,

    /// How many DaemonSets are synced at the same time.
    #[arg(long, default_value_t = 2)]
    pub concurrent_daemonset_syncs: u16,

    /// How many StatefulSets are synced at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_statefulset_syncs: u16,

    /// How many Services the endpoints controller syncs at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_endpoint_syncs: u16,

    /// How many Services the EndpointSlice controller syncs at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: u16,

    /// Most endpoints in one EndpointSlice (1–1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_endpoints_per_slice: u16,

    /// How many Jobs are synced at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_job_syncs: u16,

    /// How many CronJobs are synced at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_cron_job_syncs: u16,

    /// How many finished Jobs the TTL-after-finished controller looks at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: u16,

    /// First delay before a Job replaces a failed pod; it doubles per failure (Kubernetes'
    /// fixed 10s). For tests.
    #[arg(long, hide = true, default_value = "10s", value_parser = parse_duration)]
    pub job_pod_failure_backoff: Duration,

    /// Longest delay before a Job replaces a failed pod (Kubernetes' fixed 10m). For tests.
    #[arg(long, hide = true, default_value = "10m", value_parser = parse_duration)]
    pub job_pod_failure_backoff_max: Duration,

    /// How often the node lifecycle controller looks at every node's health.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,

    /// How long a node may go without renewing its Lease (or posting status) before its
    /// conditions become Unknown and it is tainted unreachable. Keep it several times the
    /// kubelet's lease renewal interval (10s).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,

    /// How long a node that never posted Ready may take before it is marked Unknown.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,

    /// The CA bundle published as `kube-root-ca.crt` in every namespace (default: the CA
    /// the kubeconfig trusts for the apiserver).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,

    /// How often every ResourceQuota is recounted even when nothing changed.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resource_quota_sync_period: Duration,

    /// How many ResourceQuotas are recounted at the same time.
    #[arg(long, default_value_t = 5)]
    pub concurrent_resource_quota_syncs: u16,

    /// Give nodes pod CIDRs from --cluster-cidr (node-ipam-controller). On by default in
    /// kadm, whose clusters always have a pod network range; Kubernetes defaults to false.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub allocate_node_cidrs: bool,

    /// The pod network: one CIDR, or an IPv4 and an IPv6 CIDR for dual-stack.
    #[arg(long, value_delimiter = ',', default_value = "10.244.0.0/16")]
    pub cluster_cidr: Vec<String>,

    /// Prefix length of each node's pod CIDR (single-stack; the per-family flags win).
    #[arg(long)]
    pub node_cidr_mask_size: Option<u8>,

    /// Prefix length of each node's IPv4 pod CIDR (default 24).
    #[arg(long)]
    pub node_cidr_mask_size_ipv4: Option<u8>,

    /// Prefix length of each node's IPv6 pod CIDR (default 64).
    #[arg(long)]
    pub node_cidr_mask_size_ipv6: Option<u8>,

    /// Address of the health endpoint (`GET /healthz`). Plain HTTP for now, so keep it on
    /// loopback: it is meant for the host supervisor's probe.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,

    /// Port of the health endpoint; 0 picks a free one.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub secure_port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_match_kube_controller_manager() {
        let o = Options::try_parse_from(["kadm-controller-manager", "--kubeconfig", "/k"])
            .expect("parse");
        assert!(o.leader_elect);
        assert_eq!(o.controllers, vec!["*"]);
        assert_eq!(o.leader_elect_lease_duration, Duration::from_secs(15));
        assert_eq!(o.leader_elect_renew_deadline, Duration::from_secs(10));
        assert_eq!(o.leader_elect_retry_period, Duration::from_secs(2));
        assert_eq!(o.namespace_sync_period, Duration::from_secs(300));
        assert_eq!(o.secure_port, 10257);
        assert!(o.enable_garbage_collector);
        assert_eq!(o.concurrent_gc_syncs, 20);
        assert_eq!(o.bind_address.to_string(), "127.0.0.1");
    }

    #[test]
    fn go_style_flags_parse() {
        let o = Options::try_parse_from([
            "kadm-controller-manager",
            "--kubeconfig=/k",
            "--leader-elect=false",
            "--controllers=*,-namespace",
            "--leader-elect-lease-duration=1m30s",
            "--enable-garbage-collector=false",
            "--concurrent-gc-syncs=5",
        ])
        .expect("parse");
        assert!(!o.enable_garbage_collector);
        assert_eq!(o.concurrent_gc_syncs, 5);
        assert!(!o.leader_elect);
        assert_eq!(o.controllers, vec!["*", "-namespace"]);
        assert_eq!(o.leader_elect_lease_duration, Duration::from_secs(90));
        let bare = Options::try_parse_from([
            "kadm-controller-manager",
            "--kubeconfig=/k",
            "--leader-elect",
        ])
        .expect("bare flag");
        assert!(bare.leader_elect);
    }

    #[test]
    fn node_controller_flags() {
        let d = Options::try_parse_from(["kadm-controller-manager", "--kubeconfig=/k"])
            .expect("defaults");
        assert_eq!(d.node_monitor_period, Duration::from_secs(5));
        assert_eq!(d.node_monitor_grace_period, Duration::from_secs(40));
        assert_eq!(d.node_startup_grace_period, Duration::from_secs(60));
        assert_eq!(d.cluster_cidr, vec!["10.244.0.0/16"]);
        assert!(d.allocate_node_cidrs);
        let o = Options::try_parse_from([
            "kadm-controller-manager",
            "--kubeconfig=/k",
            "--node-monitor-grace-period=4s",
            "--cluster-cidr=10.100.0.0/22,fd00::/56",
            "--node-cidr-mask-size=26",
            "--allocate-node-cidrs=false",
        ])
        .expect("parse");
        assert_eq!(o.node_monitor_grace_period, Duration::from_secs(4));
        assert_eq!(o.cluster_cidr, vec!["10.100.0.0/22", "fd00::/56"]);
        assert_eq!(o.node_cidr_mask_size, Some(26));
        assert!(!o.allocate_node_cidrs);
    }

    #[test]
    fn kubeconfig_is_required() {
        assert!(Options::try_parse_from(["kadm-controller-manager"]).is_err());
    }
}
