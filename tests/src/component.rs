//! A leader-elected component process (kadm-scheduler, kadm-controller-manager) started
//! against a [`TestCluster`]: its own kubeconfig, a free health port and a lease identity;
//! health and exit waits; its log printed when the test fails.
//!
//! The components share their process shell (kadm-base's `process` module), so their
//! fixtures differ only in [`Kind`].

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TestCluster;
use crate::process::{Process, tail};

/// How long a component may take from start to a healthy `/healthz`.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// What tells one component from another.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// The built binary (`env!("CARGO_BIN_EXE_…")` in the component's tests).
    pub binary: &'static str,
    /// The kubeconfig file in the cluster's directory the component authenticates with.
    pub kubeconfig: &'static str,
    /// The component's tracing target, logged at debug level.
    pub log_target: &'static str,
}

/// One component process; killed on drop, its log printed if the test fails.
pub struct Component {
    pub process: Process,
    pub identity: String,
    pub health_port: u16,
    pub log: PathBuf,
}

impl Component {
    /// Starts `kind` as `name` (also its log file and identity prefix) with `extra` flags.
    pub fn start(
        kind: Kind,
        cluster: &TestCluster,
        name: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let health_port = crate::ports::free_port()?;
        let identity = format!("{name}_{}", std::process::id());
        let kubeconfig = cluster.dir().join(kind.kubeconfig);
        let mut args: Vec<OsString> = vec![
            "--kubeconfig".into(),
            kubeconfig.into(),
            "--secure-port".into(),
            health_port.to_string().into(),
            "--leader-elect-identity".into(),
            identity.clone().into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        let log = cluster.dir().join(format!("{name}.log"));
        let filter = format!("info,{}=debug,kadm_base=debug", kind.log_target);
        let process = Process::spawn(
            name,
            Path::new(kind.binary),
            &args,
            &[("KADM_LOG", filter.as_str()), ("KADM_LOG_FORMAT", "text")],
            &log,
        )?;
        Ok(Self {
            process,
            identity,
            health_port,
            log,
        })
    }

    /// Waits until `/healthz` answers 200; panics if the process exits or takes longer
    /// than [`HEALTHY_WITHIN`].
    pub async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
        loop {
            if let Some(status) = self.process.exited() {
                panic!(
                    "{} exited ({status}) before it was healthy",
                    self.process.name()
                );
            }
            if healthz(self.health_port).await == Some(200) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not healthy within {}s",
                self.process.name(),
                HEALTHY_WITHIN.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to end by itself; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.exited() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still running after {}s",
                self.process.name(),
                timeout.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` to the process (SIGTERM for a graceful stop, SIGSTOP to freeze it).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.process.pid()).context("pid")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
        Ok(())
    }

    /// Everything the process logged so far (empty if the log cannot be read).
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}) ----\n{}\n----",
                self.process.name(),
                self.log.display(),
                tail(&self.log, 80)
            );
        }
    }
}

/// The status of `GET /healthz` on a component's plain-HTTP health port, if it answers.
pub async fn healthz(port: u16) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `check` every 100 ms until it returns `Some`; panics after `timeout` (a panic, so
/// the fixtures print their logs).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
