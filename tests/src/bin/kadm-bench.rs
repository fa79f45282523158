//! kadm-bench: the API benchmark behind `make bench-api`.
//!
//! Starts its own etcd and release kadm-apiserver on loopback (the kadm-e2e fixture)
//! and measures, printing each figure next to its target:
//!
//! 1. create throughput: `--clients` concurrent HTTP/2 clients (one connection each,
//!    as separate client-go processes) create `--objects` 1 KiB ConfigMaps through the
//!    apiserver; the same payloads go straight into etcd (etcd-client, same
//!    concurrency, the same `create if absent` transaction the apiserver uses, keys laid
//!    out as `/registry/configmaps/<ns>/<name>` under a root of their own so they never
//!    become API objects). The two sides alternate in [`CREATE_ROUNDS`] rounds so that
//!    neither meets a larger etcd than the other.
//! 2. LIST of `--pods` realistic pods (a Deployment's pod with status, ~3 KiB, written
//!    straight into etcd), consistent reads (`resourceVersion` unset), `--lists` times,
//!    one after the other on one HTTP/2 connection, each timed until its whole body has
//!    arrived (not decoded); then as many at `resourceVersion=0`.
//! 3. watch fan-out: `--watchers` watchers (one HTTP/2 connection each) on those pods,
//!    `--updates` pod updates by `--writers` concurrent writers; latency from a write's
//!    acknowledgement (its response) to each watcher's receipt of the event (0 when the
//!    event arrives first). Watchers find the event's resourceVersion by a byte search
//!    instead of decoding it, so the load generator stays out of the figure.
//! 4. the apiserver's resident memory (VmRSS) with the ConfigMaps cached.
//!
//! Below the table: CPU time per operation of etcd, the apiserver and this client
//! (`/proc/<pid>/stat`), and etcd's WAL fsyncs per create run (its metrics): on a small
//! machine they say what bounds the throughput.
//!
//! Every loop is bounded by a count and every phase by [`PHASE_LIMIT`]; both processes
//! are stopped by pid when the cluster is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, TlsOptions, Txn, TxnOp,
};
use http::Method;
use kadm_e2e::bench::{
    PHASE_LIMIT, Stats, bounded, cpu_seconds, create_namespace, machine, memory_mib, ms,
    run_concurrently, stats, verdict,
};
use kadm_e2e::{Options, TestCluster, Windows};
use serde_json::{Value, json};

const CM_NAMESPACE: &str = "bench";
const POD_NAMESPACE: &str = "bench-pods";
/// Where the raw-etcd baseline writes (same layout below `/registry/`, never an API object).
const RAW_ROOT: &str = "/bench-etcd";

#[derive(Debug, Clone)]
struct Params {
    objects: usize,
    clients: usize,
    pods: usize,
    lists: usize,
    watchers: usize,
    updates: usize,
    writers: usize,
    /// Print every list latency.
    verbose: bool,
    /// Extra kadm-apiserver flags (`--apiserver-arg=--etcd-connections=4`), to compare
    /// tunings in one place.
    apiserver_args: Vec<String>,
}

impl Params {
    fn parse() -> anyhow::Result<Params> {
        let mut p = Params {
            objects: 20_000,
            clients: 32,
            pods: 10_000,
            lists: 50,
            watchers: 200,
            updates: 2_000,
            writers: 8,
            verbose: false,
            apiserver_args: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            if a == "--verbose" {
                p.verbose = true;
                continue;
            }
            if let Some(flag) = a.strip_prefix("--apiserver-arg=") {
                p.apiserver_args.push(flag.to_string());
                continue;
            }
            if a == "--quick" {
                p = Params {
                    objects: 2_000,
                    pods: 1_000,
                    lists: 10,
                    watchers: 20,
                    updates: 200,
                    ..p
                };
                continue;
            }
            if a == "-h" || a == "--help" {
                println!(
                    "kadm-bench [--quick] [--verbose] [--apiserver-arg=FLAG]... [--objects N] [--clients N] [--pods N] [--lists N] [--watchers N] [--updates N] [--writers N]"
                );
                std::process::exit(0);
            }
            let v: usize = args
                .next()
                .with_context(|| format!("{a} needs a value"))?
                .parse()
                .with_context(|| format!("{a} takes a number"))?;
            anyhow::ensure!(v > 0, "{a} must be positive");
            match a.as_str() {
                "--objects" => p.objects = v,
                "--clients" => p.clients = v,
                "--pods" => p.pods = v,
                "--lists" => p.lists = v,
                "--watchers" => p.watchers = v,
                "--updates" => p.updates = v.min(p.pods),
                "--writers" => p.writers = v,
                other => bail!("unknown argument {other}; see --help"),
            }
        }
        p.updates = p.updates.min(p.pods);
        Ok(p)
    }
}

