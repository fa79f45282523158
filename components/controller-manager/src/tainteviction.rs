//! The taint eviction controller: pods leave nodes whose NoExecute taints they do not
//! tolerate (Kubernetes' `taint-eviction-controller`).
//!
//! ```text
//!  pod bound to a node, or the node's NoExecute taints changed ──► per pod:
//!    no NoExecute taint                     → nothing (a scheduled eviction is cancelled)
//!    a taint no toleration tolerates        → evicted now
//!    every taint tolerated for ever         → nothing
//!    tolerated for tolerationSeconds        → evicted at timeAdded + tolerationSeconds
//! ```
//!
//! Eviction is what Kubernetes does: a `DisruptionTarget` condition
//! (`DeletionByTaintManager`) and a graceful delete, with a `TaintManagerEviction` event.
//! The deadline counts from the taint's `timeAdded` (from when this controller first saw
//! the taint if it has none), so a restarted controller keeps the original deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::backoff::Failures;
use crate::error::{Error, Result, api_code};
use crate::taints::{self, NO_EXECUTE};
use crate::workload::events::{Events, Kind};

/// The component name on the events.
const EVENT_SOURCE: &str = "taint-eviction-controller";
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The condition a pod gets just before the taint manager deletes it.
pub const DISRUPTION_REASON: &str = "DeletionByTaintManager";
pub const DISRUPTION_MESSAGE: &str = "Taint manager: deleting due to NoExecute taint";

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods processed at once (Kubernetes' 8 update workers).
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrency: 8 }
    }
}

/// What every reconcile shares.
pub struct Ctx {
    client: Client,
    nodes: Store<Node>,
    /// Deadlines of scheduled evictions, by `namespace/name`.
    scheduled: Mutex<HashMap<String, Timestamp>>,
    /// When a taint without `timeAdded` was first seen, by node and taint.
    first_seen: Mutex<HashMap<(String, String, String, String), Timestamp>>,
    failures: Failures,
    events: Events,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// When a pod must leave a node with these NoExecute `taints`: `None` never. Each taint
/// is judged by the first toleration that tolerates it; an untolerated taint means now.
pub fn eviction_deadline(
    tolerations: &[Toleration],
    taints: &[Taint],
    added: impl Fn(&Taint) -> Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let at = match taints::toleration_for(tolerations, taint) {
            None => now,
            Some(None) => continue,
            Some(Some(secs)) => added(taint)
                .checked_add(SignedDuration::from_secs(secs))
                .unwrap_or(now),
        };
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    deadline
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .filter(|t| t.effect == NO_EXECUTE)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
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

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(
        controller = crate::controllers::TAINT_EVICTION,
        "starting controller"
    );
    let shutdown = shutdown.shared();
    let (nodes, node_writer) = reflector::store();
    let node_events = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .applied_objects();
    let ctx = Arc::new(Ctx {
        events: Events::start(client.clone(), EVENT_SOURCE),
        client: client.clone(),
        nodes,
        scheduled: Mutex::default(),
        first_seen: Mutex::default(),
        failures: Failures::default(),
    });
    let controller = Controller::new(
        Api::<Pod>::all(client),
        watcher::Config::default().fields("spec.nodeName!="),
    );
    let pods = controller.store();
    // Only a change of a node's NoExecute taints concerns its pods.
    let last_taints: Mutex<HashMap<String, Vec<Taint>>> = Mutex::default();
    let mapper = move |node: Node| {
        let name = node.name_any();
        let taints = no_execute(&node);
        let changed = {
            let mut last = lock(&last_taints);
            let before = last.get(&name).cloned().unwrap_or_default();
            if taints.is_empty() {
                last.remove(&name);
            } else {
                last.insert(name.clone(), taints.clone());
            }
            before != taints
        };
        if !changed {
            return Vec::new();
        }
        pods.state()
            .iter()
            .filter(|p| node_of(p) == Some(name.as_str()))
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect::<Vec<_>>()
    };
    controller
        .watches_stream(node_events, mapper)
        .with_config(controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok(_) | Err(controller::Error::ReconcilerFailed(_, _)) => {}
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(pod = %obj.name, "pod gone before its requeue");
                }
                Err(e) => tracing::warn!(error = %e, "pod or node watch trouble, retrying"),
            }
        })
        .await;
    tracing::info!(
        controller = crate::controllers::TAINT_EVICTION,
        "controller stopped"
    );
}

/// Requeues a failed pod with exponential back-off.
pub fn error_policy(pod: Arc<Pod>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let key = pod_key(&pod);
    let delay = crate::backoff::exponential(ctx.failures.record(&key), BACKOFF_BASE, BACKOFF_MAX);
    tracing::warn!(pod = %key, error = %err, retry_in_ms = delay.as_millis() as u64, "taint eviction failed");
    Action::requeue(delay)
}

