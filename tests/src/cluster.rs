//! [`TestCluster`]: real etcd + the real `kadm-apiserver` binary on loopback, in a temp dir.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, bail};
use kadm_bootstrap::kubeconfig::{Kubeconfig, ensure_control_plane_kubeconfigs};
use kadm_bootstrap::pki::{Pki, PkiSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::RawClient;
use crate::kubectl::{Background, kubectl_path};
use crate::ports::{free_port, free_ports};
use crate::process::{Process, tail};

/// etcd from Debian's `etcd-server`.
pub const ETCD: &str = "/usr/bin/etcd";
/// etcdctl from Debian's `etcd-client`.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
/// The node name in the PKI and etcd's member name.
pub const NODE_NAME: &str = "test-node";
/// The cluster name in the kubeconfigs.
pub const CLUSTER_NAME: &str = "kadm-test";

/// How long etcd and the apiserver may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting a process on freshly picked ports when one was taken meanwhile.
const PORT_ATTEMPTS: usize = 4;
/// How long one kubectl or etcdctl run may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines shown when a test fails.
const LOG_TAIL_LINES: usize = 60;

/// How a [`TestCluster`] runs its apiserver.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra kadm-apiserver flags, e.g. `--watch-cache-size=4`. Without an
    /// `--enable-admission-plugins` / `--disable-admission-plugins` flag here the
    /// ServiceAccount admission plugin is disabled (nothing creates `default` accounts).
    pub apiserver_args: Vec<String>,
    /// `KADM_LOG` for the apiserver; default `$KADM_TEST_APISERVER_LOG` or
    /// `info,kadm_apiserver=debug`.
    pub apiserver_log: Option<String>,
    /// Print no log tails when the cluster is dropped (benchmarks).
    pub quiet: bool,
}

/// A single-node control plane (etcd + kadm-apiserver) for one test.
///
/// Dropping it prints the log tails to stderr (shown by the harness only for a failing
/// test), kills both processes by pid and removes the temp dir, unless
/// `KADM_KEEP_TEST_DIRS=1` (then the path is printed).
pub struct TestCluster {
    // Field order is drop order: processes go before the directory they write into.
    apiserver: Option<Process>,
    etcd: Option<Process>,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    pki: Pki,
    apiserver_bin: PathBuf,
    apiserver_port: u16,
    etcd_client_port: u16,
    options: Options,
    kubeconfig: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
}

fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// `target/<profile>/kadm-apiserver`, found from this test binary's location
/// (`target/<profile>/deps/<test>-<hash>`), or `$KADM_APISERVER_BIN`.
pub fn apiserver_binary() -> anyhow::Result<PathBuf> {
    let found = workspace_binary("kadm-apiserver", "KADM_APISERVER_BIN")?;
    warn_if_stale(&found);
    Ok(found)
}

/// A binary of the workspace (`target/<profile>/<name>`, next to this test binary's
/// `deps/` directory or this binary itself), or the file `$<env_override>` names: how tests
/// of one crate start another crate's component.
pub fn workspace_binary(name: &str, env_override: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_override) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{env_override}={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locate the test binary")?;
    let candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(name))
        .collect();
    match candidates.iter().find(|c| c.is_file()) {
        Some(found) => Ok(found.clone()),
        None => bail!(
            "the {name} binary is missing (looked for {}); build it first with \
             `cargo build -p {name}` (same profile as the tests) or run `make test`, \
             or point {env_override} at one",
            candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Warns when apiserver sources are newer than the binary: the test would exercise old code.
fn warn_if_stale(bin: &Path) {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stack = vec![
        workspace.join("components/apiserver/src"),
        workspace.join("components/apimachinery/src"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > built)
            {
                eprintln!(
                    "kadm-e2e: warning: {} is newer than {}; rebuild (`cargo build -p kadm-apiserver`) or the tests run old code",
                    path.display(),
                    bin.display()
                );
                return;
            }
        }
    }
}

/// GET over plain HTTP/1.0 on loopback; the status code and body.
async fn plain_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((code, body))
}