/// The 1 KiB ConfigMap both create runs write (request body = stored value).
fn configmap(i: usize) -> Vec<u8> {
    let filler: String = (0..1024)
        .map(|k| (b'a' + ((i + k) % 26) as u8) as char)
        .collect();
    serde_json::to_vec(&json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i:05}"), "namespace": CM_NAMESPACE, "labels": {"app": "bench", "shard": (i % 16).to_string()}},
        "data": {"payload": filler},
    }))
    .unwrap_or_default()
}

/// A pod as a Deployment's ReplicaSet creates it and the kubelet reports it, in the
/// stored form (defaults applied, status set, no resourceVersion): about 3 KiB.
fn pod(i: usize) -> Value {
    let hash = "7d9c5b8f6d";
    let name = format!("web-{hash}-{i:05}");
    let node = format!("node-{:03}", i % 200);
    let t = "2025-06-01T10:00:00Z";
    let cond = |ty: &str| json!({"type": ty, "status": "True", "lastProbeTime": null, "lastTransitionTime": t});
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "generateName": format!("web-{hash}-"), "namespace": POD_NAMESPACE,
            "uid": format!("5f0c2a4e-1b7d-4c3a-9e2f-{i:012}"),
            "creationTimestamp": t,
            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{hash}"),
                "uid": "0b6e4c1d-2f3a-4b5c-8d9e-0a1b2c3d4e5f", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "volumes": [{"name": "kube-api-access-x7k2p", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ], "defaultMode": 420}}],
            "containers": [{
                "name": "web", "image": "registry.example.com/shop/web:1.24.3",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"},
                    "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": node,
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"), cond("ContainersReady"), cond("PodScheduled")],
            "hostIP": format!("10.0.{}.{}", (i % 200) / 250, (i % 200) % 250 + 1),
            "hostIPs": [{"ip": format!("10.0.{}.{}", (i % 200) / 250, (i % 200) % 250 + 1)}],
            "podIP": format!("10.244.{}.{}", i / 250, i % 250 + 1),
            "podIPs": [{"ip": format!("10.244.{}.{}", i / 250, i % 250 + 1)}],
            "startTime": t,
            "containerStatuses": [{"name": "web", "state": {"running": {"startedAt": t}}, "lastState": {},
                "ready": true, "restartCount": 0, "image": "registry.example.com/shop/web:1.24.3",
                "imageID": "registry.example.com/shop/web@sha256:9b2f0c6e4a1d8f3b7c5e2a9d6f1b4c8e3a7d2f5b9c1e6a4d8f2b7c3e5a9d1f6b",
                "containerID": format!("containerd://{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15),
                "started": true}],
            "qosClass": "Burstable"
        }
    })
}

