//! The garbage collector: deletes objects whose owners are gone, and finishes the
//! `Orphan` and `Foreground` deletions the apiserver starts, with Kubernetes' semantics.
//!
//! ```text
//!  discovery (every 30 s) ──► one watcher per list/watch/delete resource (monitors)
//!                                   │ metadata of every object
//!                                   ▼
//!                 graph: uid → node, owner uid → dependents   (graph.rs, pure)
//!                                   │ nodes a change concerns
//!                                   ▼
//!           kube-runtime applier: dedup, one reconcile per node at a time, requeues,
//!           back-off; released once every monitor listed its resource
//!                                   │
//!                                   ▼
//!  reconcile(node):
//!    `orphan` finalizer, deleted      → drop the owner's reference from every dependent,
//!                                       then remove `orphan`
//!    `foregroundDeletion`, deleted    → visit the dependents (they get deleted); once no
//!                                       dependent with blockOwnerDeletion remains, remove
//!                                       `foregroundDeletion` (the apiserver then deletes)
//!    otherwise, with owners           → classify each owner: solid, dangling (gone, or
//!                                       another uid at its name), waiting (foreground);
//!                                       no solid owner → delete it (policy.rs decides how);
//!                                       a solid one → drop references to the others
//! ```
//!
//! An owner the graph has (same uid, group, kind, name, and namespace for a namespaced
//! owner) is taken as it is; any other is read from the apiserver before it is declared
//! gone, so a lagging watch never gets an object deleted. Confirmed-absent owners are
//! remembered (uids are never reused). Writes are guarded by the uid and resourceVersion the
//! decision was taken on (operations.rs). Events are not recorded yet: decisions are logged.

pub mod graph;
pub mod monitors;
pub mod operations;
pub mod policy;
pub mod resources;
pub mod shared;

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::store;

use crate::backoff::{self, Failures};
use crate::controllers::GARBAGE_COLLECTOR;
use crate::discovery;
use crate::error::{Error, Result};
use graph::{FOREGROUND, Node, ORPHAN, Why, group_of};
use monitors::Monitors;
use operations::{Deleted, Patched};
use policy::{Dependents, OwnerState, Verdict};
use resources::RestMapper;
use shared::{GraphNode, Shared};

/// How often discovery is read again for new or removed resources (Kubernetes: 30 s).
pub const DISCOVERY_PERIOD: Duration = Duration::from_secs(30);
/// How long the start waits for every monitor's first list before collecting anyway.
pub const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// How soon an object whose references changed under a delete is looked at again.
const CHANGED_RETRY: Duration = Duration::from_secs(1);
/// First retry delay after a failed sync of one node (Kubernetes' controller rate limiter).
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay after failed syncs of one node.
const BACKOFF_MAX: Duration = Duration::from_secs(1000);
/// Confirmed-absent owners remembered at most.
const ABSENT_OWNERS: usize = 10_000;
/// Orphaning patches sent at the same time.
const ORPHAN_CONCURRENCY: usize = 8;

/// The garbage collector's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Nodes processed at once (`--concurrent-gc-syncs`).
    pub concurrency: u16,
    /// How often an object with owners is looked at again without changes.
    pub resync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            concurrency: 20,
            resync_period: Duration::from_secs(300),
        }
    }
}

/// Where an owner was looked for: uid, group, kind, name and the namespace looked in.
type OwnerKey = (String, String, String, String, Option<String>);

/// Owners confirmed absent at the coordinates they were looked for. A uid is never reused,
/// so the answer never expires; the set is only bounded.
#[derive(Debug, Default)]
struct AbsentOwners {
    set: HashSet<OwnerKey>,
    order: VecDeque<OwnerKey>,
}

impl AbsentOwners {
    fn contains(&self, key: &OwnerKey) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: OwnerKey) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
            while self.order.len() > ABSENT_OWNERS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// What every reconcile shares.
pub struct Ctx {
    pub client: Client,
    shared: Arc<Shared>,
    mapper: RwLock<Arc<RestMapper>>,
    absent: Mutex<AbsentOwners>,
    failures: Failures,
    resync_period: Duration,
}

