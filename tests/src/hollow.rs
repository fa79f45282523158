//! Hollow nodes: kubelets without containers, the way Kubernetes' kubemark simulates them.
//!
//! Controllers and the scheduler only see a kubelet through the API: a Node object with
//! capacity and conditions, a Lease in `kube-node-lease` renewed every few seconds, and pod
//! statuses. [`HollowNodes`] produces exactly that for N nodes from one process, so tests
//! and benchmarks can run thousands of nodes on one machine:
//!
//! ```text
//!  start ─► register Nodes (bounded concurrency) ─► create Leases ─► spawn:
//!     lease loop     every `lease_renew`: renew every live node's Lease (bounded concurrency)
//!     pod watch      one watch on pods with spec.nodeName != "" ─► store ─► shard by pod
//!     pod workers    per pod, serially: Running+Ready / job exit / finish graceful deletion
//!     timers         job pods' exits, retries after failed writes
//!     node watch     re-posts Ready=True when a controller marked a live node otherwise
//! ```
//!
//! A silenced node behaves like a dead kubelet: its Lease goes stale, its pods keep their
//! last status and graceful deletions of its pods never finish. Reviving it renews the
//! lease, re-posts the node's conditions and syncs its pods at once, as a restarted
//! kubelet does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Seconds after Running at which a job-ish pod's containers exit.
pub const EXIT_AFTER_ANNOTATION: &str = "hollow.kadm.io/exit-after-seconds";
/// The exit code of a job-ish pod's containers (non-zero: the pod fails).
pub const EXIT_CODE_ANNOTATION: &str = "hollow.kadm.io/exit-code";
/// Where kubelets keep their heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The zone label kubelets set from their cloud provider.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The kubelet's default `nodeLeaseDurationSeconds`.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Apiserver calls in flight while registering nodes.
const REGISTER_CONCURRENCY: usize = 32;
/// Apiserver calls in flight while renewing leases.
const LEASE_CONCURRENCY: usize = 32;
/// Pod workers; one pod is always handled by the same worker, so its writes are serial.
const POD_WORKERS: usize = 32;
/// Node status re-posts in flight.
const NODE_CONCURRENCY: usize = 8;
/// Attempts at one pod write before it waits for the pod's next change.
const MAX_ATTEMPTS: u32 = 10;
const RETRY_BASE: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Where pod IPs come from while a node has no `spec.podCIDR`: a /24 per node from here.
const FALLBACK_POD_NET: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 0);
/// Nodes' InternalIPs: node `i` gets this plus `i + 1`.
const NODE_NET: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 0);

/// What the hollow nodes look like.
#[derive(Debug, Clone)]
pub struct HollowSpec {
    pub count: usize,
    /// Nodes are named `{name_prefix}-{i}`.
    pub name_prefix: String,
    /// Capacity and allocatable (they are equal: a hollow kubelet reserves nothing).
    pub cpu: String,
    pub memory: String,
    pub ephemeral_storage: String,
    pub pods: u32,
    /// Labels on every node, besides the kubelet's own (`kubernetes.io/hostname`, os, arch).
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// How often leases are renewed (the kubelet renews every 10 s).
    pub lease_renew: Duration,
    /// 0: no zone label; else node `i` gets `topology.kubernetes.io/zone=zone-{i % zones}`.
    pub zones: usize,
    /// Run the pod side of the kubelet (statuses, deletions). Off for benchmarks that
    /// measure the scheduler alone, as Kubernetes' scheduler_perf does: bound pods then
    /// stay Pending and cost the apiserver nothing.
    pub manage_pods: bool,
}

impl Default for HollowSpec {
    fn default() -> Self {
        Self {
            count: 3,
            name_prefix: "hollow".to_string(),
            cpu: "4".to_string(),
            memory: "16Gi".to_string(),
            ephemeral_storage: "100Gi".to_string(),
            pods: 110,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            lease_renew: Duration::from_secs(10),
            zones: 0,
            manage_pods: true,
        }
    }
}

/// One simulated kubelet.
struct NodeState {
    uid: String,
    internal_ip: Ipv4Addr,
    silenced: AtomicBool,
    /// Pod IPs handed out so far (they wrap around the node's range).
    next_ip: AtomicU32,
    /// `spec.podCIDR` as (network, size) once node IPAM assigned one.
    pod_cidr: Mutex<Option<(u32, u32)>>,
    fallback_net: u32,
}