/// The first `"resourceVersion":"N"` of a line: the object's, in a watch event.
fn line_rv(line: &[u8]) -> Option<i64> {
    const NEEDLE: &[u8] = b"\"resourceVersion\":\"";
    let at = line.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let digits = &line[at..];
    let end = digits.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// CPU used by etcd, the apiserver and this benchmark between two samples.
#[derive(Clone, Copy)]
struct Cpu {
    etcd: f64,
    apiserver: f64,
    bench: f64,
}

impl Cpu {
    fn sample(etcd: u32, apiserver: u32) -> Cpu {
        Cpu {
            etcd: cpu_seconds(etcd),
            apiserver: cpu_seconds(apiserver),
            bench: cpu_seconds(std::process::id()),
        }
    }
    /// Microseconds per operation since `before`.
    fn per_op(self, before: Cpu, ops: usize) -> String {
        let us = |a: f64, b: f64| (a - b) * 1e6 / ops.max(1) as f64;
        format!(
            "CPU/op: etcd {:.0} µs, apiserver {:.0} µs, client {:.0} µs",
            us(self.etcd, before.etcd),
            us(self.apiserver, before.apiserver),
            us(self.bench, before.bench)
        )
    }
}

/// etcd's WAL fsyncs so far: (count, total seconds), from its metrics listener.
async fn etcd_fsyncs(etcd_pid: u32) -> (f64, f64) {
    let port = std::fs::read(format!("/proc/{etcd_pid}/cmdline"))
        .ok()
        .and_then(|c| {
            let args: Vec<String> = c
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let i = args.iter().position(|a| a == "--listen-metrics-urls")?;
            args.get(i + 1)?.rsplit(':').next()?.parse::<u16>().ok()
        });
    let Some(port) = port else { return (0.0, 0.0) };
    let text = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    let text = match tokio::time::timeout(Duration::from_secs(5), text).await {
        Ok(Ok(t)) => t,
        _ => return (0.0, 0.0),
    };
    let get = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        get("etcd_disk_wal_fsync_duration_seconds_count"),
        get("etcd_disk_wal_fsync_duration_seconds_sum"),
    )
}

fn fsync_summary(before: (f64, f64), after: (f64, f64), writes: usize) -> String {
    let n = after.0 - before.0;
    format!(
        "etcd WAL fsyncs: {n:.0} ({:.1} writes each, mean {:.1} ms)",
        writes as f64 / n.max(1.0),
        (after.1 - before.1) * 1000.0 / n.max(1.0)
    )
}

/// Rounds the create phase alternates between etcd and the apiserver.
const CREATE_ROUNDS: usize = 4;

/// One side of the create comparison, summed over its rounds.
#[derive(Default)]
struct Side {
    lat: Vec<Duration>,
    took: Duration,
    ops: usize,
    /// CPU seconds of etcd, the apiserver and this process during the side's rounds.
    cpu: (f64, f64, f64),
    /// etcd WAL fsyncs (count, seconds) during the side's rounds.
    fsyncs: (f64, f64),
}

impl Side {
    async fn measure(
        &mut self,
        etcd: u32,
        apiserver: u32,
        ops: usize,
        run: impl std::future::Future<Output = anyhow::Result<(Vec<Duration>, Duration)>>,
    ) -> anyhow::Result<()> {
        let cpu0 = Cpu::sample(etcd, apiserver);
        let fs0 = etcd_fsyncs(etcd).await;
        let (lat, took) = run.await?;
        let cpu1 = Cpu::sample(etcd, apiserver);
        let fs1 = etcd_fsyncs(etcd).await;
        self.lat.extend(lat);
        self.took += took;
        self.ops += ops;
        self.cpu.0 += cpu1.etcd - cpu0.etcd;
        self.cpu.1 += cpu1.apiserver - cpu0.apiserver;
        self.cpu.2 += cpu1.bench - cpu0.bench;
        self.fsyncs.0 += fs1.0 - fs0.0;
        self.fsyncs.1 += fs1.1 - fs0.1;
        Ok(())
    }

    fn stats(self) -> Stats {
        stats(self.lat, self.took)
    }

    fn cpu_summary(&self) -> String {
        let us = |s: f64| s * 1e6 / self.ops.max(1) as f64;
        format!(
            "CPU/op: etcd {:.0} µs, apiserver {:.0} µs, client {:.0} µs",
            us(self.cpu.0),
            us(self.cpu.1),
            us(self.cpu.2)
        )
    }

    fn fsync_summary(&self) -> String {
        fsync_summary((0.0, 0.0), self.fsyncs, self.ops)
    }
}

