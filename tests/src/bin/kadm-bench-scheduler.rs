//! kadm-bench-scheduler: the scheduler benchmark behind `make bench-scheduler`.
//!
//! The shape of Kubernetes' `test/integration/scheduler_perf` "SchedulingBasic": nodes
//! without containers, many pods created at once, the scheduler timed from the first
//! create to the last binding. Per shape (`--nodes`, `--pods`; `--large` adds 5,000
//! nodes) it starts its own etcd and release kadm-apiserver (the kadm-e2e fixture),
//! registers hollow nodes (`kadm_e2e::hollow`: Node objects with allocatable, lease
//! heartbeats, bound pods marked Running unless `--no-kubelets`), starts the release
//! `kadm-scheduler`, binds one warm-up pod (so the scheduler's caches are synced), then:
//!
//! - `--creators` HTTP/2 clients create `--pods` pods of mixed requests as fast as the
//!   apiserver takes them;
//! - one watch on the namespace records when each pod is seen bound (`spec.nodeName`);
//! - throughput = pods / (last binding seen − first create sent); per-pod latency =
//!   binding seen − create acknowledged;
//! - the scheduler's resident memory (VmRSS, and its peak VmHWM) and CPU per pod.
//!
//! Every phase is bounded by [`PHASE_LIMIT`]; every process is stopped by pid.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use kadm_e2e::bench::{
    PHASE_LIMIT, bounded, cpu_seconds, create_namespace, healthz, machine, memory_mib, ms,
    run_concurrently, stats, verdict,
};
use kadm_e2e::hollow::{HollowNodes, HollowSpec};
use kadm_e2e::process::Process;
use kadm_e2e::{Options, TestCluster, Windows};
use serde_json::{Value, json};

const NAMESPACE: &str = "bench-sched";
/// Target throughput (issue 4).
const TARGET_RATE: f64 = 1_000.0;
/// Target scheduler memory (issue 4).
const TARGET_RSS_MIB: f64 = 150.0;
/// Requests of the pods, cycled: (cpu, memory).
const REQUESTS: &[(&str, &str)] = &[
    ("100m", "128Mi"),
    ("250m", "256Mi"),
    ("500m", "512Mi"),
    ("200m", "64Mi"),
    ("50m", "1Gi"),
];

#[derive(Debug, Clone)]
struct Params {
    nodes: usize,
    pods: usize,
    creators: usize,
    large: bool,
    /// Hollow kubelets leave pods alone (no status writes), as in Kubernetes'
    /// scheduler_perf, which runs no kubelets.
    no_kubelets: bool,
}

impl Params {
    fn parse() -> anyhow::Result<Params> {
        let mut p = Params {
            nodes: 1_000,
            pods: 10_000,
            creators: 32,
            large: false,
            no_kubelets: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    p.nodes = 100;
                    p.pods = 1_000;
                    continue;
                }
                "--large" => {
                    p.large = true;
                    continue;
                }
                "--no-kubelets" => {
                    p.no_kubelets = true;
                    continue;
                }
                "-h" | "--help" => {
                    println!(
                        "kadm-bench-scheduler [--quick] [--large] [--no-kubelets] [--nodes N] [--pods N] [--creators N]"
                    );
                    std::process::exit(0);
                }
                _ => {}
            }
            let v: usize = args
                .next()
                .with_context(|| format!("{a} needs a value"))?
                .parse()
                .with_context(|| format!("{a} takes a number"))?;
            anyhow::ensure!(v > 0, "{a} must be positive");
            match a.as_str() {
                "--nodes" => p.nodes = v,
                "--pods" => p.pods = v,
                "--creators" => p.creators = v,
                other => bail!("unknown argument {other}; see --help"),
            }
        }
        Ok(p)
    }
}

fn pod(i: usize) -> Vec<u8> {
    let (cpu, memory) = REQUESTS[i % REQUESTS.len()];
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:05}"), "namespace": NAMESPACE,
                     "labels": {"app": "bench", "shard": (i % 8).to_string()}},
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.local/bench:1",
                "resources": {"requests": {"cpu": cpu, "memory": memory}}
            }]
        }
    }))
    .unwrap_or_default()
}

/// The index of a pod named `pod-NNNNN`.
fn index(name: &str) -> Option<usize> {
    name.strip_prefix("pod-")?.parse().ok()
}

fn scheduler_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("the benchmark's directory")?
        .join("kadm-scheduler");
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist; build it with `cargo build --release -p kadm-scheduler` (make bench-scheduler does)",
        bin.display()
    );
    Ok(bin)
}