/// What the last successful write of a pod was based on: until the watch shows a newer
/// version, the store is stale and the pod needs nothing.
struct Written {
    uid: String,
    based_on: String,
}

struct Shared {
    client: Client,
    names: Vec<String>,
    nodes: HashMap<String, NodeState>,
    /// Pods bound to our nodes, by `namespace/name`.
    pods: Mutex<HashMap<String, Arc<Pod>>>,
    /// Pods queued for a worker (a pod is queued at most once).
    pending: Mutex<HashSet<String>>,
    written: Mutex<HashMap<String, Written>>,
    failures: Mutex<HashMap<String, u32>>,
    shards: Vec<mpsc::UnboundedSender<String>>,
    timers: mpsc::UnboundedSender<(Instant, String)>,
    node_work: mpsc::UnboundedSender<String>,
    nodes_pending: Mutex<HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// N simulated kubelets; every task stops when this is stopped or dropped.
pub struct HollowNodes {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl HollowNodes {
    /// Registers the nodes and their leases, then starts the lease loop, the pod watch and
    /// the workers. Returns once every node and lease exists.
    pub async fn start(client: Client, spec: HollowSpec) -> anyhow::Result<HollowNodes> {
        anyhow::ensure!(spec.count > 0, "hollow nodes: count must be at least 1");
        anyhow::ensure!(
            !spec.lease_renew.is_zero(),
            "hollow nodes: lease_renew must be positive"
        );
        let names: Vec<String> = (0..spec.count)
            .map(|i| format!("{}-{i}", spec.name_prefix))
            .collect();
        let registered: Vec<(usize, String)> = futures::stream::iter(names.iter().enumerate())
            .map(|(i, name)| {
                let client = client.clone();
                let node = node_object(&spec, i, name);
                async move { register(&client, node).await.map(|uid| (i, uid)) }
            })
            .buffer_unordered(REGISTER_CONCURRENCY)
            .try_collect()
            .await?;
        let mut nodes = HashMap::with_capacity(names.len());
        for (i, uid) in registered {
            nodes.insert(
                names[i].clone(),
                NodeState {
                    uid,
                    internal_ip: node_ip(i),
                    silenced: AtomicBool::new(false),
                    next_ip: AtomicU32::new(0),
                    pod_cidr: Mutex::new(None),
                    fallback_net: u32::from(FALLBACK_POD_NET)
                        .wrapping_add(u32::try_from(i % 16_384).unwrap_or(0) << 8),
                },
            );
        }

        let (timers_tx, timers_rx) = mpsc::unbounded_channel();
        let (node_tx, node_rx) = mpsc::unbounded_channel();
        let mut shard_rx = Vec::with_capacity(POD_WORKERS);
        let mut shards = Vec::with_capacity(POD_WORKERS);
        for _ in 0..POD_WORKERS {
            let (tx, rx) = mpsc::unbounded_channel();
            shards.push(tx);
            shard_rx.push(rx);
        }
        let shared = Arc::new(Shared {
            client,
            names,
            nodes,
            pods: Mutex::default(),
            pending: Mutex::default(),
            written: Mutex::default(),
            failures: Mutex::default(),
            shards,
            timers: timers_tx,
            node_work: node_tx,
            nodes_pending: Mutex::default(),
        });

        futures::stream::iter(shared.names.iter())
            .map(|name| {
                let shared = shared.clone();
                async move { shared.create_lease(name).await }
            })
            .buffer_unordered(LEASE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;

        let mut tasks = Vec::new();
        if spec.manage_pods {
            for rx in shard_rx {
                tasks.push(tokio::spawn(shared.clone().pod_worker(rx)));
            }
            tasks.push(tokio::spawn(shared.clone().timer_loop(timers_rx)));
            tasks.push(tokio::spawn(shared.clone().pod_watch()));
        }
        tasks.push(tokio::spawn(shared.clone().lease_loop(spec.lease_renew)));
        tasks.push(tokio::spawn(shared.clone().node_watch()));
        tasks.push(tokio::spawn(shared.clone().node_worker(node_rx)));
        tracing::info!(
            nodes = shared.names.len(),
            prefix = %spec.name_prefix,
            "hollow nodes registered"
        );
        Ok(HollowNodes { shared, tasks })
    }

    /// The node names, in index order.
    pub fn names(&self) -> Vec<String> {
        self.shared.names.clone()
    }

    /// The node stops renewing its lease and stops touching its pods: a dead kubelet.
    pub fn silence(&self, node: &str) {
        match self.shared.nodes.get(node) {
            Some(n) => n.silenced.store(true, Ordering::SeqCst),
            None => tracing::warn!(node, "silence: not a hollow node of this simulator"),
        }
    }

    /// The node comes back: it renews its lease, re-posts Ready and syncs its pods now.
    pub fn revive(&self, node: &str) {
        let Some(n) = self.shared.nodes.get(node) else {
            tracing::warn!(node, "revive: not a hollow node of this simulator");
            return;
        };
        n.silenced.store(false, Ordering::SeqCst);
        self.shared.queue_node(node);
        let keys: Vec<String> = lock(&self.shared.pods)
            .iter()
            .filter(|(_, p)| node_name(p) == Some(node))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.shared.queue_pod(&k);
        }
    }

