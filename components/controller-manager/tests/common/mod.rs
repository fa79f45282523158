//! The kadm-controller-manager process fixture shared by the integration tests: start it
//! against a `TestCluster`, wait for health, stop it by pid, print its log on failure.

#![allow(dead_code)]

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::Context;
use kadm_e2e::TestCluster;
use kadm_e2e::process::{Process, tail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BINARY: &str = env!("CARGO_BIN_EXE_kadm-controller-manager");

/// One kadm-controller-manager process; killed on drop, its log printed if the test fails.
pub struct ControllerManager {
    pub process: Process,
    pub identity: String,
    pub health_port: u16,
    pub log: PathBuf,
}

impl ControllerManager {
    pub fn start(cluster: &TestCluster, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let health_port = kadm_e2e::ports::free_port()?;
        let identity = format!("{name}_{}", std::process::id());
        let kubeconfig = cluster
            .dir()
            .join(kadm_bootstrap::kubeconfig::CONTROLLER_MANAGER_CONF);
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
        let process = Process::spawn(
            name,
            Path::new(BINARY),
            &args,
            &[
                (
                    "KADM_LOG",
                    "info,kadm_controller_manager=debug,kadm_base=debug",
                ),
                ("KADM_LOG_FORMAT", "text"),
            ],
            &log,
        )?;
        Ok(Self {
            process,
            identity,
            health_port,
            log,
        })
    }

    /// Waits until `/healthz` answers 200; panics if the process exits or takes too long.
    pub async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
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
                "{} not healthy within 30s",
                self.process.name()
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

    pub fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.process.pid()).context("pid")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)?;
        Ok(())
    }
}

impl Drop for ControllerManager {
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

/// The status code of `GET /healthz` on the plain-HTTP health port, if it answers.
pub async fn healthz(port: u16) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}
