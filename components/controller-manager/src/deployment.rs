//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets named
//! `<deployment>-<pod-template-hash>`, scales them, and keeps their history.
//!
//! ```text
//!  Deployment watch ─► store ─┐        ReplicaSet watch ─► store      pod watch ─► store
//!                             ▼               │                            │ deletions
//!            kube-runtime Controller ◄── owns: ReplicaSets with a Deployment controller
//!                             │      ◄── watches: orphan ReplicaSets → Deployments selecting them
//!                             │      ◄── watches: deleted pods → their Recreate Deployment
//!                             ▼
//!                  sync.rs (one sync, Kubernetes' syncDeployment)
//! ```
//!
//! `kubectl rollout undo` needs nothing special: kubectl copies an old ReplicaSet's template
//! into the Deployment, this controller finds that ReplicaSet as the new one (same template
//! but for the hash) and raises its revision above every other, remembering the old
//! revision in `deployment.kubernetes.io/revision-history`.

pub mod annotations;
pub mod hash;
pub mod replicasets;
pub mod rollout;
pub mod status;
pub mod sync;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::controllers::DEPLOYMENT;
use crate::error::Result;
use crate::workload::claim::controller_of;
use crate::workload::events::Events;
use crate::workload::runner::{Retry, Runner};
use crate::workload::{selector, triggers};

/// The Deployment controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Deployments synced at once (`--concurrent-deployment-syncs`).
    pub concurrency: u16,
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub replicasets: Store<ReplicaSet>,
    pub pods: Store<Pod>,
    pub events: Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = DEPLOYMENT, "starting controller");
    let (d_store, d_writer) = reflector::store::<Deployment>();
    let (rs_store, rs_writer) = reflector::store::<ReplicaSet>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();

    let deployments = watcher(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(d_writer)
    .touched_objects();
    let replicasets = watcher(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(rs_writer)
    .touched_objects();
    let triggers::Split {
        controlled,
        orphans,
        task: _split_task,
    } = triggers::split(replicasets, |r: &ReplicaSet| {
        controller_of(&r.metadata).is_some()
    });
    // Only deletions matter: a Recreate waits for its old pods to be gone.
    let deleted_pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer)
        .filter_map(|event| {
            futures::future::ready(match event {
                Ok(watcher::Event::Delete(p)) => Some(Ok(p)),
                Err(e) => Some(Err(e)),
                Ok(_) => None,
            })
        });

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        replicasets: rs_store.clone(),
        pods: pod_store,
        events: Events::start(client, DEPLOYMENT),
    });
    let selecting = {
        let store = d_store.clone();
        move |rs: ReplicaSet| deployments_selecting(&store, &rs)
    };
    let recreating = {
        let deployments = d_store.clone();
        let replicasets = rs_store.clone();
        move |pod: Pod| recreate_deployment_of(&deployments, &replicasets, &pod)
    };
    let controller = Controller::for_stream(deployments, d_store)
        .owns_stream(controlled)
        .watches_stream(orphans, selecting)
        .watches_stream(deleted_pods, recreating);
    Runner::new(
        DEPLOYMENT,
        config.concurrency,
        Retry::default_rate_limiter().quiet_conflicts(),
    )
    .run(controller, reconcile, ctx, shutdown)
    .await;
}

/// The Deployments in the ReplicaSet's namespace whose selector matches it (for orphans).
fn deployments_selecting(store: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace();
    store
        .state()
        .iter()
        .filter(|d| d.namespace() == ns)
        .filter(|d| {
            let sel = d.spec.as_ref().map(|s| &s.selector);
            !selector::selects_everything(sel)
                && selector::parse(sel)
                    .is_some_and(|s| selector::matches(&s, rs.metadata.labels.as_ref()))
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// The Recreate Deployment a deleted pod belonged to (through its ReplicaSet).
fn recreate_deployment_of(
    deployments: &Store<Deployment>,
    replicasets: &Store<ReplicaSet>,
    pod: &Pod,
) -> Option<ObjectRef<Deployment>> {
    let ns = pod.namespace()?;
    let rs_ref = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet")?;
    let rs = replicasets.get(&ObjectRef::new(&rs_ref.name).within(&ns))?;
    let d_ref = controller_of(&rs.metadata).filter(|r| r.kind == "Deployment")?;
    let key = ObjectRef::new(&d_ref.name).within(&ns);
    let d = deployments.get(&key)?;
    (rollout::strategy(&d) == rollout::RECREATE).then_some(key)
}

/// Syncs one Deployment.
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action> {
    // A sync on an unfilled cache would take every ReplicaSet for missing.
    if ctx.replicasets.wait_until_ready().await.is_err()
        || ctx.pods.wait_until_ready().await.is_err()
    {
        return Ok(Action::await_change());
    }
    let requeue = sync::Sync::new(&ctx, &d).run().await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}
