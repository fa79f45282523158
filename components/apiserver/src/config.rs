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
    /// PEM keys (public, or private for their public half) that verify service-account
    /// tokens; may repeat. Defaults to the signing key's public half.
    #[arg(long)]
    pub service_account_key_file: Vec<PathBuf>,
    /// The private key that signs service-account tokens (TokenRequest). Without it and
    /// without `--service-account-key-file`, service-account tokens are not accepted.
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// Issuer (`iss`) of service-account tokens; may repeat: the first signs, all verify.
    #[arg(long, default_value = crate::authn::serviceaccount::DEFAULT_ISSUER)]
    pub service_account_issuer: Vec<String>,
    /// Audiences the apiserver identifies as, comma separated (default: the first issuer).
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// Longest lifetime of a requested token (Go duration, e.g. `48h`; 1h … 2^32 s).
    #[arg(long, value_parser = kadm_base::leader::parse_duration)]
    pub service_account_max_token_expiration: Option<std::time::Duration>,
    /// Issue pod-bound tokens asked for with kubelets' 3607 s marker for a year, warning
    /// after the hour, as Kubernetes does.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
        default_missing_value = "true", require_equals = true)]
    pub service_account_extend_token_expiration: bool,
    /// The `jwks_uri` of the OIDC discovery document (default
    /// `https://<advertise address>/openid/v1/jwks`).
    #[arg(long)]
    pub service_account_jwks_uri: Option<String>,
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Address clients are told to use (discovery's serverAddressByClientCIDRs).
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Ports NodePort and LoadBalancer Services get node ports from (both ends included).
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,
    /// An `EncryptionConfiguration` file: which resources are encrypted in etcd, with which
    /// providers and keys (the first writes). Checked at start; a bad file stops the server.
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// Seconds every pod tolerates `node.kubernetes.io/not-ready:NoExecute` unless it says
    /// otherwise (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = crate::admission::DEFAULT_TOLERATION_SECONDS)]
    pub default_not_ready_toleration_seconds: i64,
    /// Seconds every pod tolerates `node.kubernetes.io/unreachable:NoExecute` unless it says
    /// otherwise (DefaultTolerationSeconds admission).
    #[arg(long, default_value_t = crate::admission::DEFAULT_TOLERATION_SECONDS)]
    pub default_unreachable_toleration_seconds: i64,
    /// Admission plugins to turn on besides the default ones (all kadm implements:
    /// NamespaceLifecycle, LimitRanger, ServiceAccount, NodeRestriction, PodSecurity,
    /// Priority, DefaultTolerationSeconds, ResourceQuota), comma separated. They always
    /// run in that order.
    #[arg(long, value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,
    /// Admission plugins to turn off, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// Authorization modes, asked in order; the first with an opinion decides
    /// (`AlwaysAllow`, `AlwaysDeny`, `Node`, `RBAC`). Members of `system:masters` are always
    /// allowed.
    #[arg(long, value_delimiter = ',', default_value = "Node,RBAC", value_parser = crate::authz::Mode::parse)]
    pub authorization_mode: Vec<crate::authz::Mode>,
    /// Largest request body accepted, in bytes (Kubernetes: 3 MiB).
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// The most non-mutating requests (get, list) in flight at once; beyond it 429 with
    /// `Retry-After: 1`. Watches are not counted; `system:masters` are always served. 0
    /// disables the limit.
    #[arg(long, default_value_t = crate::limits::DEFAULT_MAX_REQUESTS_INFLIGHT)]
    pub max_requests_inflight: usize,
    /// The most mutating requests (create, update, patch, delete, …) in flight at once;
    /// beyond it 429 with `Retry-After: 1`. 0 disables the limit.
    #[arg(long, default_value_t = crate::limits::DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT)]
    pub max_mutating_requests_inflight: usize,
    /// The most watches one user (not `system:masters`) may hold open; beyond it 429.
    /// 0 disables the limit.
    #[arg(long, default_value_t = crate::limits::DEFAULT_MAX_WATCHES_PER_USER, hide = true)]
    pub max_watches_per_user: usize,
    /// Oldest TLS version accepted: `VersionTLS12` or `VersionTLS13`.
    #[arg(long, default_value = "VersionTLS12", value_parser = crate::tls::MinVersion::parse)]
    pub tls_min_version: crate::tls::MinVersion,
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
    /// An `audit.k8s.io/v1` `Policy`: which requests the audit log records, at which level.
    /// Without it nothing is audited.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events are written, one JSON line each (`-`: stdout).
    #[arg(long)]
    pub audit_log_path: Option<String>,
    /// Megabytes the audit log may reach before it is rotated (0: 100).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// Rotated audit logs kept (0: all).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
    /// Days a rotated audit log is kept (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxage: u64,
    /// Audit events queued for the writer; beyond it events are dropped (and counted)
    /// rather than delaying requests.
    #[arg(long, default_value_t = 10_000)]
    pub audit_log_batch_buffer_size: usize,
}