impl Ctx {
    fn mapper(&self) -> Arc<RestMapper> {
        self.mapper
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_mapper(&self, m: RestMapper) {
        *self.mapper.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(m);
    }

    fn absent(&self) -> std::sync::MutexGuard<'_, AbsentOwners> {
        self.absent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What became of the owner `reference` of `dependent` names; `None` when the
    /// reference is invalid for good (a cluster-scoped object naming a namespaced owner).
    async fn owner_state(
        &self,
        dependent: &Node,
        reference: &OwnerReference,
    ) -> Result<Option<OwnerState>> {
        let observed = self.shared.read(|g| {
            g.owner(&dependent.identity, reference)
                .map(|o| state_of(o.deleting_dependents()))
        });
        if let Some(state) = observed {
            return Ok(Some(state));
        }
        let group = group_of(&reference.api_version);
        let mapper = self.mapper();
        let Some(resource) = mapper.find(group, &reference.kind) else {
            return Err(Error::UnknownOwnerKind {
                object: dependent.identity.to_string(),
                api_version: reference.api_version.clone(),
                kind: reference.kind.clone(),
            });
        };
        let namespace = match (&dependent.identity.namespace, resource.namespaced) {
            (_, false) => None,
            (Some(ns), true) => Some(ns.clone()),
            (None, true) => return Ok(None),
        };
        let key = (
            reference.uid.clone(),
            group.to_string(),
            reference.kind.clone(),
            reference.name.clone(),
            namespace.clone(),
        );
        if self.absent().contains(&key) {
            return Ok(Some(OwnerState::Dangling));
        }
        let owner = operations::get(
            &self.client,
            &resource.api,
            namespace.as_deref(),
            &reference.name,
        )
        .await?;
        match owner {
            Some(o) if o.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                let foreground = o.metadata.deletion_timestamp.is_some()
                    && o.metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FOREGROUND);
                Ok(Some(state_of(foreground)))
            }
            found => {
                tracing::debug!(controller = GARBAGE_COLLECTOR, object = %dependent.identity, owner = %reference.name, owner_uid = %reference.uid, replaced = found.is_some(), "owner is absent");
                self.absent().insert(key);
                Ok(Some(OwnerState::Dangling))
            }
        }
    }
}

fn state_of(deleting_dependents: bool) -> OwnerState {
    if deleting_dependents {
        OwnerState::WaitingForDependentsDeletion
    } else {
        OwnerState::Solid
    }
}

/// The retry delay after `failures` consecutive failed syncs of one node.
pub fn backoff(failures: u32) -> Duration {
    backoff::exponential(failures, BACKOFF_BASE, BACKOFF_MAX)
}

/// Runs the garbage collector until `shutdown` resolves (then lets running syncs finish).
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, writer) = store::store::<GraphNode>();
    let (queue_tx, queue_rx) = futures::channel::mpsc::unbounded();
    let shared = Arc::new(Shared::new(writer, queue_tx));
    let ctx = Arc::new(Ctx {
        client,
        shared,
        mapper: RwLock::new(Arc::new(RestMapper::default())),
        absent: Mutex::new(AbsentOwners::default()),
        failures: Failures::default(),
        resync_period: config.resync_period,
    });
    tracing::info!(controller = GARBAGE_COLLECTOR, "starting controller");
    let discovering = tokio::spawn(keep_monitoring(ctx.clone()));
    let shutdown = shutdown.shared();
    // The applier holds its runner until the store is ready; a stop before the monitors
    // synced must not wait for them. Its queue has ended by then, so nothing more runs.
    let release = tokio::spawn({
        let shutdown = shutdown.clone();
        let shared = ctx.shared.clone();
        async move {
            shutdown.await;
            shared.mark_ready();
        }
    });
    let queue = queue_rx.map(Ok::<_, Infallible>).take_until(shutdown);
    controller::applier(
        |node, ctx| Box::pin(reconcile(node, ctx)),
        error_policy,
        ctx.clone(),
        reader,
        queue,
        controller::Config::default().concurrency(config.concurrency),
    )
    .for_each(|res| async move {
        match res {
            Ok((node, _)) => tracing::trace!(node = %node.name, "synced"),
            // Failed syncs were logged by the error policy.
            Err(controller::Error::ReconcilerFailed(_, _)) => {}
            // Forgotten between the request and its turn: nothing to do.
            Err(controller::Error::ObjectNotFound(node)) => {
                tracing::trace!(node = %node.name, "node gone before its turn");
            }
            Err(e) => tracing::warn!(controller = GARBAGE_COLLECTOR, error = %e, "garbage collector queue trouble"),
        }
    })
    .await;
    discovering.abort();
    release.abort();
    let _ = discovering.await;
    tracing::info!(controller = GARBAGE_COLLECTOR, "controller stopped");
}