fn os(args: &[String]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Runs a command with a deadline; the child is killed (by pid) if it overruns.
async fn run_bounded(mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<Output> {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let child = cmd.output();
    tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .with_context(|| {
            format!(
                "{what} did not finish within {}s",
                COMMAND_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("run {what}"))
}

/// Whether a log says the process could not bind its port.
fn bind_failed(log: &str) -> bool {
    log.contains("Address already in use")
        || log.contains("address already in use")
        || log.contains("already listening")
}

impl TestCluster {
    /// Makes the temp dir, PKI and kubeconfigs, starts etcd and the apiserver, and
    /// waits until `/readyz` answers.
    pub async fn start() -> anyhow::Result<TestCluster> {
        TestCluster::start_with(Options::default()).await
    }

    /// [`start`](Self::start) with apiserver flags, log level or quietness of one's own.
    pub async fn start_with(options: Options) -> anyhow::Result<TestCluster> {
        let apiserver_bin = apiserver_binary()?;
        for bin in [ETCD, ETCDCTL] {
            if !Path::new(bin).is_file() {
                bail!("{bin} is missing; install Debian's etcd-server and etcd-client");
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("kadm-e2e-")
            .tempdir()
            .context("create the test directory")?;
        let root = dir.path().to_path_buf();
        let pki = Pki::at(root.join("pki"));
        pki.ensure(&PkiSpec::new(NODE_NAME, vec![loopback()]))
            .context("generate the test pki")?;
        let mut cluster = TestCluster {
            apiserver: None,
            etcd: None,
            dir: Some(dir),
            kubeconfig: root.join(kadm_bootstrap::kubeconfig::ADMIN_CONF),
            admin_cert: root.join("admin.crt"),
            admin_key: root.join("admin.key"),
            root,
            pki,
            apiserver_bin,
            apiserver_port: 0,
            etcd_client_port: 0,
            options,
        };
        cluster.start_etcd().await?;
        cluster.start_first_apiserver().await?;
        Ok(cluster)
    }

    async fn start_etcd(&mut self) -> anyhow::Result<()> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let [client, peer, metrics] = free_ports::<3>()?;
            let log = self.root.join("etcd.log");
            let data_dir = self.root.join("etcd-data");
            let _ = std::fs::remove_dir_all(&data_dir);
            let pki = &self.pki;
            let client_url = format!("https://127.0.0.1:{client}");
            let peer_url = format!("https://127.0.0.1:{peer}");
            let args = vec![
                "--name".to_string(),
                NODE_NAME.into(),
                "--data-dir".into(),
                path_str(&data_dir),
                "--listen-client-urls".into(),
                client_url.clone(),
                "--advertise-client-urls".into(),
                client_url,
                "--listen-peer-urls".into(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                peer_url.clone(),
                "--initial-cluster".into(),
                format!("{NODE_NAME}={peer_url}"),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                CLUSTER_NAME.into(),
                "--cert-file".into(),
                path_str(&pki.etcd_server_cert_path()),
                "--key-file".into(),
                path_str(&pki.etcd_server_key_path()),
                "--client-cert-auth".into(),
                "--trusted-ca-file".into(),
                path_str(&pki.etcd_ca_cert_path()),
                "--peer-cert-file".into(),
                path_str(&pki.etcd_peer_cert_path()),
                "--peer-key-file".into(),
                path_str(&pki.etcd_peer_key_path()),
                "--peer-client-cert-auth".into(),
                "--peer-trusted-ca-file".into(),
                path_str(&pki.etcd_ca_cert_path()),
                "--listen-metrics-urls".into(),
                format!("http://127.0.0.1:{metrics}"),
                "--logger".into(),
                "zap".into(),
                "--log-outputs".into(),
                "stderr".into(),
            ];
            let proc = Process::spawn("etcd", Path::new(ETCD), &os(&args), &[], &log)?;
            self.etcd = Some(proc);
            self.etcd_client_port = client;
            match self.wait_etcd_healthy(metrics).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = format!("{e:#}\n--- etcd log ---\n{}", tail(&log, LOG_TAIL_LINES));
                    if let Some(mut p) = self.etcd.take() {
                        p.kill();
                    }
                    if !bind_failed(&tail(&log, LOG_TAIL_LINES)) {
                        break;
                    }
                }
            }
        }
        bail!("etcd did not start: {last}")
    }

    async fn wait_etcd_healthy(&mut self, metrics_port: u16) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.etcd.as_mut()
                && let Some(status) = p.exited()
            {
                bail!("etcd exited ({status})");
            }
            if let Ok((200, body)) = plain_get(metrics_port, "/health").await
                && body.contains("true")
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("etcd not healthy within {}s", START_TIMEOUT.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Picks the apiserver port, writes kubeconfigs for it, starts the apiserver;
    /// on a port collision, again with another port.
    async fn start_first_apiserver(&mut self) -> anyhow::Result<()> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.apiserver_port = free_port()?;
            self.write_kubeconfigs()?;
            match self.spawn_apiserver().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = tail(&self.apiserver_log_path(), LOG_TAIL_LINES);
                    last = format!("{e:#}\n--- apiserver log ---\n{log}");
                    if !bind_failed(&log) {
                        break;
                    }
                }
            }
        }
        bail!("kadm-apiserver did not start: {last}")
    }

    fn write_kubeconfigs(&mut self) -> anyhow::Result<()> {
        for f in [
            kadm_bootstrap::kubeconfig::ADMIN_CONF,
            kadm_bootstrap::kubeconfig::SCHEDULER_CONF,
            kadm_bootstrap::kubeconfig::CONTROLLER_MANAGER_CONF,
        ] {
            let _ = std::fs::remove_file(self.root.join(f));
        }
        let paths = ensure_control_plane_kubeconfigs(
            &self.pki,
            &self.root,
            CLUSTER_NAME,
            &self.server_url(),
        )
        .context("write kubeconfigs")?;
        self.kubeconfig = paths
            .first()
            .cloned()
            .context("no admin kubeconfig written")?;
        let text = std::fs::read_to_string(&self.kubeconfig)?;
        let kc = Kubeconfig::from_yaml(&text).context("read back admin kubeconfig")?;
        std::fs::write(
            &self.admin_cert,
            kc.client_cert_pem()
                .context("admin kubeconfig has no client certificate")?,
        )?;
        std::fs::write(
            &self.admin_key,
            kc.client_key_pem()
                .context("admin kubeconfig has no client key")?,
        )?;
        Ok(())
    }

    async fn spawn_apiserver(&mut self) -> anyhow::Result<()> {
        let pki = &self.pki;
        let args = vec![
            "--etcd-servers".to_string(),
            self.etcd_endpoint(),
            "--etcd-cafile".into(),
            path_str(&pki.etcd_ca_cert_path()),
            "--etcd-certfile".into(),
            path_str(&pki.apiserver_etcd_client_cert_path()),
            "--etcd-keyfile".into(),
            path_str(&pki.apiserver_etcd_client_key_path()),
            "--tls-cert-file".into(),
            path_str(&pki.apiserver_cert_path()),
            "--tls-private-key-file".into(),
            path_str(&pki.apiserver_key_path()),
            "--client-ca-file".into(),
            path_str(&pki.ca_cert_path()),
            "--service-account-key-file".into(),
            path_str(&pki.sa_pub_path()),
            "--service-account-signing-key-file".into(),
            path_str(&pki.sa_key_path()),
            "--service-account-issuer".into(),
            "https://kubernetes.default.svc.cluster.local".into(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--secure-port".into(),
            self.apiserver_port.to_string(),
        ];
        // No controller-manager makes `default` ServiceAccounts here, so the ServiceAccount
        // admission plugin (which refuses pods whose account is missing) is off unless a
        // test chooses its admission plugins itself — as Kubernetes' integration test
        // servers do.
        let chooses_admission = self.options.apiserver_args.iter().any(|a| {
            a.starts_with("--enable-admission-plugins")
                || a.starts_with("--disable-admission-plugins")
        });
        let admission =
            (!chooses_admission).then(|| "--disable-admission-plugins=ServiceAccount".to_string());
        let args: Vec<String> = args
            .into_iter()
            .chain(admission)
            .chain(self.options.apiserver_args.iter().cloned())
            .collect();
        let level = match &self.options.apiserver_log {
            Some(l) => l.clone(),
            None => std::env::var("KADM_TEST_APISERVER_LOG")
                .unwrap_or_else(|_| "info,kadm_apiserver=debug".to_string()),
        };
        let log = self.apiserver_log_path();
        let proc = Process::spawn(
            "kadm-apiserver",
            &self.apiserver_bin,
            &os(&args),
            &[("KADM_LOG", level.as_str()), ("KADM_LOG_FORMAT", "text")],
            &log,
        )?;
        self.apiserver = Some(proc);
        let anonymous = self.raw_anonymous()?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(p) = self.apiserver.as_mut()
                && let Some(status) = p.exited()
            {
                self.apiserver = None;
                bail!("kadm-apiserver exited ({status})");
            }
            if let Ok(r) = anonymous.get("/readyz").await
                && r.status == 200
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                if let Some(mut p) = self.apiserver.take() {
                    p.kill();
                }
                bail!(
                    "kadm-apiserver not ready within {}s",
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the apiserver (SIGTERM, then SIGKILL after 5 s) and starts it again on the
    /// same port and etcd; returns when `/readyz` answers.
    pub async fn restart_apiserver(&mut self) -> anyhow::Result<()> {
        if let Some(mut p) = self.apiserver.take() {
            p.terminate(Duration::from_secs(5));
        }
        self.spawn_apiserver().await.with_context(|| {
            format!(
                "restart kadm-apiserver\n--- apiserver log ---\n{}",
                tail(&self.apiserver_log_path(), LOG_TAIL_LINES)
            )
        })
    }

    /// Kills etcd (SIGKILL to its pid); the apiserver keeps running without it.
    pub fn kill_etcd(&mut self) {
        if let Some(mut p) = self.etcd.take() {
            p.kill();
        }
    }

    /// The test's temp dir (PKI, kubeconfigs, logs, etcd data).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    pub fn apiserver_addr(&self) -> SocketAddr {
        SocketAddr::new(loopback(), self.apiserver_port)
    }

    /// The cluster CA (trust anchor for the apiserver's serving cert).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.pki.ca_cert_path()
    }

    /// The admin (`kubernetes-admin`, `system:masters`) client certificate, PEM.
    pub fn admin_cert_path(&self) -> &Path {
        &self.admin_cert
    }

    pub fn admin_key_path(&self) -> &Path {
        &self.admin_key
    }

    /// Raw HTTPS as the admin.
    pub fn raw(&self) -> anyhow::Result<RawClient> {
        RawClient::new(
            self.apiserver_addr(),
            &self.ca_cert_path(),
            Some((&self.admin_cert, &self.admin_key)),
        )
    }

    /// An HTTP/2 connection as the admin, with the given flow-control windows.
    pub async fn h2(&self, windows: crate::h2::Windows) -> anyhow::Result<crate::h2::H2Client> {
        crate::h2::H2Client::connect(
            self.apiserver_addr(),
            &self.ca_cert_path(),
            &self.admin_cert,
            &self.admin_key,
            windows,
        )
        .await
    }

    /// Raw HTTPS without a client certificate.
    pub fn raw_anonymous(&self) -> anyhow::Result<RawClient> {
        RawClient::new(self.apiserver_addr(), &self.ca_cert_path(), None)
    }

    /// Writes a kubeconfig for a client certificate naming `user` (CN) and `group` (O, at
    /// most one: the certificate issuer keeps one) — any identity, for authorization tests.
    pub fn kubeconfig_for(&self, user: &str, group: Option<&str>) -> anyhow::Result<PathBuf> {
        let orgs: Vec<&str> = group.into_iter().collect();
        let (cert, key) = self
            .pki
            .issue_client_cert(user, &orgs, std::time::Duration::from_secs(3600))
            .context("issue client certificate")?;
        let ca = std::fs::read_to_string(self.ca_cert_path()).context("read cluster ca")?;
        let kc =
            kadm_bootstrap::kubeconfig::build("kadm", &self.server_url(), &ca, user, &cert, &key);
        let path = self
            .root
            .join(format!("{}.kubeconfig", user.replace([':', '/'], "_")));
        kadm_bootstrap::kubeconfig::write_kubeconfig(&path, &kc).context("write kubeconfig")?;
        Ok(path)
    }

    /// A kube-rs client authenticating as `user` (and `group`), see [`Self::kubeconfig_for`].
    pub async fn kube_client_for(
        &self,
        user: &str,
        group: Option<&str>,
    ) -> anyhow::Result<kube::Client> {
        let path = self.kubeconfig_for(user, group)?;
        let kc = kube::config::Kubeconfig::read_from(&path).context("read kubeconfig")?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .context("kube config")?;
        kube::Client::try_from(cfg).context("build kube client")
    }

    /// A kube-rs client from the admin kubeconfig.
    pub async fn kube_client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .context("read admin kubeconfig")?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .context("kube config from admin kubeconfig")?;
        kube::Client::try_from(cfg).context("build kube client")
    }

    fn kubectl_command(&self, version: Option<&str>, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(kubectl_path(version));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            // Discovery cache and kubectl's own files stay in the test dir.
            .env("HOME", &self.root)
            .env_remove("KUBECONFIG");
        cmd
    }

    /// Runs `kubectl[.version] --kubeconfig <admin.conf> args…` to completion (bounded).
    pub async fn kubectl(&self, version: Option<&str>, args: &[&str]) -> anyhow::Result<Output> {
        let what = format!("kubectl {}", args.join(" "));
        run_bounded(self.kubectl_command(version, args), &what).await
    }

    /// Runs kubectl and insists it succeeded; the error names the version and both streams.
    pub async fn kubectl_ok(&self, version: Option<&str>, args: &[&str]) -> anyhow::Result<Output> {
        let out = self.kubectl(version, args).await?;
        anyhow::ensure!(
            out.status.success(),
            "kubectl.{} {} failed ({}):\nstdout: {}\nstderr: {}",
            version.unwrap_or("dispatcher"),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    }

    /// Starts kubectl in the background (for `-w`); killed when the handle drops.
    pub fn kubectl_background(
        &self,
        version: Option<&str>,
        args: &[&str],
    ) -> anyhow::Result<Background> {
        Background::spawn(self.kubectl_command(version, args))
    }

    /// `https://127.0.0.1:<port>` of etcd's client listener.
    pub fn etcd_endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.etcd_client_port)
    }

    pub fn etcd_ca_path(&self) -> PathBuf {
        self.pki.etcd_ca_cert_path()
    }

    /// A client certificate etcd accepts (the apiserver's).
    pub fn etcd_client_cert_path(&self) -> PathBuf {
        self.pki.apiserver_etcd_client_cert_path()
    }

    pub fn etcd_client_key_path(&self) -> PathBuf {
        self.pki.apiserver_etcd_client_key_path()
    }

    /// Runs `etcdctl` (API v3) against this etcd with its TLS flags (bounded).
    pub async fn etcdctl(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = tokio::process::Command::new(ETCDCTL);
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.etcd_endpoint())
            .arg("--cacert")
            .arg(self.etcd_ca_path())
            .arg("--cert")
            .arg(self.etcd_client_cert_path())
            .arg("--key")
            .arg(self.etcd_client_key_path())
            .arg("--command-timeout=10s")
            .args(args);
        run_bounded(cmd, &format!("etcdctl {}", args.join(" "))).await
    }

    /// The apiserver's pid (0 when it is not running).
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.as_ref().map_or(0, Process::pid)
    }

    /// etcd's pid (0 when it is not running).
    pub fn etcd_pid(&self) -> u32 {
        self.etcd.as_ref().map_or(0, Process::pid)
    }

    pub fn apiserver_log_path(&self) -> PathBuf {
        self.root.join("apiserver.log")
    }

    pub fn etcd_log_path(&self) -> PathBuf {
        self.root.join("etcd.log")
    }

    /// The apiserver log so far.
    pub fn apiserver_log(&self) -> String {
        std::fs::read(self.apiserver_log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Prints the tails of the apiserver and etcd logs to stderr.
    pub fn dump_logs(&self) {
        eprintln!(
            "---- kadm-apiserver log ({}), last {LOG_TAIL_LINES} lines ----\n{}\n---- etcd log ({}), last 20 lines ----\n{}\n----",
            self.apiserver_log_path().display(),
            tail(&self.apiserver_log_path(), LOG_TAIL_LINES),
            self.etcd_log_path().display(),
            tail(&self.etcd_log_path(), 20),
        );
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Test harnesses show a test's stderr only when it fails (panic or `Err`), so the
        // log tails are printed unconditionally; `KADM_TEST_LOGS=0` silences them.
        if std::thread::panicking()
            || (!self.options.quiet && std::env::var("KADM_TEST_LOGS").map_or(true, |v| v != "0"))
        {
            self.dump_logs();
        }
        if let Some(mut p) = self.apiserver.take() {
            p.kill();
        }
        if let Some(mut p) = self.etcd.take() {
            p.kill();
        }
        if let Some(dir) = self.dir.take() {
            if std::env::var("KADM_KEEP_TEST_DIRS").is_ok_and(|v| v == "1") {
                let kept = dir.keep();
                eprintln!("kadm-e2e: kept test dir {}", kept.display());
            } else if let Err(e) = dir.close() {
                eprintln!("kadm-e2e: could not remove test dir: {e}");
            }
        }
    }
}