/// What one shape measured.
struct Shape {
    nodes: usize,
    pods: usize,
    rate: f64,
    sched_rate: f64,
    p50: Duration,
    p99: Duration,
    rss: f64,
    hwm: f64,
    cpu_per_pod_us: f64,
    create_rate: f64,
    cpu_split: String,
    /// Pods, scheduler start → last binding rate, first → last binding rate.
    backlog: Option<(usize, f64, f64)>,
}

/// Bind times by pod index, filled by a watch task that ends once every pod in
/// `from..from + count` was seen bound.
type Bindings = Arc<Mutex<Vec<Option<Instant>>>>;

/// Starts one watch on the namespace (from now) that records when each pod
/// `pod-{from}`…`pod-{from + count - 1}` is first seen with a `spec.nodeName`.
async fn watch_bindings(
    cluster: &TestCluster,
    admin: &kadm_e2e::H2Client,
    from: usize,
    count: usize,
) -> anyhow::Result<(Bindings, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let list = admin
        .get(&format!("/api/v1/namespaces/{NAMESPACE}/pods?limit=1"))
        .await?;
    let rv = list.json()?["metadata"]["resourceVersion"]
        .as_str()
        .context("list resourceVersion")?
        .to_string();
    let watcher = cluster.h2(Windows::GENEROUS).await?;
    let (status, mut lines) = watcher
        .stream(&format!(
            "/api/v1/namespaces/{NAMESPACE}/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=false"
        ))
        .await?;
    anyhow::ensure!(status == 200, "watch pods: {status}");
    let bound: Bindings = Arc::new(Mutex::new(vec![None; count]));
    let task = {
        let bound = bound.clone();
        tokio::spawn(async move {
            // The connection lives as long as the stream.
            let _watcher = watcher;
            let mut seen = 0;
            while seen < count {
                let Some(line) = lines.next().await? else {
                    bail!("the pod watch ended after {seen} bindings");
                };
                const NEEDLE: &[u8] = b"\"nodeName\":\"";
                if !line.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
                    continue;
                }
                let now = Instant::now();
                let ev: Value = serde_json::from_slice(&line)?;
                let Some(i) = ev["object"]["metadata"]["name"].as_str().and_then(index) else {
                    continue;
                };
                let Some(slot) = i.checked_sub(from).filter(|k| *k < count) else {
                    continue;
                };
                let mut b = bound.lock().unwrap_or_else(|e| e.into_inner());
                if b[slot].is_none() {
                    b[slot] = Some(now);
                    seen += 1;
                }
            }
            anyhow::Ok(())
        })
    };
    Ok((bound, task))
}

/// Creates pods `from..from + count` with `creators` connections; the acknowledgement
/// time of each and the wall time.
async fn create_pods(
    cluster: &TestCluster,
    creators: usize,
    from: usize,
    count: usize,
) -> anyhow::Result<(Vec<Option<Instant>>, Duration)> {
    let mut clients = Vec::new();
    for _ in 0..creators {
        clients.push(cluster.h2(Windows::GENEROUS).await?);
    }
    let clients = Arc::new(clients);
    let acked: Bindings = Arc::new(Mutex::new(vec![None; count]));
    let (_, took) = {
        let acked = acked.clone();
        bounded(
            "creating pods",
            run_concurrently(count, creators, move |w, k| {
                let c = clients[w].clone();
                let acked = acked.clone();
                let i = from + k;
                async move {
                    let r = c
                        .request(
                            Method::POST,
                            &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
                            Some("application/json"),
                            pod(i),
                        )
                        .await?;
                    anyhow::ensure!(r.status == 201, "create pod {i}: {} {}", r.status, r.text());
                    acked.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(Instant::now());
                    Ok(())
                }
            }),
        )
        .await?
    };
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((acked, took))
}