/// Keeps one monitor per monitorable resource, rediscovering every [`DISCOVERY_PERIOD`];
/// releases the applier once the first monitors have synced (or after
/// [`INITIAL_SYNC_TIMEOUT`]).
async fn keep_monitoring(ctx: Arc<Ctx>) {
    let mut monitors = Monitors::default();
    let mut failures = 0u32;
    loop {
        let found = discovery::preferred(&ctx.client).await;
        let resources = found.resources();
        if let Some(e) = found.error() {
            tracing::warn!(controller = GARBAGE_COLLECTOR, error = %e, "discovery incomplete");
        }
        if resources.is_empty() {
            failures = failures.saturating_add(1);
            tokio::time::sleep(backoff::exponential(
                failures,
                Duration::from_millis(500),
                DISCOVERY_PERIOD,
            ))
            .await;
            continue;
        }
        failures = 0;
        ctx.set_mapper(RestMapper::new(&resources));
        let wanted = resources::monitorable(&resources);
        monitors.sync(&wanted, &found.failed, &ctx.client, &ctx.shared);
        if !ctx.shared.is_ready() {
            if monitors.wait_synced(INITIAL_SYNC_TIMEOUT).await {
                tracing::info!(
                    controller = GARBAGE_COLLECTOR,
                    monitors = monitors.len(),
                    nodes = ctx.shared.read(|g| g.len()),
                    "all resource monitors have synced; collecting garbage"
                );
            } else {
                tracing::warn!(controller = GARBAGE_COLLECTOR, unsynced = ?monitors.unsynced(), "not all resource monitors could be synced; collecting garbage anyway");
            }
            ctx.shared.mark_ready();
        }
        tokio::time::sleep(DISCOVERY_PERIOD).await;
    }
}

/// Looks at one node of the graph.
pub async fn reconcile(item: Arc<GraphNode>, ctx: Arc<Ctx>) -> Result<Action> {
    let uid = item.uid();
    let Some(node) = ctx.shared.read(|g| g.get(uid).cloned()) else {
        ctx.failures.forget(uid);
        return Ok(Action::await_change());
    };
    let action = sync(&node, &ctx).await?;
    ctx.failures.forget(uid);
    Ok(action)
}

/// Requeues a failed node with exponential back-off.
pub fn error_policy(item: Arc<GraphNode>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let uid = item.uid();
    let delay = backoff(ctx.failures.record(uid));
    let object = ctx
        .shared
        .read(|g| g.get(uid).map(|n| n.identity.to_string()))
        .unwrap_or_else(|| uid.to_string());
    tracing::warn!(controller = GARBAGE_COLLECTOR, object = %object, error = %err, retry_in_ms = delay.as_millis() as u64, "garbage collection failed");
    Action::requeue(delay)
}

async fn sync(node: &Node, ctx: &Ctx) -> Result<Action> {
    if node.orphaning() {
        orphan_dependents(node, ctx).await?;
        finish(ctx, node, ORPHAN).await?;
        if !node.deleting_dependents() {
            return Ok(Action::await_change());
        }
    }
    if node.deleting_dependents() {
        return delete_dependents(node, ctx).await;
    }
    // Being deleted otherwise: its dependents are looked at once it is gone.
    if node.being_deleted || node.owners.is_empty() {
        return Ok(Action::await_change());
    }
    attempt_to_delete(node, ctx).await
}

/// Removes a garbage-collector finalizer from `node`'s object, logging the outcome.
async fn finish(ctx: &Ctx, node: &Node, finalizer: &str) -> Result<()> {
    match operations::remove_finalizer(&ctx.client, node, finalizer).await? {
        Patched::Done(_) => {
            tracing::info!(controller = GARBAGE_COLLECTOR, object = %node.identity, finalizer, "removed finalizer");
        }
        Patched::Unneeded | Patched::Gone => {}
    }
    Ok(())
}

