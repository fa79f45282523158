//! The kubectl binaries on the machine, and kubectl runs that stay in the background
//! (`get -w`) while a test reads their output line by line.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the versioned kubectl binaries live (`kubectl.1.27` … `kubectl.1.33`).
pub const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";
/// The dispatcher that picks the kubectl matching the server's minor version.
pub const KUBECTL_DISPATCHER: &str = "/usr/bin/kubectl";

/// `Some("1.33")` → `…/kubectl.1.33`; `None` → the dispatcher.
pub fn kubectl_path(version: Option<&str>) -> PathBuf {
    match version {
        Some(v) => PathBuf::from(KUBECTL_DIR).join(format!("kubectl.{v}")),
        None => PathBuf::from(KUBECTL_DISPATCHER),
    }
}

/// The `1.NN` versions present in [`KUBECTL_DIR`], oldest first.
pub fn installed_kubectl_versions() -> Vec<String> {
    let mut found: Vec<(u32, String)> = std::fs::read_dir(KUBECTL_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v = name.strip_prefix("kubectl.")?.to_string();
            let minor = v.strip_prefix("1.")?.parse::<u32>().ok()?;
            Some((minor, v))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, v)| v).collect()
}

/// A process (kubectl, usually) whose stdout is collected line by line while it runs.
/// Dropping it kills the process by pid.
pub struct Background {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Background {
    /// Starts `cmd` with stdout/stderr captured; the process is killed on drop.
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Background> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("start background process")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(out).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    if let Ok(mut v) = lines.lock() {
                        v.push(l);
                    }
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(err).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    if let Ok(mut s) = stderr.lock() {
                        s.push_str(&l);
                        s.push('\n');
                    }
                }
            });
        }
        Ok(Background {
            child,
            lines,
            stderr,
        })
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until a stdout line satisfies `pred`, for at most `timeout`.
    pub async fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers drain what the process wrote before it ended.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                    return Ok(l);
                }
                anyhow::bail!(
                    "process ended ({status}) before printing {what}; stdout:\n{}\nstderr:\n{}",
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "no line with {what} within {}s; stdout:\n{}\nstderr:\n{}",
                    timeout.as_secs(),
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process by pid and reaps it.
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
