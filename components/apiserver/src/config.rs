//! kadm-apiserver flags, named like kube-apiserver's where they mean the same.

use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "kadm-apiserver", version = kadm_base::VERSION, about = "kadm's Kubernetes API server")]
pub struct Config {
    /// etcd endpoints, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "https://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
    /// Serving certificate.
    #[arg(long)]
    pub tls_cert_file: PathBuf,
    #[arg(long)]
    pub tls_private_key_file: PathBuf,
    /// CA that signs client certificates (x509 authentication).
    #[arg(long)]
    pub client_ca_file: PathBuf,
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Address clients are told to use (discovery's serverAddressByClientCIDRs).
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Seconds every pod tolerates `node.kubernetes.io/not-ready:NoExecute` unless it says
    /// otherwise (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = crate::admission::DEFAULT_TOLERATION_SECONDS)]
    pub default_not_ready_toleration_seconds: i64,
    /// Seconds every pod tolerates `node.kubernetes.io/unreachable:NoExecute` unless it says
    /// otherwise (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = crate::admission::DEFAULT_TOLERATION_SECONDS)]
    pub default_unreachable_toleration_seconds: i64,
    /// Authorization modes, asked in order; the first with an opinion decides
    /// (`AlwaysAllow`, `AlwaysDeny`, `RBAC`). Members of `system:masters` are always allowed.
    #[arg(long, value_delimiter = ',', default_value = "RBAC", value_parser = crate::authz::Mode::parse)]
    pub authorization_mode: Vec<crate::authz::Mode>,
    /// Largest request body accepted, in bytes (Kubernetes: 3 MiB).
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// Changes kept per resource for watches that resume from a resourceVersion
    /// (older ones get 410 Expired). Hidden: tests shrink it.
    #[arg(long, default_value_t = crate::cache::DEFAULT_WINDOW, hide = true)]
    pub watch_cache_size: usize,
    /// Events queued per watcher before a watcher that does not keep up is closed.
    #[arg(long, default_value_t = crate::cache::DEFAULT_QUEUE, hide = true)]
    pub watch_queue_size: usize,
    /// Connections to etcd for requests. Hidden: a tuning knob for kadm-bench.
    #[arg(long, default_value_t = 1, hide = true)]
    pub etcd_connections: usize,
    /// Requests in flight to etcd at once (0 = unbounded). Hidden: a tuning knob for
    /// kadm-bench.
    #[arg(long, default_value_t = 0, hide = true)]
    pub etcd_max_inflight: usize,
}
