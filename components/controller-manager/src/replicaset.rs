//! The ReplicaSet controller: keeps `spec.replicas` pods matching each ReplicaSet's selector.
//!
//! ```text
//!  ReplicaSet watch ─► store ─┐                   pod watch ─► expectations (creations
//!                             │                        │        seen) ─► store
//!                             ▼                        ▼
//!            kube-runtime Controller ◄── owns: pods with a ReplicaSet controller
//!                             │      ◄── watches: orphan pods → ReplicaSets selecting them
//!                             ▼
//!  reconcile(rs): expectations met? ─► claim pods (adopt orphans that match, release owned
//!     pods that no longer match) ─► create (slow start) / delete (ranked) up to 500 pods
//!     ─► status (replicas, fullyLabeled, ready, available, ReplicaFailure, observedGeneration)
//! ```
//!
//! Every sync works from the stores; the expectations keep a sync from acting again before
//! the watch has shown it its own creations and deletions. Writes are idempotent: a
//! repeated sync of an unchanged ReplicaSet writes nothing.

pub mod expectations;
pub mod manage;
pub mod ranking;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::controllers::REPLICASET;
use crate::error::{Error, Result, api_message};
use crate::workload::claim::{self, Claimant, controller_of, controller_ref};
use crate::workload::events::Events;
use crate::workload::runner::{Retry, Runner, key};
use crate::workload::{pods, selector, triggers};
use expectations::{Expectations, PodKey};

/// The ReplicaSet controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// ReplicaSets synced at once (`--concurrent-replicaset-syncs`).
    pub concurrency: u16,
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub replicasets: Store<ReplicaSet>,
    pub pods: Store<Pod>,
    pub expectations: Arc<Expectations>,
    pub events: Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = REPLICASET, "starting controller");
    let (rs_store, rs_writer) = reflector::store::<ReplicaSet>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let expectations = Arc::new(Expectations::default());

    let replicasets = watcher(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(rs_writer)
    .touched_objects();
    let observe = {
        let expectations = expectations.clone();
        let store = pod_store.clone();
        move |event: &std::result::Result<watcher::Event<Pod>, watcher::Error>| {
            if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                observe_creation(pod, &store, &expectations);
            }
        }
    };
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .inspect(observe)
        .reflect(pod_writer)
        .touched_objects();
    let triggers::Split {
        controlled,
        orphans,
        task: _split_task,
    } = triggers::split(pods, |p: &Pod| controller_of(&p.metadata).is_some());

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        replicasets: rs_store.clone(),
        pods: pod_store,
        expectations,
        events: Events::start(client, REPLICASET),
    });
    let selecting = {
        let store = rs_store.clone();
        move |pod: Pod| replicasets_selecting(&store, &pod)
    };
    let controller = Controller::for_stream(replicasets, rs_store)
        .owns_stream(controlled)
        .watches_stream(orphans, selecting);
    Runner::new(
        REPLICASET,
        config.concurrency,
        Retry::default_rate_limiter().quiet_conflicts(),
    )
    .run(controller, reconcile, ctx, shutdown)
    .await;
}

/// Counts a pod the cache did not hold yet as an observed creation of its ReplicaSet.
fn observe_creation(pod: &Pod, store: &Store<Pod>, expectations: &Expectations) {
    let Some(owner) = controller_of(&pod.metadata) else {
        return;
    };
    if owner.kind != "ReplicaSet" || !owner.api_version.starts_with("apps/") {
        return;
    }
    let known = store
        .get(&ObjectRef::from_obj(pod))
        .is_some_and(|p| p.metadata.uid == pod.metadata.uid);
    if !known {
        expectations.creation_observed(&owner.uid);
    }
}