async fn etcd(cluster: &TestCluster) -> anyhow::Result<Client> {
    let read =
        |p: std::path::PathBuf| std::fs::read(&p).with_context(|| format!("read {}", p.display()));
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(cluster.etcd_ca_path())?))
        .identity(Identity::from_pem(
            read(cluster.etcd_client_cert_path())?,
            read(cluster.etcd_client_key_path())?,
        ));
    Ok(Client::connect(
        [cluster.etcd_endpoint()],
        Some(ConnectOptions::new().with_tls(tls)),
    )
    .await?)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(all_pass) => {
            if all_pass {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("kadm-bench: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let p = Params::parse()?;
    println!("kadm-bench: {}", machine());
    println!("parameters: {p:?}");
    let cluster = TestCluster::start_with(Options {
        apiserver_args: p.apiserver_args.clone(),
        apiserver_log: Some("info".into()),
        quiet: true,
    })
    .await?;
    let pid = cluster.apiserver_pid();
    println!(
        "cluster: etcd pid {}, kadm-apiserver pid {pid} ({})",
        cluster.etcd_pid(),
        kadm_e2e::cluster::apiserver_binary()?.display()
    );
    let admin = cluster.h2(Windows::GENEROUS).await?;
    create_namespace(&admin, CM_NAMESPACE).await?;
    create_namespace(&admin, POD_NAMESPACE).await?;
    let etcd = etcd(&cluster).await?;

    // 1. create throughput: straight into etcd and through the apiserver, in alternating
    // rounds, so both sides meet the same etcd (its database and revision history grow
    // with every write, and a later side would pay for the earlier one's keys).
    let n = p.objects;
    let etcd_pid = cluster.etcd_pid();
    let mut clients = Vec::new();
    for _ in 0..p.clients {
        clients.push(cluster.h2(Windows::GENEROUS).await?);
    }
    let clients = Arc::new(clients);
    let path = format!("/api/v1/namespaces/{CM_NAMESPACE}/configmaps");
    let mut raw_side = Side::default();
    let mut api_side = Side::default();
    for round in 0..CREATE_ROUNDS {
        let from = n * round / CREATE_ROUNDS;
        let count = n * (round + 1) / CREATE_ROUNDS - from;
        let kv = etcd.kv_client();
        raw_side
            .measure(etcd_pid, pid, count, async {
                bounded(
                    "creates straight into etcd",
                    run_concurrently(count, p.clients, move |_, i| {
                        let mut kv = kv.clone();
                        let i = from + i;
                        async move {
                            let key =
                                format!("{RAW_ROOT}/registry/configmaps/{CM_NAMESPACE}/cm-{i:05}");
                            let txn = Txn::new()
                                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                                .and_then([TxnOp::put(key, configmap(i), None)]);
                            let r = kv.txn(txn).await?;
                            anyhow::ensure!(r.succeeded(), "key {i} existed");
                            Ok(())
                        }
                    }),
                )
                .await
            })
            .await?;
        let clients = clients.clone();
        let path = path.clone();
        api_side
            .measure(etcd_pid, pid, count, async {
                bounded(
                    "creates through the apiserver",
                    run_concurrently(count, p.clients, move |w, i| {
                        let c = clients[w].clone();
                        let path = path.clone();
                        let i = from + i;
                        async move {
                            let r = c
                                .request(
                                    Method::POST,
                                    &path,
                                    Some("application/json"),
                                    configmap(i),
                                )
                                .await?;
                            anyhow::ensure!(
                                r.status == 201,
                                "create {i}: {} {}",
                                r.status,
                                r.text()
                            );
                            Ok(())
                        }
                    }),
                )
                .await
            })
            .await?;
    }
    drop(clients);
    etcd.kv_client()
        .delete(
            RAW_ROOT,
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await?;
    let raw_cpu = raw_side.cpu_summary();
    let raw_fsync = raw_side.fsync_summary();
    let api_cpu = api_side.cpu_summary();
    let api_fsync = api_side.fsync_summary();
    let raw = raw_side.stats();
    let api = api_side.stats();

    // 4. memory with the ConfigMaps cached (a consistent list proves the cache has them).
    let r = admin
        .get(&format!(
            "/api/v1/namespaces/{CM_NAMESPACE}/configmaps?limit=1"
        ))
        .await?;
    let first = r.json()?;
    anyhow::ensure!(
        first["metadata"]["remainingItemCount"].as_u64() == Some(n as u64 - 1),
        "the cache does not hold the {n} ConfigMaps: {}",
        first["metadata"]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss, hwm) = memory_mib(pid)?;

    // 2. LIST of realistic pods, written straight into etcd.
    let kv = etcd.kv_client();
    bounded(
        "writing pods into etcd",
        run_concurrently(p.pods, p.clients, move |_, i| {
            let mut kv = kv.clone();
            async move {
                let v = pod(i);
                let key = format!(
                    "/registry/pods/{POD_NAMESPACE}/{}",
                    v["metadata"]["name"].as_str().unwrap_or_default()
                );
                kv.put(key, serde_json::to_vec(&v)?, None).await?;
                Ok(())
            }
        }),
    )
    .await?;
    let pod_bytes = serde_json::to_vec(&pod(0))?.len();
    let lister = cluster.h2(Windows::GENEROUS).await?;
    let pods_path = format!("/api/v1/namespaces/{POD_NAMESPACE}/pods");
    // One list to warm up (and to wait for the cache to hold every pod).
    let (status, list_size) = lister.get_counted(&pods_path).await?;
    anyhow::ensure!(status == 200, "list pods: {status}");
    let mut lat = Vec::new();
    let started = Instant::now();
    bounded("lists", async {
        for _ in 0..p.lists {
            let t = Instant::now();
            let (status, len) = lister.get_counted(&pods_path).await?;
            anyhow::ensure!(status == 200 && len > list_size / 2, "list: {status}");
            lat.push(t.elapsed());
        }
        Ok(())
    })
    .await?;
    if p.verbose {
        println!(
            "list latencies (ms, in order): {:?}",
            lat.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
        );
    }
    let lists = stats(lat, started.elapsed());
    let mut lat0 = Vec::new();
    let started = Instant::now();
    bounded("lists at resourceVersion=0", async {
        for _ in 0..p.lists {
            let t = Instant::now();
            let (status, _) = lister
                .get_counted(&format!("{pods_path}?resourceVersion=0"))
                .await?;
            anyhow::ensure!(status == 200, "list: {status}");
            lat0.push(t.elapsed());
        }
        Ok(())
    })
    .await?;
    let lists0 = stats(lat0, started.elapsed());
    // The answer itself: every pod, and the revision the watchers start from.
    let full = lister.get(&pods_path).await?;
    let parsed = full.json()?;
    let items = parsed["items"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(items == p.pods, "the list has {items} pods, not {}", p.pods);
    let list_rv: i64 = parsed["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("list resourceVersion")?;
    drop(parsed);
    drop(full);

    // 3. watch fan-out.
    let cpu_watch = Cpu::sample(etcd_pid, pid);
    let mut watchers = Vec::new();
    let expected = p.updates;
    let watch_deadline = Instant::now() + PHASE_LIMIT;
    for _ in 0..p.watchers {
        let c = cluster.h2(Windows::GENEROUS).await?;
        let (status, mut lines) = c
            .stream(&format!("{pods_path}?watch=true&resourceVersion={list_rv}"))
            .await?;
        anyhow::ensure!(status == 200, "watch: {status}");
        watchers.push(tokio::spawn(async move {
            let _conn = c;
            let mut got: Vec<(i64, Instant)> = Vec::with_capacity(expected);
            while got.len() < expected && Instant::now() < watch_deadline {
                let left = watch_deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, lines.next()).await {
                    Ok(Ok(Some(line))) => {
                        let now = Instant::now();
                        if let Some(rv) = line_rv(&line)
                            && !line.starts_with(b"{\"type\":\"BOOKMARK\"")
                        {
                            got.push((rv, now));
                        }
                    }
                    _ => break,
                }
            }
            got
        }));
    }
    let acks: Arc<Mutex<HashMap<i64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let mut writer_conns = Vec::new();
    for _ in 0..p.writers {
        writer_conns.push(cluster.h2(Windows::GENEROUS).await?);
    }
    let writer_conns = Arc::new(writer_conns);
    let (_, update_took) = {
        let acks = acks.clone();
        let conns = writer_conns.clone();
        bounded(
            "updates",
            run_concurrently(p.updates, p.writers, move |w, i| {
                let c = conns[w].clone();
                let acks = acks.clone();
                async move {
                    let name = pod(i)["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let body = serde_json::to_vec(
                        &json!({"metadata": {"annotations": {"bench.kadm.io/tick": i.to_string()}}}),
                    )?;
                    let r = c
                        .request(
                            Method::PATCH,
                            &format!("/api/v1/namespaces/{POD_NAMESPACE}/pods/{name}"),
                            Some("application/merge-patch+json"),
                            Bytes::from(body),
                        )
                        .await?;
                    let acked = Instant::now();
                    anyhow::ensure!(r.status == 200, "update {i}: {} {}", r.status, r.text());
                    let rv = line_rv(&r.body).context("no resourceVersion in the update")?;
                    if let Ok(mut a) = acks.lock() {
                        a.insert(rv, acked);
                    }
                    Ok(())
                }
            }),
        )
        .await?
    };
    let mut delivery = Vec::with_capacity(p.updates * p.watchers);
    let mut missing = 0usize;
    let mut out_of_order = 0usize;
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    for w in watchers {
        let got = w.await?;
        missing += expected.saturating_sub(got.len());
        out_of_order += got.windows(2).filter(|p| p[0].0 >= p[1].0).count();
        for (rv, at) in got {
            if let Some(ack) = acks.get(&rv) {
                delivery.push(at.saturating_duration_since(*ack));
            }
        }
    }
    let fanout = stats(delivery, update_took);
    let fanout_cpu = Cpu::sample(etcd_pid, pid).per_op(cpu_watch, p.updates);
    let (rss_end, hwm_end) = memory_mib(pid)?;

    // The table.
    let ratio = api.rate / raw.rate.max(1e-9);
    let create_ok = ratio >= 0.5;
    let list_ok = lists.p99 <= Duration::from_millis(150);
    let watch_ok = fanout.p99 <= Duration::from_millis(50) && missing == 0 && out_of_order == 0;
    let mem_ok = rss <= 200.0;
    println!();
    println!("| measurement | result | target | verdict |\n|---|---|---|---|");
    println!(
        "| create {} ConfigMaps (1 KiB), {} clients, straight into etcd | {:.0}/s, p50 {}, p99 {} | (baseline) | |",
        raw.n,
        p.clients,
        raw.rate,
        ms(raw.p50),
        ms(raw.p99)
    );
    println!(
        "| create {} ConfigMaps (1 KiB), {} clients, through kadm-apiserver (HTTP/2) | {:.0}/s, p50 {}, p99 {} = {:.0} % of etcd | ≥ 50 % of etcd | {} |",
        api.n,
        p.clients,
        api.rate,
        ms(api.p50),
        ms(api.p99),
        ratio * 100.0,
        verdict(create_ok)
    );
    println!(
        "| LIST {} pods (~{:.1} KiB each, {:.1} MiB JSON), consistent, ×{} | p50 {}, p99 {}, max {} | p99 ≤ 150 ms | {} |",
        p.pods,
        pod_bytes as f64 / 1024.0,
        list_size as f64 / 1048576.0,
        lists.n,
        ms(lists.p50),
        ms(lists.p99),
        ms(lists.max),
        verdict(list_ok)
    );
    println!(
        "| LIST {} pods, resourceVersion=0, ×{} | p50 {}, p99 {} | (informational) | |",
        p.pods,
        lists0.n,
        ms(lists0.p50),
        ms(lists0.p99)
    );
    println!(
        "| watch fan-out: {} watchers × {} pod updates ({} writers, {:.0} updates/s), ack → receipt | p50 {}, p99 {}, max {}; {} events, {} missing, {} out of order | p99 ≤ 50 ms | {} |",
        p.watchers,
        p.updates,
        p.writers,
        p.updates as f64 / update_took.as_secs_f64().max(1e-9),
        ms(fanout.p50),
        ms(fanout.p99),
        ms(fanout.max),
        fanout.n,
        missing,
        out_of_order,
        verdict(watch_ok)
    );
    println!(
        "| apiserver VmRSS with {} ConfigMaps cached | {:.0} MiB (peak {:.0} MiB) | ≤ 200 MiB | {} |",
        n,
        rss,
        hwm,
        verdict(mem_ok)
    );
    println!(
        "| apiserver VmRSS at the end ({} ConfigMaps + {} pods cached, {} watchers open) | {:.0} MiB (peak {:.0} MiB) | (informational) | |",
        n, p.pods, p.watchers, rss_end, hwm_end
    );
    println!();
    println!("create straight into etcd: {raw_cpu}; {raw_fsync}");
    println!("create through kadm-apiserver: {api_cpu}; {api_fsync}");
    println!("watch fan-out, per update (incl. watcher set-up): {fanout_cpu}");
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(create_ok && list_ok && watch_ok && mem_ok)
}
