//! `kadm init` on this host: preflight, binaries, PKI, kubeconfigs, etcd and the
//! apiserver under the host supervisor, then wait until the API answers.
//!
//! Every step is idempotent and the cluster record is written last, so a failed
//! init can simply be re-run: finished steps find their work done and the run
//! resumes where it stopped. A host that is initialized and serving is left
//! untouched.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::pki::{Pki, PkiSpec, fsutil};
use crate::supervisor::{self, ComponentConfig, HttpsProbe, Readiness, SupervisorConfig};
use crate::{install, kubeconfig, preflight};

/// Inputs of `kadm init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub layout: Layout,
    pub cluster_name: String,
    pub node_name: String,
    pub advertise_address: IpAddr,
    pub service_cidr: String,
    pub extra_sans: Vec<String>,
    /// Directory holding kadm's binaries to install (normally the running kadm's own directory).
    pub binaries_dir: PathBuf,
    pub etcd_binary: PathBuf,
    /// Run the supervisor as a systemd unit (systemd hosts) or detached.
    pub use_systemd: bool,
    pub require_root: bool,
    pub ready_timeout: Duration,
}

/// Recorded in `/etc/kadm/cluster.yaml` once init has finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    pub cluster_name: String,
    pub node_name: String,
    pub server: String,
    pub kadm_version: String,
    pub initialized_at: String,
}

impl ClusterRecord {
    pub fn load(layout: &Layout) -> Result<Option<ClusterRecord>> {
        let path = layout.cluster_record();
        if !path.exists() {
            return Ok(None);
        }
        let text = fsutil::read_string(&path)?;
        serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Parse {
                what: path.display().to_string(),
                reason: e.to_string(),
            })
    }
}

/// How init reports progress; the CLI draws it, tests record it.
pub trait Progress {
    fn step(&self, name: &str);
    fn done(&self, name: &str, detail: &str);
}

/// What `init` ended with.
#[derive(Debug)]
pub enum InitOutcome {
    /// The host was already initialized and serving; nothing was changed.
    AlreadyInitialized(ClusterRecord),
    Initialized {
        record: ClusterRecord,
        elapsed: Duration,
    },
}

/// The steps in order, for `--dry-run` and for progress bars.
pub const STEPS: &[&str] = &[
    "preflight",
    "install binaries",
    "certificates",
    "kubeconfigs",
    "encryption config",
    "supervisor config",
    "start supervisor",
    "wait for apiserver",
    "record cluster",
];

fn supervisor_running(layout: &Layout, use_systemd: bool) -> bool {
    if use_systemd {
        return std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", "kadm-supervisor.service"])
            .status()
            .is_ok_and(|s| s.success());
    }
    supervisor::read_state(&layout.run_dir)
        .ok()
        .is_some_and(|s| std::path::Path::new(&format!("/proc/{}", s.pid)).exists())
}

/// Whether the apiserver of this layout answers `/readyz`.
pub async fn apiserver_ready(layout: &Layout) -> bool {
    let probe = Readiness::Https(HttpsProbe {
        url: format!("https://127.0.0.1:{}/readyz", layout.ports.apiserver),
        ca_file: Pki::at(layout.pki_dir()).ca_cert_path(),
        cert_file: None,
        key_file: None,
    });
    supervisor::probe::check(&probe).await.is_ok()
}