/// The ReplicaSets in the pod's namespace whose selector matches it (for orphans).
fn replicasets_selecting(store: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace();
    store
        .state()
        .iter()
        .filter(|rs| rs.namespace() == ns)
        .filter(|rs| {
            let sel = rs.spec.as_ref().map(|s| &s.selector);
            // Kubernetes ignores ReplicaSets with an empty selector here.
            !selector::selects_everything(sel)
                && selector::parse(sel)
                    .is_some_and(|s| selector::matches(&s, pod.metadata.labels.as_ref()))
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

/// Syncs one ReplicaSet.
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action> {
    // Counting pods before the pod cache is filled would create every pod again.
    if ctx.pods.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let action = sync(&rs, &ctx).await?;
    Ok(action)
}

/// Whether the cache still shows a pod this ReplicaSet deleted as alive.
fn still_alive(pods: &Store<Pod>, k: &PodKey) -> bool {
    pods.get(&ObjectRef::new(&k.name).within(&k.namespace))
        .is_some_and(|p| {
            p.metadata.uid.as_deref() == Some(k.uid.as_str())
                && p.metadata.deletion_timestamp.is_none()
        })
}

async fn sync(rs: &ReplicaSet, ctx: &Ctx) -> Result<Action> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let needs_sync = ctx
        .expectations
        .satisfied(&uid, Instant::now(), |k| still_alive(&ctx.pods, k));
    let Some(sel) = selector::parse(rs.spec.as_ref().map(|s| &s.selector)) else {
        tracing::warn!(replicaset = %key(rs), "invalid selector; not syncing");
        return Ok(Action::await_change());
    };
    let candidates: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && pods::is_active(p))
        .collect();
    let claimant = Claimant {
        uid: &uid,
        namespace: Some(&ns),
        deleting: rs.metadata.deletion_timestamp.is_some(),
    };
    let rs_api = Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns);
    let owned = claim::claim(
        |ns| Api::<Pod>::namespaced(ctx.client.clone(), ns),
        &claimant,
        &controller_ref(rs),
        candidates,
        |p| selector::matches(&sel, p.metadata.labels.as_ref()),
        || claim::recheck_owner(&rs_api, &name, &uid),
    )
    .await?;

    let manage_error = if needs_sync && rs.metadata.deletion_timestamp.is_none() {
        manage::manage_replicas(rs, &owned, ctx).await.err()
    } else {
        None
    };
    let now = Timestamp::now();
    let new_status = status::calculate(
        rs,
        &owned,
        manage_error.as_ref().map(condition_message).as_deref(),
        now,
    );
    update_status(&rs_api, rs, new_status).await?;
    if let Some(e) = manage_error {
        return Err(e);
    }
    // Ready pods become available minReadySeconds later without any watch event: look again
    // then (Kubernetes re-queues after minReadySeconds for the same reason).
    let min_ready = status::min_ready_seconds(rs);
    let next = owned
        .iter()
        .filter_map(|p| pods::until_available(p, min_ready, now))
        .min();
    Ok(match next {
        Some(d) => {
            Action::requeue(Duration::try_from(d).unwrap_or_default() + Duration::from_secs(1))
        }
        None => Action::await_change(),
    })
}

/// The message of the `ReplicaFailure` condition: the apiserver's own words, as Kubernetes.
fn condition_message(e: &Error) -> String {
    match e {
        Error::Workload { source, .. } => api_message(source),
        other => other.to_string(),
    }
}

/// Writes the status when it changed, with `observedGeneration`; on a conflict, once more on
/// a fresh read (Kubernetes' single retry).
async fn update_status(
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    mut status: ReplicaSetStatus,
) -> Result<()> {
    if !status::needs_update(rs, &status) {
        return Ok(());
    }
    status.observed_generation = rs.metadata.generation;
    let name = rs.name_any();
    let mut obj = rs.clone();
    for attempt in 0..2 {
        obj.status = Some(status.clone());
        match api
            .replace_status(&name, &PostParams::default(), &obj)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if attempt == 0 => {
                tracing::debug!(replicaset = %key(rs), error = %e, "status update failed; retrying on a fresh read");
                obj = api.get(&name).await.map_err(|source| Error::Workload {
                    action: "get",
                    object: format!("ReplicaSet {}", key(rs)),
                    source: Box::new(source),
                })?;
            }
            Err(source) => {
                return Err(Error::Workload {
                    action: "update status of",
                    object: format!("ReplicaSet {}", key(rs)),
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(())
}