    /// Whether `node` is currently silenced.
    pub fn is_silenced(&self, node: &str) -> bool {
        self.shared
            .nodes
            .get(node)
            .is_some_and(|n| n.silenced.load(Ordering::SeqCst))
    }

    /// Stops every task and waits until they are gone. Nodes and leases stay in the API.
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(NODE_NET).wrapping_add(u32::try_from(i).unwrap_or(u32::MAX - 1) + 1))
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

fn shard_of(key: &str) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    usize::try_from(h.finish() % POD_WORKERS as u64).unwrap_or(0)
}

fn ts(t: Timestamp) -> Value {
    serde_json::to_value(Time(t)).unwrap_or(Value::Null)
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The Node a kubelet registers: labels, taints, capacity = allocatable, conditions.
fn node_object(spec: &HollowSpec, i: usize, name: &str) -> Node {
    let mut labels = spec.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), name.to_string());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), "amd64".into());
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    labels.insert("beta.kubernetes.io/arch".into(), "amd64".into());
    if spec.zones > 0 {
        labels.insert(ZONE_LABEL.into(), format!("zone-{}", i % spec.zones));
    }
    let resources = json!({
        "cpu": spec.cpu,
        "memory": spec.memory,
        "ephemeral-storage": spec.ephemeral_storage,
        "pods": spec.pods.to_string(),
    });
    let now = ts(Timestamp::now());
    let value = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": spec.taints},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": node_conditions(&now),
            "addresses": [
                {"type": "InternalIP", "address": node_ip(i).to_string()},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", i),
                "systemUUID": format!("hollow-{name}"),
                "bootID": format!("hollow-boot-{name}"),
                "kernelVersion": "6.1.0-hollow",
                "osImage": "kadm hollow node",
                "containerRuntimeVersion": "hollow://0.1.0",
                "kubeletVersion": kadm_base::KUBERNETES_VERSION,
                "kubeProxyVersion": kadm_base::KUBERNETES_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    });
    let mut node: Node = serde_json::from_value(value).unwrap_or_default();
    if spec.taints.is_empty()
        && let Some(s) = node.spec.as_mut()
    {
        s.taints = None;
    }
    node
}

/// The conditions a healthy kubelet posts, with Kubernetes' reasons and messages.
fn node_conditions(now: &Value) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        })
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// Creates the node; an existing one (a rerun) gets our labels, taints and status. Its uid.
async fn register(client: &Client, node: Node) -> anyhow::Result<String> {
    let api = Api::<Node>::all(client.clone());
    let name = node.name_any();
    match api.create(&PostParams::default(), &node).await {
        Ok(n) => return Ok(n.uid().unwrap_or_default()),
        Err(e) if api_code(&e) == Some(409) => {}
        Err(e) => return Err(e).with_context(|| format!("register hollow node {name}")),
    }
    let meta = json!({
        "metadata": {"labels": node.metadata.labels},
        "spec": {"taints": node.spec.as_ref().and_then(|s| s.taints.clone())},
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&meta))
        .await
        .with_context(|| format!("update existing hollow node {name}"))?;
    let status = json!({"status": node.status});
    let n = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("update the status of existing hollow node {name}"))?;
    Ok(n.uid().unwrap_or_default())
}