/// `propagationPolicy=Orphan`: every dependent loses its reference to the owner.
async fn orphan_dependents(owner: &Node, ctx: &Ctx) -> Result<()> {
    let dependents: Vec<Node> = ctx
        .shared
        .read(|g| g.dependents(owner.uid()).into_iter().cloned().collect());
    let owner_uid = [owner.uid().to_string()];
    let results: Vec<(String, Result<Patched>)> = futures::stream::iter(dependents)
        .map(|d| {
            let client = ctx.client.clone();
            let owner_uid = &owner_uid;
            async move {
                let r = operations::patch_owner_references(&client, &d, "orphan", |refs| {
                    policy::without_owners(refs, owner_uid)
                })
                .await;
                (d.identity.to_string(), r)
            }
        })
        .buffer_unordered(ORPHAN_CONCURRENCY)
        .collect()
        .await;
    let mut errors = Vec::new();
    let mut orphaned = 0usize;
    for (dependent, r) in results {
        match r {
            Ok(Patched::Done(_)) => orphaned += 1,
            Ok(_) => {}
            Err(e) => errors.push(format!("{dependent}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(Error::Orphan {
            owner: owner.identity.to_string(),
            errors,
        });
    }
    tracing::info!(controller = GARBAGE_COLLECTOR, object = %owner.identity, orphaned, "orphaned the dependents");
    Ok(())
}

/// `propagationPolicy=Foreground`: the owner stays until no dependent blocks it.
async fn delete_dependents(owner: &Node, ctx: &Ctx) -> Result<Action> {
    let (blocking, visit): (usize, Vec<String>) = ctx.shared.read(|g| {
        let deps = g.dependents(owner.uid());
        let blocking = deps.iter().filter(|d| d.blocks(owner.uid())).count();
        let visit = deps
            .iter()
            .filter(|d| !d.being_deleted)
            .map(|d| d.uid().to_string())
            .collect();
        (blocking, visit)
    });
    if blocking == 0 {
        finish(ctx, owner, FOREGROUND).await?;
        return Ok(Action::await_change());
    }
    for uid in &visit {
        ctx.shared.enqueue(uid, Why::OwnerDeletingDependents);
    }
    tracing::debug!(controller = GARBAGE_COLLECTOR, object = %owner.identity, blocking, "waiting for blocking dependents to be deleted");
    Ok(Action::requeue(ctx.resync_period))
}

/// An object with owners: deleted when none keeps it, cleaned of references to owners that
/// are gone or waiting when another keeps it.
async fn attempt_to_delete(node: &Node, ctx: &Ctx) -> Result<Action> {
    let mut owners = Vec::with_capacity(node.owners.len());
    for r in &node.owners {
        match ctx.owner_state(node, r).await? {
            Some(state) => owners.push((r.uid.as_str(), state)),
            None => {
                tracing::warn!(controller = GARBAGE_COLLECTOR, object = %node.identity, owner_kind = %r.kind, owner = %r.name, "a cluster-scoped object cannot be owned by a namespaced object; not collecting it");
                return Ok(Action::await_change());
            }
        }
    }
    let deps = ctx.shared.read(|g| {
        let d = g.dependents(node.uid());
        Dependents {
            any: !d.is_empty(),
            one_deleting_dependents: d.iter().any(|n| n.deleting_dependents()),
        }
    });
    match policy::verdict(&owners, &node.finalizers, deps) {
        Verdict::Keep => Ok(Action::requeue(ctx.resync_period)),
        Verdict::DropReferences(uids) => {
            let r = operations::patch_owner_references(
                &ctx.client,
                node,
                "remove owner references from",
                |refs| policy::without_owners(refs, &uids),
            )
            .await?;
            if matches!(r, Patched::Done(_)) {
                tracing::info!(controller = GARBAGE_COLLECTOR, object = %node.identity, owners = ?uids, "removed references to owners that are gone or deleting their dependents; another owner keeps the object");
            }
            Ok(Action::requeue(ctx.resync_period))
        }
        Verdict::Delete {
            propagation,
            unblock_first,
        } => {
            let mut target = node.clone();
            if unblock_first {
                match operations::patch_owner_references(
                    &ctx.client,
                    node,
                    "unblock the owner references of",
                    policy::unblocked,
                )
                .await?
                {
                    Patched::Done(meta) => {
                        tracing::info!(controller = GARBAGE_COLLECTOR, object = %node.identity, "made the owner references non-blocking to break a foreground cycle");
                        target.resource_version = meta.resource_version;
                        target.owners = meta.owners;
                    }
                    Patched::Unneeded => {}
                    Patched::Gone => return Ok(Action::await_change()),
                }
            }
            match operations::delete(&ctx.client, &target, propagation).await? {
                Deleted::Requested => {
                    tracing::info!(controller = GARBAGE_COLLECTOR, object = %node.identity, propagation = propagation.as_str(), "deleting object: no owner keeps it");
                    Ok(Action::await_change())
                }
                Deleted::Gone => Ok(Action::await_change()),
                Deleted::Changed => {
                    tracing::debug!(controller = GARBAGE_COLLECTOR, object = %node.identity, "owner references changed since observed; looking again");
                    Ok(Action::requeue(CHANGED_RETRY))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_owners_are_bounded() {
        let key = |uid: &str, ns: Option<&str>| -> OwnerKey {
            (
                uid.into(),
                String::new(),
                "ConfigMap".into(),
                "o".into(),
                ns.map(str::to_string),
            )
        };
        let mut a = AbsentOwners::default();
        for i in 0..ABSENT_OWNERS + 10 {
            a.insert(key(&i.to_string(), None));
        }
        assert_eq!(a.set.len(), ABSENT_OWNERS);
        assert!(!a.contains(&key("0", None)));
        assert!(a.contains(&key(&(ABSENT_OWNERS + 9).to_string(), None)));
        a.insert(key("x", Some("ns")));
        assert!(
            !a.contains(&key("x", None)),
            "the namespace is part of the key"
        );
    }

    #[test]
    fn backoff_starts_small_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(2), Duration::from_millis(10));
        assert_eq!(backoff(100), BACKOFF_MAX);
    }

    #[test]
    fn defaults_match_kube_controller_manager() {
        assert_eq!(Config::default().concurrency, 20);
    }
}