/// Decides and carries out what the taints of its node mean for one pod.
pub async fn reconcile(pod: Arc<Pod>, ctx: Arc<Ctx>) -> Result<Action> {
    let key = pod_key(&pod);
    if pod.metadata.deletion_timestamp.is_some() {
        lock(&ctx.scheduled).remove(&key);
        return Ok(Action::await_change());
    }
    let Some(node_name) = node_of(&pod) else {
        return Ok(Action::await_change());
    };
    let taints = ctx
        .nodes
        .get(&ObjectRef::new(node_name))
        .map(|n| no_execute(&n))
        .unwrap_or_default();
    let now = Timestamp::now();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let added = |t: &Taint| match &t.time_added {
        Some(at) => at.0,
        None => *lock(&ctx.first_seen)
            .entry((
                node_name.to_string(),
                t.key.clone(),
                t.value.clone().unwrap_or_default(),
                t.effect.clone(),
            ))
            .or_insert(now),
    };
    let deadline = eviction_deadline(&tolerations, &taints, added, now);
    let action = match deadline {
        None => {
            cancel(&ctx, &pod, &key);
            Action::await_change()
        }
        Some(at) if at <= now => {
            evict(&ctx, &pod).await?;
            lock(&ctx.scheduled).remove(&key);
            Action::await_change()
        }
        Some(at) => {
            let previous = lock(&ctx.scheduled).insert(key.clone(), at);
            if previous != Some(at) {
                tracing::info!(pod = %key, node = node_name, at = %at, "eviction scheduled");
            }
            let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
            Action::requeue(wait)
        }
    };
    ctx.failures.forget(&key);
    Ok(action)
}

fn cancel(ctx: &Ctx, pod: &Pod, key: &str) {
    if lock(&ctx.scheduled).remove(key).is_some() {
        tracing::info!(pod = %key, "eviction cancelled");
        ctx.events.record(
            pod_ref(pod),
            Kind::Normal,
            "TaintManagerEviction",
            "Evict",
            format!("Cancelling deletion of Pod {key}"),
        );
    }
}

/// Marks the pod as a disruption target and deletes it (gracefully, guarded by its uid).
async fn evict(ctx: &Ctx, pod: &Pod) -> Result<()> {
    let key = pod_key(pod);
    let name = pod.name_any();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
    let pod_error = |action: &'static str| {
        let object = format!("pod {key}");
        move |source| Error::NodeController {
            action,
            object,
            source: Box::new(source),
        }
    };
    ctx.events.record(
        pod_ref(pod),
        Kind::Normal,
        "TaintManagerEviction",
        "Evict",
        format!("Marking for deletion Pod {key}"),
    );
    let marked = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "DisruptionTarget"
                    && c.status == "True"
                    && c.reason.as_deref() == Some(DISRUPTION_REASON)
            })
        });
    if !marked {
        let patch = json!({
            "metadata": {"uid": pod.uid()},
            "status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": DISRUPTION_REASON,
                "message": DISRUPTION_MESSAGE,
                "lastTransitionTime": Time(Timestamp::now()),
            }]},
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(pod_error("mark for eviction")(e)),
        }
    }
    let dp = DeleteParams::default().preconditions(Preconditions {
        uid: pod.uid(),
        resource_version: None,
    });
    match api.delete(&name, &dp).await {
        Ok(_) => {
            tracing::info!(pod = %key, "pod evicted for a NoExecute taint");
            Ok(())
        }
        // Gone, or replaced by a new pod of the same name.
        Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(()),
        Err(e) => Err(pod_error("delete")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn taint(key: &str, added: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: NO_EXECUTE.into(),
            value: None,
            time_added: Some(Time(ts(added))),
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            value: None,
            toleration_seconds: secs,
        }
    }

    fn at(t: &Taint) -> Timestamp {
        t.time_added.as_ref().map(|t| t.0).expect("time added")
    }

    #[test]
    fn untolerated_taint_evicts_now() {
        let now = ts("2025-01-01T00:10:00Z");
        let taints = [taint("example.com/drain", "2025-01-01T00:00:00Z")];
        assert_eq!(eviction_deadline(&[], &taints, at, now), Some(now));
        assert_eq!(
            eviction_deadline(&[tol("other", None)], &taints, at, now),
            Some(now)
        );
    }

    #[test]
    fn toleration_seconds_count_from_time_added() {
        let now = ts("2025-01-01T00:00:02Z");
        let taints = [taint(taints::UNREACHABLE, "2025-01-01T00:00:00Z")];
        assert_eq!(
            eviction_deadline(&[tol(taints::UNREACHABLE, Some(5))], &taints, at, now),
            Some(ts("2025-01-01T00:00:05Z"))
        );
        // Forever.
        assert_eq!(
            eviction_deadline(&[tol(taints::UNREACHABLE, None)], &taints, at, now),
            None
        );
        // No NoExecute taint at all.
        assert_eq!(eviction_deadline(&[], &[], at, now), None);
    }

    #[test]
    fn the_earliest_taint_deadline_wins() {
        let now = ts("2025-01-01T00:00:00Z");
        let taints = [
            taint(taints::UNREACHABLE, "2025-01-01T00:00:00Z"),
            taint(taints::NOT_READY, "2025-01-01T00:00:00Z"),
        ];
        let tols = [
            tol(taints::UNREACHABLE, Some(300)),
            tol(taints::NOT_READY, Some(30)),
        ];
        assert_eq!(
            eviction_deadline(&tols, &taints, at, now),
            Some(ts("2025-01-01T00:00:30Z"))
        );
        // One taint tolerated for ever does not protect from the other.
        let tols = [
            tol(taints::UNREACHABLE, None),
            tol(taints::NOT_READY, Some(30)),
        ];
        assert_eq!(
            eviction_deadline(&tols, &taints, at, now),
            Some(ts("2025-01-01T00:00:30Z"))
        );
    }
}