/// What a kubelet does next with one of its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodStep {
    /// Nothing until the pod changes.
    Nothing,
    /// Finish a graceful deletion: delete with grace period 0 and a uid precondition.
    Delete,
    /// Write Running with every condition True.
    Run,
    /// The containers exited with this code: write Succeeded (0) or Failed.
    Exit(i32),
    /// Running; its containers exit after this long.
    ExitIn(Duration),
}

/// The exit a job-ish pod asks for (`restartPolicy` Never/OnFailure and one of the
/// annotations): after how long, with which code. Other pods run until deleted.
pub fn job_exit(pod: &Pod) -> Option<(Duration, i32)> {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if !matches!(policy, "Never" | "OnFailure") {
        return None;
    }
    let ann = pod.metadata.annotations.as_ref()?;
    let after = ann.get(EXIT_AFTER_ANNOTATION);
    let code = ann.get(EXIT_CODE_ANNOTATION);
    if after.is_none() && code.is_none() {
        return None;
    }
    let after = after
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let code = code.and_then(|s| s.trim().parse::<i32>().ok()).unwrap_or(0);
    Some((Duration::from_secs(after), code))
}

fn condition_true(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// When the pod's containers started (the earliest running container), else its startTime.
fn started_at(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
        .map(|t| t.0)
        .min()
        .or_else(|| status.start_time.as_ref().map(|t| t.0))
}

fn is_running_and_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let phase_running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
    let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let ready = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().filter(|c| c.ready).count());
    phase_running
        && ready >= containers
        && ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
            .iter()
            .all(|c| condition_true(pod, c))
}

/// Decides what a kubelet does with `pod` at `now`.
pub fn plan(pod: &Pod, now: Timestamp) -> PodStep {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodStep::Delete;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return PodStep::Nothing;
    }
    let running = is_running_and_ready(pod);
    if let Some((after, code)) = job_exit(pod)
        && phase == Some("Running")
        && let Some(started) = started_at(pod)
    {
        let elapsed = now.duration_since(started);
        let after_signed = SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX);
        if elapsed >= after_signed {
            return PodStep::Exit(code);
        }
        if running {
            let left = Duration::try_from(after_signed - elapsed).unwrap_or_default();
            return PodStep::ExitIn(left);
        }
    }
    if running {
        PodStep::Nothing
    } else {
        PodStep::Run
    }
}

fn condition(type_: &str, status: &str, reason: Option<&str>, now: &Value) -> Value {
    let mut c =
        json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn keep_transitions(pod: &Pod, conditions: &mut [Value]) {
    let old = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in conditions {
        let Some(prev) = old.and_then(|o| {
            o.iter()
                .find(|p| Some(p.type_.as_str()) == c["type"].as_str())
        }) else {
            continue;
        };
        if Some(prev.status.as_str()) == c["status"].as_str()
            && let Some(t) = &prev.last_transition_time
        {
            c["lastTransitionTime"] = ts(t.0);
        }
    }
}

fn container_id(pod: &Pod, container: &str) -> String {
    format!("hollow://{}-{container}", pod.uid().unwrap_or_default())
}

/// The `status` a kubelet posts for a pod whose containers all run and are ready.
pub fn running_status(pod: &Pod, pod_ip: &str, host_ip: &str, now: Timestamp) -> Value {
    let now_v = ts(now);
    let status = pod.status.as_ref();
    let start_time = status
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0);
    let previous_start = |name: &str| {
        status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == name))
            .and_then(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref())
            .map_or(now, |t| t.0)
    };
    let spec = pod.spec.as_ref();
    let containers: Vec<Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let state = json!({"running": {"startedAt": ts(previous_start(&c.name))}});
            container_status(pod, c, true, true, state)
        })
        .collect();
    let init: Vec<Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let state = json!({"terminated": {
                "exitCode": 0, "reason": "Completed",
                "startedAt": ts(start_time), "finishedAt": ts(start_time),
                "containerID": container_id(pod, &c.name),
            }});
            container_status(pod, c, true, false, state)
        })
        .collect();
    let mut conditions = vec![
        condition("PodReadyToStartContainers", "True", None, &now_v),
        condition("Initialized", "True", None, &now_v),
        condition("Ready", "True", None, &now_v),
        condition("ContainersReady", "True", None, &now_v),
        condition("PodScheduled", "True", None, &now_v),
    ];
    keep_transitions(pod, &mut conditions);
    let mut out = json!({
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": ts(start_time),
        "containerStatuses": containers,
    });
    if !init.is_empty() {
        out["initContainerStatuses"] = json!(init);
    }
    out
}

