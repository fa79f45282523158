//! The node lifecycle controller: notices kubelets that stopped reporting and says so on
//! their Node, so the scheduler stops placing pods there and the taint eviction controller
//! moves them away.
//!
//! ```text
//!  every --node-monitor-period, per node:
//!    lease renewed or Ready heartbeat changed? ──► probe time = now (local clock)
//!    now > probe + grace ──► Ready/MemoryPressure/DiskPressure/PIDPressure = Unknown
//!                            (NodeStatusUnknown, "Kubelet stopped posting node status.")
//!    Ready went True → not True ──► event NodeNotReady, pods on the node Ready=False
//!    taints follow the conditions: unreachable / not-ready (NoSchedule + NoExecute),
//!    pressure and unschedulable (NoSchedule); removed when the node is healthy again
//! ```
//!
//! The grace period is `--node-monitor-grace-period`, or `--node-startup-grace-period` for
//! a node that never posted Ready. Probe times are local instants, never the kubelet's
//! clock, as in Kubernetes; a restarted controller gives every node a fresh grace period.

pub mod health;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::backoff::Failures;
use crate::error::{Error, Result, api_code};
use crate::taints;
use crate::workload::events::{Events, Kind};

/// Where kubelets renew their heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The component name on the events (Kubernetes' `node-controller`).
const EVENT_SOURCE: &str = "node-controller";
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Attempts at one node write when it keeps changing under us.
const WRITE_ATTEMPTS: usize = 5;

/// The controller's timings (`--node-monitor-period`, `--node-monitor-grace-period`,
/// `--node-startup-grace-period`).
#[derive(Debug, Clone)]
pub struct Config {
    pub monitor_period: Duration,
    pub grace_period: Duration,
    pub startup_grace_period: Duration,
    /// Nodes processed at once (Kubernetes' node update workers).
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
            startup_grace_period: Duration::from_secs(60),
            concurrency: 8,
        }
    }
}

/// What every reconcile shares.
pub struct Ctx {
    client: Client,
    config: Config,
    leases: Store<Lease>,
    pods: Store<Pod>,
    health: Mutex<HashMap<String, health::Health>>,
    /// Nodes whose pods could not all be marked not ready; retried on the next pass.
    mark_retry: Mutex<HashSet<String>>,
    failures: Failures,
    events: Events,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn node_error(action: &'static str, name: &str) -> impl FnOnce(kube::Error) -> Error {
    let object = format!("node {name}");
    move |source| Error::NodeController {
        action,
        object,
        source: Box::new(source),
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(
        controller = crate::controllers::NODE_LIFECYCLE,
        monitor_period_ms = config.monitor_period.as_millis() as u64,
        grace_period_ms = config.grace_period.as_millis() as u64,
        "starting controller"
    );
    let shutdown = shutdown.shared();
    let (leases, lease_writer) = reflector::store();
    let lease_feed = reflector::reflector(
        lease_writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(|_| std::future::ready(()));
    let (pods, pod_writer) = reflector::store();
    let pod_feed = reflector::reflector(
        pod_writer,
        watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().fields("spec.nodeName!="),
        ),
    )
    .default_backoff()
    .for_each(|_| std::future::ready(()));
    let ctx = Arc::new(Ctx {
        events: Events::start(client.clone(), EVENT_SOURCE),
        client: client.clone(),
        config: config.clone(),
        leases: leases.clone(),
        pods: pods.clone(),
        health: Mutex::default(),
        mark_retry: Mutex::default(),
        failures: Failures::default(),
    });
    let controller = {
        let shutdown = shutdown.clone();
        async move {
            // Decisions need the leases and pods: without them every node looks silent.
            let ready = async {
                let _ = leases.wait_until_ready().await;
                let _ = pods.wait_until_ready().await;
            };
            tokio::select! {
                () = ready => {}
                () = shutdown.clone() => return,
            }
            let forget = ctx.clone();
            Controller::new(Api::<Node>::all(client), watcher::Config::default())
                .with_config(controller::Config::default().concurrency(config.concurrency))
                .graceful_shutdown_on(shutdown)
                .run(reconcile, error_policy, ctx)
                .for_each(|res| {
                    // Every node comes back each monitor period; a deleted one comes back
                    // as not found, which is when its health record goes.
                    if let Err(controller::Error::ObjectNotFound(obj)) = &res {
                        lock(&forget.health).remove(&obj.name);
                        lock(&forget.mark_retry).remove(&obj.name);
                    }
                    async move {
                        match res {
                            Ok(_) | Err(controller::Error::ReconcilerFailed(_, _)) => {}
                            Err(controller::Error::ObjectNotFound(obj)) => {
                                tracing::debug!(node = %obj.name, "node gone before its requeue");
                            }
                            Err(e) => tracing::warn!(error = %e, "node watch trouble, retrying"),
                        }
                    }
                })
                .await;
        }
    };
    tokio::select! {
        () = controller => {}
        () = lease_feed => {}
        () = pod_feed => {}
    }
    tracing::info!(
        controller = crate::controllers::NODE_LIFECYCLE,
        "controller stopped"
    );
}

/// Requeues a failed node with exponential back-off.
pub fn error_policy(node: Arc<Node>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let name = node.name_any();
    let delay = crate::backoff::exponential(ctx.failures.record(&name), BACKOFF_BASE, BACKOFF_MAX);
    tracing::warn!(node = %name, error = %err, retry_in_ms = delay.as_millis() as u64, "node health sync failed");
    Action::requeue(delay.min(ctx.config.monitor_period))
}

fn node_ref(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.name_any()),
        uid: node.uid(),
        ..ObjectReference::default()
    }
}

fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(pod.name_any()),
        namespace: pod.namespace(),
        uid: pod.uid(),
        ..ObjectReference::default()
    }
}

fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// One pass over one node: health, pods, taints. Always comes back after the monitor period.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = node.name_any();
    let lease = ctx
        .leases
        .get(&ObjectRef::new(&name).within(NODE_LEASE_NAMESPACE));
    let renewed = lease
        .as_ref()
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
        .map(|t| t.0);
    let now = Instant::now();
    let wall = Timestamp::now();
    let stale = {
        let mut map = lock(&ctx.health);
        let h = health::observe(map.remove(&name), &node, renewed, now, wall);
        let grace = if h.ready_posted {
            ctx.config.grace_period
        } else {
            ctx.config.startup_grace_period
        };
        let stale = now.saturating_duration_since(h.probe) > grace;
        map.insert(name.clone(), h);
        stale
    };
    let observed_ready = ready_status(&node);
    let mut current = (*node).clone();
    if stale {
        current = mark_unknown(&ctx, current, wall).await?;
    }
    let current_ready = ready_status(&current);

    let was_ready = observed_ready.as_deref() == Some("True");
    let is_ready = current_ready.as_deref() == Some("True");
    let retry = lock(&ctx.mark_retry).remove(&name);
    if !is_ready && (was_ready || retry) {
        if was_ready {
            tracing::info!(node = %name, ready = ?current_ready, "node is not ready");
            ctx.events.record(
                node_ref(&current),
                Kind::Normal,
                "NodeNotReady",
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }
        if let Err(e) = mark_pods_not_ready(&ctx, &name).await {
            lock(&ctx.mark_retry).insert(name.clone());
            return Err(e);
        }
    }

    reconcile_taints(&ctx, current).await?;
    ctx.failures.forget(&name);
    Ok(Action::requeue(ctx.config.monitor_period))
}

/// Sets the kubelet's conditions to Unknown and writes the status when Ready changed;
/// conflicts are retried on the newest node. Returns the newest node known.
async fn mark_unknown(ctx: &Ctx, mut node: Node, wall: Timestamp) -> Result<Node> {
    let name = node.name_any();
    let api = Api::<Node>::all(ctx.client.clone());
    for _ in 0..WRITE_ATTEMPTS {
        let before = ready_status(&node);
        let creation = node.metadata.creation_timestamp.clone();
        let status = node.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        health::mark_unknown(conditions, creation.as_ref(), &Time(wall));
        if ready_status(&node) == before {
            return Ok(node);
        }
        match api
            .replace_status(&name, &PostParams::default(), &node)
            .await
        {
            Ok(updated) => {
                tracing::info!(node = %name, "kubelet stopped posting node status; conditions set to Unknown");
                return Ok(updated);
            }
            Err(e) if api_code(&e) == Some(409) => {
                node = api.get(&name).await.map_err(node_error("get", &name))?;
            }
            Err(e) => return Err(node_error("update the status of", &name)(e)),
        }
    }
    Err(Error::NodeControllerConflicts {
        object: format!("node {name}"),
        attempts: WRITE_ATTEMPTS,
    })
}

/// Kubernetes' `MarkPodsNotReady`: every pod on the node gets Ready=False (and an event),
/// because nobody can vouch for its readiness any more.
async fn mark_pods_not_ready(ctx: &Ctx, node: &str) -> Result<()> {
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect();
    let mut errors = Vec::new();
    for pod in pods {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        let Some(ready) = ready else {
            continue;
        };
        if ready.status == "False" {
            continue;
        }
        let mut condition = serde_json::to_value(ready).unwrap_or_default();
        condition["status"] = json!("False");
        condition["lastTransitionTime"] = json!(Time(Timestamp::now()));
        let patch = json!({
            "metadata": {"uid": pod.uid()},
            "status": {"conditions": [condition]},
        });
        let api = Api::<Pod>::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::debug!(node, pod = %pod.name_any(), "pod marked not ready");
                ctx.events.record(
                    pod_ref(&pod),
                    Kind::Warning,
                    "NodeNotReady",
                    "NodeNotReady",
                    "Node is not ready".to_string(),
                );
            }
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => errors.push(format!(
                "pod {}/{}: {}",
                pod.namespace().unwrap_or_default(),
                pod.name_any(),
                crate::error::api_message(&e)
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::NodeControllerPods {
            node: node.to_string(),
            errors,
        })
    }
}

/// Brings the node's controller-owned taints in line with its conditions.
async fn reconcile_taints(ctx: &Ctx, mut node: Node) -> Result<()> {
    let name = node.name_any();
    let api = Api::<Node>::all(ctx.client.clone());
    let now = Time(Timestamp::now());
    for _ in 0..WRITE_ATTEMPTS {
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let spec = node.spec.get_or_insert_with(Default::default);
        let wanted = taints::wanted(&conditions, spec.unschedulable.unwrap_or(false));
        let current = spec.taints.clone().unwrap_or_default();
        let Some(new) = taints::reconcile(&current, &wanted, &now) else {
            return Ok(());
        };
        spec.taints = (!new.is_empty()).then_some(new);
        match api.replace(&name, &PostParams::default(), &node).await {
            Ok(_) => {
                tracing::info!(node = %name, taints = ?wanted, "node taints updated");
                return Ok(());
            }
            Err(e) if api_code(&e) == Some(409) => {
                node = api.get(&name).await.map_err(node_error("get", &name))?;
            }
            Err(e) if api_code(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(node_error("update the taints of", &name)(e)),
        }
    }
    Err(Error::NodeControllerConflicts {
        object: format!("node {name}"),
        attempts: WRITE_ATTEMPTS,
    })
}
