//! kadm-scheduler flags, named like kube-scheduler's (and its KubeSchedulerConfiguration
//! fields) where they mean the same.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;
use kadm_base::leader::parse_duration;

/// Production location of the scheduler's kubeconfig.
pub const DEFAULT_KUBECONFIG: &str = "/etc/kadm/scheduler.conf";
/// kube-scheduler's health port.
pub const DEFAULT_PORT: u16 = 10259;
/// The scheduler name Kubernetes defaults `spec.schedulerName` to.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// kadm's own name, for pods that ask for this scheduler explicitly.
pub const KADM_SCHEDULER_NAME: &str = "kadm-scheduler";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kadm-scheduler",
    version = kadm_base::VERSION,
    about = "kadm's scheduler: places pending pods on nodes, with Kubernetes' default plugins"
)]
pub struct Options {
    /// Kubeconfig with the apiserver address and this component's client certificate
    /// (production: /etc/kadm/scheduler.conf).
    #[arg(long)]
    pub kubeconfig: PathBuf,

    /// Schedule only while holding the leader lease, so that one replica works.
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
    #[arg(long, default_value = "kadm-scheduler")]
    pub leader_elect_resource_name: String,

    /// Namespace of the Lease used for leader election.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,

    /// Holder identity to write into the lease (default: <hostname>_<random uuid>). Meant
    /// for tests and debugging; two replicas must never share one.
    #[arg(long, hide = true)]
    pub leader_elect_identity: Option<String>,

    /// The `spec.schedulerName` values this scheduler serves (pods without one count as
    /// `default-scheduler`). Events carry the pod's scheduler name as their source.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "default-scheduler,kadm-scheduler"
    )]
    pub scheduler_name: Vec<String>,

    /// Percentage of the nodes to find feasible before scoring (0: Kubernetes' adaptive
    /// default, 50% minus 1% per 125 nodes, at least 5%; never fewer than 100 nodes).
    #[arg(long, default_value_t = 0)]
    pub percentage_of_nodes_to_score: u32,

    /// How many threads filter and score nodes in parallel (capped at the CPU count).
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,

    /// Back-off of a pod's first failed attempt; it doubles per attempt.
    #[arg(long, default_value_t = 1)]
    pub pod_initial_backoff_seconds: u64,

    /// The longest back-off between attempts of one pod.
    #[arg(long, default_value_t = 10)]
    pub pod_max_backoff_seconds: u64,

    /// How many bindings may be in flight to the apiserver at once.
    #[arg(long, default_value_t = 64, hide = true)]
    pub concurrent_binds: usize,

    /// Address of the health endpoint (`GET /healthz`). Plain HTTP for now, so keep it on
    /// loopback: it is meant for the host supervisor's probe.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,

    /// Port of the health endpoint; 0 picks a free one.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub secure_port: u16,
}

impl Options {
    /// Checks what clap cannot: names present, back-offs ordered, percentage in range.
    pub fn validate(&self) -> crate::Result<()> {
        let invalid = |flag, reason: &str| {
            Err(crate::Error::InvalidFlag {
                flag,
                reason: reason.to_string(),
            })
        };
        if self.scheduler_name.iter().all(|n| n.trim().is_empty()) {
            return invalid("--scheduler-name", "give at least one scheduler name");
        }
        if self.percentage_of_nodes_to_score > 100 {
            return invalid(
                "--percentage-of-nodes-to-score",
                "must be between 0 and 100",
            );
        }
        if self.pod_initial_backoff_seconds == 0 {
            return invalid("--pod-initial-backoff-seconds", "must be at least 1");
        }
        if self.pod_max_backoff_seconds < self.pod_initial_backoff_seconds {
            return invalid(
                "--pod-max-backoff-seconds",
                "must not be smaller than --pod-initial-backoff-seconds",
            );
        }
        if self.parallelism == 0 || self.concurrent_binds == 0 {
            return invalid("--parallelism", "must be at least 1");
        }
        Ok(())
    }

    /// The scheduler names served, trimmed, without blanks or duplicates.
    pub fn scheduler_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for n in &self.scheduler_name {
            let n = n.trim();
            if !n.is_empty() && !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_match_kube_scheduler() {
        let o = Options::try_parse_from(["kadm-scheduler", "--kubeconfig", "/k"]).expect("parse");
        assert!(o.leader_elect);
        assert_eq!(o.leader_elect_lease_duration, Duration::from_secs(15));
        assert_eq!(o.leader_elect_renew_deadline, Duration::from_secs(10));
        assert_eq!(o.leader_elect_retry_period, Duration::from_secs(2));
        assert_eq!(o.leader_elect_resource_name, "kadm-scheduler");
        assert_eq!(o.leader_elect_resource_namespace, "kube-system");
        assert_eq!(o.secure_port, 10259);
        assert_eq!(o.bind_address.to_string(), "127.0.0.1");
        assert_eq!(o.scheduler_names(), ["default-scheduler", "kadm-scheduler"]);
        assert_eq!(o.percentage_of_nodes_to_score, 0);
        assert_eq!(o.parallelism, 16);
        assert_eq!(
            (o.pod_initial_backoff_seconds, o.pod_max_backoff_seconds),
            (1, 10)
        );
        o.validate().expect("defaults are valid");
    }

    #[test]
    fn go_style_flags_parse() {
        let o = Options::try_parse_from([
            "kadm-scheduler",
            "--kubeconfig=/k",
            "--leader-elect=false",
            "--scheduler-name=my-scheduler, other,my-scheduler",
            "--leader-elect-lease-duration=1m30s",
            "--percentage-of-nodes-to-score=30",
        ])
        .expect("parse");
        assert!(!o.leader_elect);
        assert_eq!(o.scheduler_names(), ["my-scheduler", "other"]);
        assert_eq!(o.leader_elect_lease_duration, Duration::from_secs(90));
        assert_eq!(o.percentage_of_nodes_to_score, 30);
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(Options::try_parse_from(["kadm-scheduler"]).is_err());
        let bad = |args: &[&str]| {
            let mut all = vec!["kadm-scheduler", "--kubeconfig=/k"];
            all.extend_from_slice(args);
            Options::try_parse_from(all)
                .expect("parse")
                .validate()
                .is_err()
        };
        assert!(bad(&["--percentage-of-nodes-to-score=101"]));
        assert!(bad(&["--scheduler-name= "]));
        assert!(bad(&[
            "--pod-initial-backoff-seconds=5",
            "--pod-max-backoff-seconds=2"
        ]));
    }
}