async fn run_shape(p: &Params, nodes: usize) -> anyhow::Result<Shape> {
    let cluster = TestCluster::start_with(Options {
        apiserver_log: Some("warn".into()),
        quiet: true,
        ..Options::default()
    })
    .await?;
    let admin = cluster.h2(Windows::GENEROUS).await?;
    create_namespace(&admin, NAMESPACE).await?;
    let started = Instant::now();
    let hollow = bounded(
        "registering hollow nodes",
        HollowNodes::start(
            cluster.kube_client().await?,
            HollowSpec {
                count: nodes,
                name_prefix: "node".into(),
                zones: 3,
                manage_pods: !p.no_kubelets,
                ..HollowSpec::default()
            },
        ),
    )
    .await?;
    println!(
        "{nodes} hollow nodes registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let port = kadm_e2e::ports::free_port()?;
    let log = cluster.dir().join("kadm-scheduler.log");
    let kubeconfig = cluster
        .dir()
        .join(kadm_bootstrap::kubeconfig::SCHEDULER_CONF);
    let spawn = || {
        Process::spawn(
            "kadm-scheduler",
            &scheduler_binary()?,
            &[
                std::ffi::OsString::from("--kubeconfig"),
                kubeconfig.clone().into(),
                "--secure-port".into(),
                port.to_string().into(),
                "--leader-elect=false".into(),
            ],
            &[("KADM_LOG", "warn")],
            &log,
        )
    };
    let mut scheduler = spawn()?;
    let mut result = measure(p, nodes, &cluster, &admin, &mut scheduler, port).await;
    if let Ok(shape) = &mut result {
        scheduler.terminate(Duration::from_secs(5));
        match backlog(p, &cluster, &admin, spawn).await {
            Ok((restarted, rates)) => {
                scheduler = restarted;
                shape.backlog = Some(rates);
            }
            Err(e) => result = Err(e),
        }
    }
    if result.is_err() {
        eprintln!(
            "kadm-scheduler log (last lines):\n{}",
            kadm_e2e::process::tail(&log, 30)
        );
    }
    scheduler.terminate(Duration::from_secs(5));
    hollow.stop().await;
    result
}

/// The scheduler alone: `--pods / 2` pods created while no scheduler runs, then a
/// scheduler started; (scheduler start → last binding, first → last binding) rates.
async fn backlog(
    p: &Params,
    cluster: &TestCluster,
    admin: &kadm_e2e::H2Client,
    spawn: impl FnOnce() -> anyhow::Result<Process>,
) -> anyhow::Result<(Process, (usize, f64, f64))> {
    let count = p.pods / 2;
    let from = p.pods + 1;
    let (bound, task) = watch_bindings(cluster, admin, from, count).await?;
    create_pods(cluster, p.creators, from, count).await?;
    let started = Instant::now();
    let scheduler = spawn()?;
    bounded("backlog bindings", async { task.await? }).await?;
    let bound = bound.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let times: Vec<Instant> = bound.iter().flatten().copied().collect();
    let first = times.iter().min().copied().context("no binding")?;
    let last = times.iter().max().copied().context("no binding")?;
    let rate = |d: Duration| count as f64 / d.as_secs_f64().max(1e-9);
    Ok((scheduler, (count, rate(last - started), rate(last - first))))
}

async fn measure(
    p: &Params,
    nodes: usize,
    cluster: &TestCluster,
    admin: &kadm_e2e::H2Client,
    scheduler: &mut Process,
    port: u16,
) -> anyhow::Result<Shape> {
    let sched_pid = scheduler.pid();
    bounded("the scheduler's /healthz", async {
        loop {
            if let Some(status) = scheduler.exited() {
                bail!("kadm-scheduler exited ({status}) before it was healthy");
            }
            if healthz(port).await == Some(200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await?;

    // pods + 1: the warm-up pod is the last index.
    let total = p.pods + 1;
    let (bound, seen) = watch_bindings(cluster, admin, 0, total).await?;

    // Warm-up: one pod bound proves the scheduler's caches are synced.
    let warm = p.pods;
    let r = admin
        .request(
            Method::POST,
            &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
            Some("application/json"),
            pod(warm),
        )
        .await?;
    anyhow::ensure!(r.status == 201, "warm-up pod: {} {}", r.status, r.text());
    bounded("the warm-up pod's binding", async {
        loop {
            if bound.lock().unwrap_or_else(|e| e.into_inner())[warm].is_some() {
                return Ok(());
            }
            if let Some(status) = scheduler.exited() {
                bail!("kadm-scheduler exited ({status})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await?;

    let procs = [
        cluster.etcd_pid(),
        cluster.apiserver_pid(),
        sched_pid,
        std::process::id(),
    ];
    let cpu0 = procs.map(cpu_seconds);
    let first_create = Instant::now();
    let (acked, create_took) = create_pods(cluster, p.creators, 0, p.pods).await?;
    bounded("bindings", async { seen.await? }).await?;
    let cpu1 = procs.map(cpu_seconds);
    let per_pod = |i: usize| (cpu1[i] - cpu0[i]) * 1e6 / p.pods as f64;
    let cpu_split = format!(
        "CPU/pod: etcd {:.0} µs, kadm-apiserver {:.0} µs, kadm-scheduler {:.0} µs, this process (creators, watch, hollow nodes) {:.0} µs",
        per_pod(0),
        per_pod(1),
        per_pod(2),
        per_pod(3)
    );
    let (rss, hwm) = memory_mib(sched_pid)?;

    let bound = bound.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let times: Vec<Instant> = bound[..p.pods].iter().flatten().copied().collect();
    let first_bind = times.iter().min().copied().context("no binding")?;
    let last_bind = times.iter().max().copied().context("no binding")?;
    let lat: Vec<Duration> = bound[..p.pods]
        .iter()
        .zip(&acked)
        .filter_map(|(b, a)| Some(b.as_ref()?.saturating_duration_since(*a.as_ref()?)))
        .collect();
    let s = stats(lat, last_bind - first_create);
    let on_nodes = {
        let r = admin
            .get(&format!(
                "/api/v1/namespaces/{NAMESPACE}/pods?fieldSelector=spec.nodeName%3D"
            ))
            .await?;
        r.json()?["items"].as_array().map_or(0, Vec::len)
    };
    anyhow::ensure!(on_nodes == 0, "{on_nodes} pods are still unbound");
    Ok(Shape {
        nodes,
        pods: p.pods,
        rate: s.rate,
        sched_rate: p.pods as f64 / (last_bind - first_bind).as_secs_f64().max(1e-9),
        p50: s.p50,
        p99: s.p99,
        rss,
        hwm,
        cpu_per_pod_us: per_pod(2),
        cpu_split,
        create_rate: p.pods as f64 / create_took.as_secs_f64().max(1e-9),
        backlog: None,
    })
}

async fn run() -> anyhow::Result<bool> {
    let p = Params::parse()?;
    println!("kadm-bench-scheduler: {}", machine());
    println!("parameters: {p:?}");
    let mut shapes = vec![run_shape(&p, p.nodes).await?];
    if p.large {
        shapes.push(run_shape(&p, 5_000).await?);
    }
    println!();
    println!("| measurement | result | target | verdict |");
    println!("|---|---|---|---|");
    let mut ok = true;
    for s in &shapes {
        let rate_ok = s.rate >= TARGET_RATE;
        let mem_ok = s.hwm <= TARGET_RSS_MIB;
        // The target is for the shape; other shapes are reported.
        if s.nodes == 1_000 && s.pods == 10_000 {
            ok &= rate_ok && mem_ok;
        }
        println!(
            "| {} nodes, {} pods: throughput, first create → last binding | {:.0} pods/s (creates alone {:.0}/s; first → last binding {:.0}/s) | ≥ {TARGET_RATE:.0} pods/s | {} |",
            s.nodes,
            s.pods,
            s.rate,
            s.create_rate,
            s.sched_rate,
            verdict(rate_ok)
        );
        if let Some((n, from_start, first_last)) = s.backlog {
            println!(
                "| {} nodes: backlog of {n} pending pods, scheduler start → last binding | {from_start:.0} pods/s (first → last binding {first_last:.0}/s) | (scheduler alone) | |",
                s.nodes
            );
        }
        println!(
            "| {} nodes, {} pods: create acknowledged → binding seen | p50 {}, p99 {} | | |",
            s.nodes,
            s.pods,
            ms(s.p50),
            ms(s.p99)
        );
        println!(
            "| {} nodes, {} pods: kadm-scheduler memory | VmRSS {:.0} MiB, peak {:.0} MiB; CPU {:.0} µs/pod | ≤ {TARGET_RSS_MIB:.0} MiB | {} |",
            s.nodes,
            s.pods,
            s.rss,
            s.hwm,
            s.cpu_per_pod_us,
            verdict(mem_ok)
        );
    }
    println!();
    for s in &shapes {
        println!("{} nodes: {}", s.nodes, s.cpu_split);
    }
    Ok(ok)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match tokio::time::timeout(PHASE_LIMIT * 4, run()).await {
        Ok(Ok(true)) => std::process::ExitCode::SUCCESS,
        Ok(Ok(false)) => std::process::ExitCode::from(1),
        Ok(Err(e)) => {
            eprintln!("kadm-bench-scheduler: {e:#}");
            std::process::ExitCode::from(2)
        }
        Err(_) => {
            eprintln!("kadm-bench-scheduler: gave up after {:?}", PHASE_LIMIT * 4);
            std::process::ExitCode::from(2)
        }
    }
}
