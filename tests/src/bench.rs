//! What the benchmark binaries (`src/bin/kadm-bench*.rs`) share: statistics, process
//! CPU and memory from `/proc`, bounded phases and concurrent load loops.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use http::Method;
use serde_json::json;

use crate::H2Client;

/// The longest any phase may take.
pub const PHASE_LIMIT: Duration = Duration::from_secs(300);

/// Throughput and latency of a batch of operations.
pub struct Stats {
    pub n: usize,
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn stats(mut lat: Vec<Duration>, elapsed: Duration) -> Stats {
    lat.sort_unstable();
    let n = lat.len();
    let at = |q: usize| {
        if n == 0 {
            Duration::ZERO
        } else {
            lat[(n * q / 100).min(n - 1)]
        }
    };
    Stats {
        n,
        rate: n as f64 / elapsed.as_secs_f64().max(1e-9),
        p50: at(50),
        p99: at(99),
        max: lat.last().copied().unwrap_or_default(),
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// CPU time (user + system) a process has used, in seconds (`/proc/<pid>/stat`,
/// clock ticks of 1/100 s as on every Linux this runs on).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`, which may contain spaces.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
pub fn memory_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing in /proc/{pid}/status"))?;
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Runs `work(i)` for i in 0..n on `workers` tasks; the latencies and the wall time.
pub async fn run_concurrently<F, Fut>(
    n: usize,
    workers: usize,
    work: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let next = next.clone();
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                work(w, i).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, started.elapsed()))
}

pub async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(PHASE_LIMIT, f)
        .await
        .with_context(|| format!("{what} did not finish within {}s", PHASE_LIMIT.as_secs()))?
        .with_context(|| what.to_string())
}

pub async fn create_namespace(c: &H2Client, name: &str) -> anyhow::Result<()> {
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )?;
    let r = c
        .request(
            Method::POST,
            "/api/v1/namespaces",
            Some("application/json"),
            body,
        )
        .await?;
    anyhow::ensure!(
        r.status == 201,
        "create namespace {name}: {} {}",
        r.status,
        r.text()
    );
    Ok(())
}

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<f64>().ok())
                })
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let etcd = std::process::Command::new(crate::cluster::ETCD)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs, {mem} RAM, kernel {kernel}, {etcd}")
}

/// Kept here for the benchmark binaries, which poll it next to their other phases.
pub use crate::component::healthz;