/// One entry of `containerStatuses`/`initContainerStatuses` as a kubelet reports it.
fn container_status(
    pod: &Pod,
    c: &k8s_openapi::api::core::v1::Container,
    ready: bool,
    started: bool,
    state: Value,
) -> Value {
    let image = c.image.clone().unwrap_or_default();
    json!({
        "name": c.name,
        "image": image,
        "imageID": format!("hollow://{image}"),
        "containerID": container_id(pod, &c.name),
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
    })
}

/// The `status` of a pod whose containers exited with `code`: Succeeded for 0, else Failed.
pub fn exited_status(pod: &Pod, code: i32, now: Timestamp) -> Value {
    let now_v = ts(now);
    let started = started_at(pod).unwrap_or(now);
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let containers: Vec<Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let state = json!({"terminated": {
                "exitCode": code, "reason": reason,
                "startedAt": ts(started), "finishedAt": now_v,
                "containerID": container_id(pod, &c.name),
            }});
            container_status(pod, c, false, false, state)
        })
        .collect();
    let mut conditions = vec![
        condition("PodReadyToStartContainers", "False", None, &now_v),
        condition("Initialized", "True", None, &now_v),
        condition("Ready", "False", Some("PodCompleted"), &now_v),
        condition("ContainersReady", "False", Some("PodCompleted"), &now_v),
        condition("PodScheduled", "True", None, &now_v),
    ];
    keep_transitions(pod, &mut conditions);
    json!({"phase": phase, "conditions": conditions, "containerStatuses": containers})
}

impl Shared {
    fn live(&self, node: &str) -> Option<&NodeState> {
        self.nodes
            .get(node)
            .filter(|n| !n.silenced.load(Ordering::SeqCst))
    }

    fn queue_pod(&self, key: &str) {
        if lock(&self.pending).insert(key.to_string()) {
            let _ = self.shards[shard_of(key)].send(key.to_string());
        }
    }

    fn queue_node(&self, name: &str) {
        if lock(&self.nodes_pending).insert(name.to_string()) {
            let _ = self.node_work.send(name.to_string());
        }
    }

    fn later(&self, delay: Duration, key: &str) {
        let _ = self.timers.send((Instant::now() + delay, key.to_string()));
    }