/// The supervisor's component list for a control-plane host.
pub fn control_plane_components(opts: &InitOptions) -> SupervisorConfig {
    let l = &opts.layout;
    let pki = Pki::at(l.pki_dir());
    let p = l.ports;
    let ip = opts.advertise_address;
    let s = |p: &Path| p.display().to_string();
    let peer_url = format!("https://{ip}:{}", p.etcd_peer);
    let client_urls = if ip.is_loopback() {
        format!("https://127.0.0.1:{}", p.etcd_client)
    } else {
        format!(
            "https://127.0.0.1:{},https://{ip}:{}",
            p.etcd_client, p.etcd_client
        )
    };
    let etcd = ComponentConfig {
        name: "etcd".into(),
        command: opts.etcd_binary.clone(),
        args: vec![
            format!("--name={}", opts.node_name),
            format!("--data-dir={}", s(&l.etcd_data_dir())),
            format!("--listen-client-urls={client_urls}"),
            format!("--advertise-client-urls=https://{ip}:{}", p.etcd_client),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={}={peer_url}", opts.node_name),
            "--initial-cluster-state=new".into(),
            format!("--initial-cluster-token={}", opts.cluster_name),
            format!("--listen-metrics-urls=http://127.0.0.1:{}", p.etcd_metrics),
            format!("--cert-file={}", s(&pki.etcd_server_cert_path())),
            format!("--key-file={}", s(&pki.etcd_server_key_path())),
            format!("--trusted-ca-file={}", s(&pki.etcd_ca_cert_path())),
            "--client-cert-auth=true".into(),
            format!("--peer-cert-file={}", s(&pki.etcd_peer_cert_path())),
            format!("--peer-key-file={}", s(&pki.etcd_peer_key_path())),
            format!("--peer-trusted-ca-file={}", s(&pki.etcd_ca_cert_path())),
            "--peer-client-cert-auth=true".into(),
            "--snapshot-count=10000".into(),
            "--auto-compaction-mode=periodic".into(),
            "--auto-compaction-retention=5m".into(),
        ],
        env: Default::default(),
        readiness: Some(Readiness::Https(HttpsProbe {
            url: format!("https://127.0.0.1:{}/health", p.etcd_client),
            ca_file: pki.etcd_ca_cert_path(),
            cert_file: Some(pki.etcd_healthcheck_client_cert_path()),
            key_file: Some(pki.etcd_healthcheck_client_key_path()),
        })),
        readiness_timeout_seconds: 60,
        stop_timeout_seconds: 20,
    };
    let apiserver = ComponentConfig {
        name: "kadm-apiserver".into(),
        command: l.bin_dir.join("kadm-apiserver"),
        args: vec![
            format!("--etcd-servers=https://127.0.0.1:{}", p.etcd_client),
            format!("--etcd-cafile={}", s(&pki.etcd_ca_cert_path())),
            format!(
                "--etcd-certfile={}",
                s(&pki.apiserver_etcd_client_cert_path())
            ),
            format!(
                "--etcd-keyfile={}",
                s(&pki.apiserver_etcd_client_key_path())
            ),
            format!("--tls-cert-file={}", s(&pki.apiserver_cert_path())),
            format!("--tls-private-key-file={}", s(&pki.apiserver_key_path())),
            format!("--client-ca-file={}", s(&pki.ca_cert_path())),
            format!("--service-account-key-file={}", s(&pki.sa_pub_path())),
            format!(
                "--service-account-signing-key-file={}",
                s(&pki.sa_key_path())
            ),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--secure-port={}", p.apiserver),
            format!("--advertise-address={ip}"),
            format!("--service-cluster-ip-range={}", opts.service_cidr),
            format!("--encryption-provider-config={}", s(&l.encryption_config())),
            format!("--audit-policy-file={}", s(&l.audit_policy())),
            format!("--audit-log-path={}", s(&l.audit_log())),
            "--audit-log-maxsize=100".into(),
            "--audit-log-maxbackup=5".into(),
        ],
        env: Default::default(),
        readiness: Some(Readiness::Https(HttpsProbe {
            url: format!("https://127.0.0.1:{}/readyz", p.apiserver),
            ca_file: pki.ca_cert_path(),
            cert_file: None,
            key_file: None,
        })),
        readiness_timeout_seconds: 60,
        stop_timeout_seconds: 20,
    };
    let mut components = vec![etcd, apiserver];
    if opts.binaries_dir.join("kadm-controller-manager").exists() {
        components.push(ComponentConfig {
            name: "kadm-controller-manager".into(),
            command: l.bin_dir.join("kadm-controller-manager"),
            args: vec![
                format!(
                    "--kubeconfig={}",
                    s(&l.etc_dir.join(kubeconfig::CONTROLLER_MANAGER_CONF))
                ),
                format!("--secure-port={}", p.controller_manager),
            ],
            env: Default::default(),
            readiness: Some(Readiness::Tcp(format!(
                "127.0.0.1:{}",
                p.controller_manager
            ))),
            readiness_timeout_seconds: 60,
            stop_timeout_seconds: 10,
        });
    }
    if opts.binaries_dir.join("kadm-scheduler").exists() {
        components.push(ComponentConfig {
            name: "kadm-scheduler".into(),
            command: l.bin_dir.join("kadm-scheduler"),
            args: vec![
                format!(
                    "--kubeconfig={}",
                    s(&l.etc_dir.join(kubeconfig::SCHEDULER_CONF))
                ),
                format!("--secure-port={}", p.scheduler),
            ],
            env: Default::default(),
            readiness: Some(Readiness::Tcp(format!("127.0.0.1:{}", p.scheduler))),
            readiness_timeout_seconds: 60,
            stop_timeout_seconds: 10,
        });
    }
    SupervisorConfig {
        log_dir: l.log_dir.clone(),
        run_dir: l.run_dir.clone(),
        components,
    }
}