    async fn create_lease(&self, name: &str) -> anyhow::Result<()> {
        let Some(node) = self.nodes.get(name) else {
            return Ok(());
        };
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": NODE_LEASE_NAMESPACE,
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": name, "uid": node.uid,
                }],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": MicroTime(Timestamp::now()),
            },
        }))?;
        let api = Api::<Lease>::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE);
        match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(409) => self.renew(name).await,
            Err(e) => Err(e).with_context(|| format!("create the lease of hollow node {name}")),
        }
    }

    async fn renew(&self, name: &str) -> anyhow::Result<()> {
        let api = Api::<Lease>::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE);
        let patch = json!({"spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": MicroTime(Timestamp::now()),
        }});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Box::pin(self.create_lease(name)).await,
            Err(e) => Err(e).with_context(|| format!("renew the lease of hollow node {name}")),
        }
    }

    async fn lease_loop(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The leases were created just now.
        tick.tick().await;
        loop {
            tick.tick().await;
            let me: &Shared = &self;
            futures::stream::iter(me.names.iter())
                .filter(|n| std::future::ready(me.live(n).is_some()))
                .for_each_concurrent(LEASE_CONCURRENCY, |name| async move {
                    if let Err(e) = me.renew(name).await {
                        tracing::warn!(node = %name, error = %format!("{e:#}"), "hollow lease renewal failed");
                    }
                })
                .await;
        }
    }

    async fn pod_watch(self: Arc<Self>) {
        let api = Api::<Pod>::all(self.client.clone());
        let config = watcher::Config::default().fields("spec.nodeName!=");
        let mut stream = watcher(api, config).default_backoff().boxed();
        // Keys seen since the last (re)list started; the rest were deleted meanwhile.
        let mut relisted: Option<HashSet<String>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => relisted = Some(HashSet::new()),
                Ok(watcher::Event::InitApply(pod)) => {
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert(pod_key(&pod));
                    }
                    self.observe(pod);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(seen) = relisted.take() {
                        let gone: Vec<String> = lock(&self.pods)
                            .keys()
                            .filter(|k| !seen.contains(*k))
                            .cloned()
                            .collect();
                        for k in gone {
                            self.forget(&k);
                        }
                    }
                }
                Ok(watcher::Event::Apply(pod)) => self.observe(pod),
                Ok(watcher::Event::Delete(pod)) => self.forget(&pod_key(&pod)),
                Err(e) => tracing::warn!(error = %e, "hollow pod watch trouble, retrying"),
            }
        }
    }

    fn observe(&self, pod: Pod) {
        let key = pod_key(&pod);
        let ours = node_name(&pod).is_some_and(|n| self.nodes.contains_key(n));
        if !ours {
            lock(&self.pods).remove(&key);
            return;
        }
        let live = node_name(&pod).is_some_and(|n| self.live(n).is_some());
        lock(&self.pods).insert(key.clone(), Arc::new(pod));
        if live {
            self.queue_pod(&key);
        }
    }

    fn forget(&self, key: &str) {
        lock(&self.pods).remove(key);
        lock(&self.written).remove(key);
        lock(&self.failures).remove(key);
    }

    async fn pod_worker(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<String>) {
        while let Some(key) = rx.recv().await {
            lock(&self.pending).remove(&key);
            self.sync_pod(&key).await;
        }
    }

    async fn sync_pod(&self, key: &str) {
        let Some(pod) = lock(&self.pods).get(key).cloned() else {
            return;
        };
        let Some(node_name) = node_name(&pod) else {
            return;
        };
        let Some(node) = self.live(node_name) else {
            return;
        };
        let uid = pod.uid().unwrap_or_default();
        let rv = pod.resource_version().unwrap_or_default();
        if lock(&self.written)
            .get(key)
            .is_some_and(|w| w.uid == uid && w.based_on == rv)
        {
            return;
        }
        let now = Timestamp::now();
        let step = plan(&pod, now);
        let result = match &step {
            PodStep::Nothing => return,
            PodStep::ExitIn(left) => {
                self.later(*left, key);
                return;
            }
            PodStep::Delete => self.finish_deletion(&pod).await,
            PodStep::Run => {
                let pod_ip = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_else(|| self.next_pod_ip(node).to_string());
                let status = running_status(&pod, &pod_ip, &node.internal_ip.to_string(), now);
                self.write_status(&pod, status).await
            }
            PodStep::Exit(code) => {
                self.write_status(&pod, exited_status(&pod, *code, now))
                    .await
            }
        };
        match result {
            Ok(()) => {
                lock(&self.failures).remove(key);
                lock(&self.written).insert(key.to_string(), Written { uid, based_on: rv });
                if step == PodStep::Run
                    && let Some((after, _)) = job_exit(&pod)
                {
                    self.later(after, key);
                }
            }
            Err(e) => {
                let failures = {
                    let mut f = lock(&self.failures);
                    let n = f.entry(key.to_string()).or_default();
                    *n += 1;
                    *n
                };
                if failures >= MAX_ATTEMPTS {
                    tracing::warn!(pod = key, error = %e, attempts = failures, "hollow kubelet gave up on a pod until it changes");
                    lock(&self.failures).remove(key);
                } else {
                    let delay = RETRY_BASE
                        .saturating_mul(1 << failures.min(10))
                        .min(RETRY_MAX);
                    tracing::debug!(pod = key, error = %e, retry_ms = delay.as_millis() as u64, "hollow pod write failed");
                    self.later(delay, key);
                }
            }
        }
    }

    fn next_pod_ip(&self, node: &NodeState) -> Ipv4Addr {
        let n = node.next_ip.fetch_add(1, Ordering::Relaxed);
        let (net, size) = lock(&node.pod_cidr).unwrap_or((node.fallback_net, 256));
        let hosts = size.saturating_sub(2).max(1);
        Ipv4Addr::from(net.wrapping_add(1 + n % hosts))
    }

    /// Deletes a terminating pod for good (its containers are "stopped"); a replaced pod
    /// (other uid) or one already gone is fine.
    async fn finish_deletion(&self, pod: &Pod) -> Result<(), kube::Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod.name_any(), &dp).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn write_status(&self, pod: &Pod, status: Value) -> Result<(), kube::Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        // The uid makes the write a precondition: a replaced pod of the same name is left alone.
        let patch = json!({"metadata": {"uid": pod.uid()}, "status": status});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn timer_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<(Instant, String)>) {
        let mut heap: BinaryHeap<std::cmp::Reverse<(Instant, String)>> = BinaryHeap::new();
        loop {
            let next = heap.peek().map(|r| r.0.0);
            tokio::select! {
                got = rx.recv() => match got {
                    Some(t) => heap.push(std::cmp::Reverse(t)),
                    None => return,
                },
                () = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let now = Instant::now();
                    while heap.peek().is_some_and(|r| r.0.0 <= now) {
                        if let Some(std::cmp::Reverse((_, key))) = heap.pop() {
                            self.queue_pod(&key);
                        }
                    }
                }
            }
        }
    }

    async fn node_watch(self: Arc<Self>) {
        let api = Api::<Node>::all(self.client.clone());
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = stream.next().await {
            let node = match event {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "hollow node watch trouble, retrying");
                    continue;
                }
            };
            let name = node.name_any();
            let Some(state) = self.nodes.get(&name) else {
                continue;
            };
            let cidr = node
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.as_deref())
                .and_then(parse_cidr);
            *lock(&state.pod_cidr) = cidr;
            if self.live(&name).is_some() && !node_ready(&node) {
                self.queue_node(&name);
            }
        }
    }

    async fn node_worker(self: Arc<Self>, rx: mpsc::UnboundedReceiver<String>) {
        tokio_stream_from(rx)
            .for_each_concurrent(NODE_CONCURRENCY, |name| {
                let me = self.clone();
                async move {
                    lock(&me.nodes_pending).remove(&name);
                    if me.live(&name).is_none() {
                        return;
                    }
                    if let Err(e) = me.repost(&name).await {
                        tracing::warn!(node = %name, error = %format!("{e:#}"), "hollow node status update failed");
                    }
                }
            })
            .await;
    }

    /// What a kubelet does on its next status sync after coming back: renew the lease and
    /// post its own conditions when the node shows anything else.
    async fn repost(&self, name: &str) -> anyhow::Result<()> {
        self.renew(name).await?;
        let api = Api::<Node>::all(self.client.clone());
        let node = api.get(name).await.context("get node")?;
        if node_ready(&node) {
            return Ok(());
        }
        let now = ts(Timestamp::now());
        let patch = json!({"status": {"conditions": node_conditions(&now)}});
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .context("post node conditions")?;
        tracing::info!(node = name, "hollow node posted Ready again");
        Ok(())
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `a.b.c.d/len` as (network, number of addresses).
fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if !(8..=30).contains(&len) {
        return None;
    }
    let size = 1u32 << (32 - len);
    Some((u32::from(ip) & !(size - 1), size))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn running_pod(started: &str, annotations: Value, policy: &str) -> Pod {
        let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
            .iter()
            .map(|t| json!({"type": t, "status": "True"}))
            .collect();
        pod(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1", "annotations": annotations},
            "spec": {"nodeName": "n", "restartPolicy": policy, "containers": [{"name": "c", "image": "i"}]},
            "status": {
                "phase": "Running",
                "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true,
                    "restartCount": 0, "state": {"running": {"startedAt": started}}}],
            },
        }))
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn pending_pod_is_run_and_running_pod_is_left_alone() {
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"},
        }));
        assert_eq!(plan(&p, Timestamp::now()), PodStep::Run);
        let r = running_pod("2025-01-01T00:00:00Z", json!({}), "Always");
        assert_eq!(plan(&r, Timestamp::now()), PodStep::Nothing);
    }

    #[test]
    fn running_pod_marked_not_ready_is_made_ready_again() {
        let mut r = running_pod("2025-01-01T00:00:00Z", json!({}), "Always");
        if let Some(cs) = r.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            cs.iter_mut()
                .filter(|c| c.type_ == "Ready")
                .for_each(|c| c.status = "False".into());
        }
        assert_eq!(plan(&r, Timestamp::now()), PodStep::Run);
    }

    #[test]
    fn terminating_pod_is_deleted_and_finished_pod_ignored() {
        let mut r = running_pod("2025-01-01T00:00:00Z", json!({}), "Always");
        r.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert_eq!(plan(&r, Timestamp::now()), PodStep::Delete);
        let mut done = running_pod("2025-01-01T00:00:00Z", json!({}), "Never");
        done.status.as_mut().expect("status").phase = Some("Succeeded".into());
        assert_eq!(plan(&done, Timestamp::now()), PodStep::Nothing);
    }

    #[test]
    fn job_pods_exit_after_their_annotation_with_their_code() {
        let ann = json!({EXIT_AFTER_ANNOTATION: "5"});
        let p = running_pod("2025-01-01T00:00:00Z", ann.clone(), "Never");
        assert_eq!(
            plan(&p, at("2025-01-01T00:00:02Z")),
            PodStep::ExitIn(Duration::from_secs(3))
        );
        assert_eq!(plan(&p, at("2025-01-01T00:00:05Z")), PodStep::Exit(0));
        let failing = running_pod(
            "2025-01-01T00:00:00Z",
            json!({EXIT_AFTER_ANNOTATION: "1", EXIT_CODE_ANNOTATION: "3"}),
            "OnFailure",
        );
        assert_eq!(plan(&failing, at("2025-01-01T00:00:09Z")), PodStep::Exit(3));
        // restartPolicy Always: the annotation means nothing, the pod keeps running.
        let always = running_pod("2025-01-01T00:00:00Z", ann, "Always");
        assert_eq!(plan(&always, at("2025-01-01T00:01:00Z")), PodStep::Nothing);
    }

    #[test]
    fn running_status_keeps_ip_start_and_transition_times() {
        let p = running_pod("2025-01-01T00:00:00Z", json!({}), "Always");
        let s = running_status(&p, "10.64.0.5", "172.16.0.1", at("2025-01-01T00:10:00Z"));
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.64.0.5");
        assert_eq!(
            s["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(s["containerStatuses"][0]["ready"], true);
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        for t in ["Ready", "ContainersReady", "Initialized", "PodScheduled"] {
            assert!(types.contains(&t), "{t} missing: {types:?}");
        }
    }

    #[test]
    fn exited_status_says_completed_or_error() {
        let p = running_pod("2025-01-01T00:00:00Z", json!({}), "Never");
        let ok = exited_status(&p, 0, Timestamp::now());
        assert_eq!(ok["phase"], "Succeeded");
        assert_eq!(
            ok["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let bad = exited_status(&p, 2, Timestamp::now());
        assert_eq!(bad["phase"], "Failed");
        assert_eq!(
            bad["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            2
        );
    }

    #[test]
    fn node_object_has_kubelet_labels_zone_and_resources() {
        let spec = HollowSpec {
            zones: 3,
            ..HollowSpec::default()
        };
        let n = node_object(&spec, 4, "hollow-4");
        let labels = n.metadata.labels.expect("labels");
        assert_eq!(labels["kubernetes.io/hostname"], "hollow-4");
        assert_eq!(labels[ZONE_LABEL], "zone-1");
        let status = n.status.expect("status");
        assert_eq!(status.capacity, status.allocatable);
        assert_eq!(status.allocatable.expect("alloc")["pods"].0, "110");
        assert_eq!(
            status.node_info.expect("info").kubelet_version,
            kadm_base::KUBERNETES_VERSION
        );
    }

    #[test]
    fn pod_ips_come_from_the_node_cidr() {
        assert_eq!(
            parse_cidr("10.244.3.0/24"),
            Some((u32::from(Ipv4Addr::new(10, 244, 3, 0)), 256))
        );
        assert_eq!(parse_cidr("garbage"), None);
        assert_eq!(node_ip(0), Ipv4Addr::new(172, 16, 0, 1));
    }
}