fn binaries_to_install(opts: &InitOptions) -> Vec<&'static str> {
    install::CONTROL_PLANE_BINARIES
        .iter()
        .copied()
        .filter(|b| opts.binaries_dir.join(b).exists())
        .collect()
}

pub async fn init(opts: &InitOptions, progress: &dyn Progress) -> Result<InitOutcome> {
    let started = Instant::now();
    let l = &opts.layout;
    let existing = ClusterRecord::load(l)?;
    let running = supervisor_running(l, opts.use_systemd);
    if let Some(record) = &existing
        && running
    {
        // A serving host answers quickly, but a loaded one may miss one probe: give it a
        // moment before deciding to resume, so a re-run really changes nothing.
        let patience = Instant::now() + Duration::from_secs(15);
        loop {
            if apiserver_ready(l).await {
                return Ok(InitOutcome::AlreadyInitialized(record.clone()));
            }
            if Instant::now() > patience {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    progress.step("preflight");
    let mut binaries: Vec<PathBuf> = vec![opts.etcd_binary.clone()];
    binaries.extend(
        ["kadm", "kadm-apiserver"]
            .iter()
            .map(|b| opts.binaries_dir.join(b)),
    );
    let checks = preflight::Preflight {
        require_root: opts.require_root,
        ports: if running {
            vec![]
        } else {
            let p = l.ports;
            vec![
                p.apiserver,
                p.etcd_client,
                p.etcd_peer,
                p.etcd_metrics,
                p.controller_manager,
                p.scheduler,
            ]
        },
        binaries,
        node_name: opts.node_name.clone(),
    };
    let failures = preflight::run(&checks);
    if !failures.is_empty() {
        return Err(Error::Preflight(failures));
    }
    progress.done("preflight", "all checks passed");

    progress.step("install binaries");
    let installed = install::install(&binaries_to_install(opts), &opts.binaries_dir, &l.bin_dir)?;
    let record: Vec<String> = installed
        .iter()
        .map(|i| i.path().display().to_string())
        .collect();
    fsutil::ensure_private_dir(&l.etc_dir)?;
    fsutil::write_atomic(
        &l.install_record(),
        serde_json::to_string_pretty(&record)
            .unwrap_or_default()
            .as_bytes(),
        0o600,
    )?;
    let copied = installed
        .iter()
        .filter(|i| matches!(i, install::Installed::Copied { .. }))
        .count();
    progress.done(
        "install binaries",
        &format!(
            "{copied} copied, {} already current",
            installed.len() - copied
        ),
    );

    progress.step("certificates");
    let pki = Pki::at(l.pki_dir());
    let mut host_ips = vec![opts.advertise_address];
    if !opts.advertise_address.is_loopback() {
        host_ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    let mut spec = PkiSpec::new(opts.node_name.clone(), host_ips);
    spec.service_cidr = opts.service_cidr.clone();
    spec.extra_sans = opts.extra_sans.clone();
    let report = pki.ensure(&spec)?;
    progress.done(
        "certificates",
        &format!(
            "{} created, {} kept",
            report.created.len(),
            report.kept.len()
        ),
    );

    progress.step("kubeconfigs");
    let server = l.apiserver_url(&opts.advertise_address.to_string());
    kubeconfig::ensure_control_plane_kubeconfigs(&pki, &l.etc_dir, &opts.cluster_name, &server)?;
    progress.done("kubeconfigs", &l.etc_dir.display().to_string());

    // Secrets encrypted at rest from the first write on; a re-run keeps the existing keys
    // (the only way to read what is already stored).
    progress.step("encryption config");
    let enc = l.encryption_config();
    let created = crate::encryption_keys::ensure_config(&enc)?;
    progress.done(
        "encryption config",
        &format!(
            "{} ({})",
            enc.display(),
            if created {
                "secrets encrypted with a new aescbc key"
            } else {
                "kept"
            }
        ),
    );

    progress.step("supervisor config");
    for d in [&l.state_dir, &l.log_dir, &l.run_dir] {
        std::fs::create_dir_all(d).map_err(Error::io("create", d))?;
    }
    // An existing policy is the operator's: kept as it is.
    crate::audit_policy::ensure(&l.audit_policy())?;
    fsutil::ensure_private_dir(&l.etcd_data_dir())?;
    let sup = control_plane_components(opts);
    let yaml = serde_yaml::to_string(&sup).map_err(|source| Error::Yaml {
        action: "encode supervisor config",
        source,
    })?;
    fsutil::write_atomic(&l.supervisor_config(), yaml.as_bytes(), 0o600)?;
    progress.done(
        "supervisor config",
        &format!("{} components", sup.components.len()),
    );

    progress.step("start supervisor");
    let detail = if running {
        "already running".to_string()
    } else {
        start_supervisor(opts)?
    };
    progress.done("start supervisor", &detail);

    progress.step("wait for apiserver");
    let deadline = Instant::now() + opts.ready_timeout;
    while !apiserver_ready(l).await {
        if Instant::now() > deadline {
            return Err(Error::NotReady {
                what: format!(
                    "the apiserver at https://127.0.0.1:{}/readyz",
                    l.ports.apiserver
                ),
                after: opts.ready_timeout,
                logs: l.log_dir.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress.done("wait for apiserver", &server);

    progress.step("record cluster");
    let record = ClusterRecord {
        cluster_name: opts.cluster_name.clone(),
        node_name: opts.node_name.clone(),
        server,
        kadm_version: kadm_base::VERSION.to_string(),
        initialized_at: chrono::Utc::now().to_rfc3339(),
    };
    let text = serde_yaml::to_string(&record).map_err(|source| Error::Yaml {
        action: "encode cluster record",
        source,
    })?;
    fsutil::write_atomic(&l.cluster_record(), text.as_bytes(), 0o644)?;
    progress.done("record cluster", &l.cluster_record().display().to_string());
    Ok(InitOutcome::Initialized {
        record,
        elapsed: started.elapsed(),
    })
}

fn start_supervisor(opts: &InitOptions) -> Result<String> {
    let l = &opts.layout;
    let kadm = l.bin_dir.join("kadm");
    if opts.use_systemd {
        let unit = supervisor::render_systemd_unit(&kadm, &l.supervisor_config());
        std::fs::create_dir_all(&l.systemd_dir).map_err(Error::io("create", &l.systemd_dir))?;
        fsutil::write_atomic(&l.systemd_unit(), unit.as_bytes(), 0o644)?;
        run("systemctl", &["daemon-reload"])?;
        run("systemctl", &["enable", "--now", "kadm-supervisor.service"])?;
        return Ok("systemd unit kadm-supervisor.service".into());
    }
    let args = vec![
        "supervisor".to_string(),
        "run".to_string(),
        "--config".to_string(),
        l.supervisor_config().display().to_string(),
    ];
    let log = l.log_dir.join("supervisor.log");
    let pid = supervisor::spawn_detached(&kadm, &args, &log)?;
    Ok(format!("detached, pid {pid}, log {}", log.display()))
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|source| Error::Command {
            command: format!("{cmd} {}", args.join(" ")),
            detail: source.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{cmd} {}", args.join(" ")),
            detail: format!(
                "exit {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// What happened to the operator's `~/.kube/config`.
#[derive(Debug, PartialEq, Eq)]
pub enum UserKubeconfig {
    Written,
    AlreadyCurrent,
    /// A different file exists and overwriting was not allowed.
    Different,
    /// Overwritten; the old file was saved at this path.
    Replaced(PathBuf),
}

/// Copies `admin.conf` to `dest` (mode 0600), keeping a backup of a different file when overwriting.
pub fn install_user_kubeconfig(
    layout: &Layout,
    dest: &Path,
    overwrite: bool,
) -> Result<UserKubeconfig> {
    let admin =
        std::fs::read(layout.admin_conf()).map_err(Error::io("read", &layout.admin_conf()))?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    match std::fs::read(dest) {
        Ok(cur) if cur == admin => Ok(UserKubeconfig::AlreadyCurrent),
        Ok(_) if !overwrite => Ok(UserKubeconfig::Different),
        Ok(cur) => {
            let backup = dest.with_extension(format!(
                "kadm-backup-{}",
                chrono::Utc::now().format("%Y%m%d%H%M%S")
            ));
            fsutil::write_atomic(&backup, &cur, 0o600)?;
            fsutil::write_atomic(dest, &admin, 0o600)?;
            Ok(UserKubeconfig::Replaced(backup))
        }
        Err(_) => {
            fsutil::write_atomic(dest, &admin, 0o600)?;
            Ok(UserKubeconfig::Written)
        }
    }
}
