//! The DaemonSet controller: one pod per eligible node, replaced revision by revision.
//!
//! ```text
//!  DaemonSet / its pods / any node changed ──► sync(ds)
//!    list nodes, claim pods (adopt orphans matching the selector)
//!    claim revisions ─► the one holding the template is current (created, or renumbered
//!                       on a rollback) ─► its hash labels new pods
//!    manage: create a pod for each eligible node without one (pinned to the node by a
//!            required node affinity; the scheduler binds it), delete failed, excess and
//!            misplaced pods
//!    nothing to manage and RollingUpdate ─► replace old pods within maxUnavailable /
//!                                           maxSurge (OnDelete: users delete them)
//!    prune revisions beyond revisionHistoryLimit that no pod runs
//!    write status (desired, current, ready, available, updated, misscheduled)
//! ```
//!
//! Every sync reads nodes and pods with a consistent list from the apiserver rather than a
//! cache, so it always sees its own earlier writes and needs none of Kubernetes'
//! "expectations" bookkeeping. Creations start with one pod and double while they succeed
//! (Kubernetes' slow start), at most [`BURST`] per sync.

pub mod eligibility;
pub mod plan;
pub mod pod;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::controllers::DAEMONSET;
use crate::error::{Error, Result, api_code, api_message};
use crate::history;
use crate::workload::claim::{self, Claimant};
use crate::workload::events::{Events, Kind};
use crate::workload::runner::{Retry, Runner};
use crate::workload::selector;
use plan::{Budget, ByNode, Removal, Target};

/// The component name Kubernetes' DaemonSet controller records events as.
pub const COMPONENT: &str = "daemonset-controller";
/// Pods created or deleted per sync at most (Kubernetes' `BurstReplicas`).
pub const BURST: usize = 250;
/// How often a DaemonSet is looked at without changes (a deleted node, a lost event).
const RESYNC: Duration = Duration::from_secs(300);
/// Retry delays after failed syncs.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The DaemonSet controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// DaemonSets synced at once (`--concurrent-daemonset-syncs`).
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrency: 2 }
    }
}

/// What every sync shares.
pub struct Ctx {
    client: Client,
    events: Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        events: Events::start(client.clone(), COMPONENT),
    });
    tracing::info!(controller = DAEMONSET, "starting controller");
    let controller = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    // A node change may concern every DaemonSet.
    let sets = controller.store();
    let controller = controller
        // Not `owns`: that takes metadata-only watches, which the apiserver does not serve.
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            owner::<DaemonSet>,
        )
        .watches(
            Api::<Node>::all(client),
            watcher::Config::default(),
            move |_: Node| {
                sets.state()
                    .iter()
                    .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                    .collect::<Vec<_>>()
            },
        );
    Runner::new(
        DAEMONSET,
        config.concurrency,
        Retry::new(BACKOFF_BASE, BACKOFF_MAX),
    )
    .run(controller, reconcile, ctx, shutdown)
    .await;
}

/// The workload of kind `K` controlling a pod, as the key to sync.
pub fn owner<K>(pod: Pod) -> Option<ObjectRef<K>>
where
    K: Resource<DynamicType = ()>,
{
    let ns = pod.namespace()?;
    claim::controller_of(&pod.metadata)
        .filter(|r| r.kind == K::kind(&()) && r.api_version == K::api_version(&()))
        .map(|r| ObjectRef::new(&r.name).within(&ns))
}

fn api_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Workload {
        action,
        object,
        source: Box::new(source),
    }
}

/// One sync of one DaemonSet.
pub async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let key = format!("{ns}/{name}");
    // Its pods and revisions may be going with it; status cannot be trusted then.
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if selector::selects_everything(Some(&spec.selector)) {
        ctx.events.record(
            ds.object_ref(&()),
            Kind::Warning,
            "SelectingAll",
            "Sync",
            "This daemon set is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::await_change());
    }
    let Some(sel) = selector::parse(Some(&spec.selector)) else {
        tracing::warn!(daemonset = %key, "invalid selector; not syncing");
        return Ok(Action::await_change());
    };
    let action = sync(&ds, &sel, &ctx).await?;
    Ok(action)
}

async fn sync(ds: &DaemonSet, sel: &Selector, ctx: &Ctx) -> Result<Action> {
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.uid().unwrap_or_default();
    let spec = ds.spec.as_ref().ok_or_else(|| Error::WorkloadErrors {
        errors: vec![format!("daemonset {ns}/{name} has no spec")],
    })?;
    let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let cr_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);

    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api_err("list", "nodes".into()))?
        .items;
    let claimant = Claimant {
        uid: &uid,
        namespace: Some(&ns),
        deleting: false,
    };
    let owner = claim::controller_ref(ds);
    let listed = pods_api
        .list(&ListParams::default().labels_from(sel))
        .await
        .map_err(api_err("list", format!("pods in {ns}")))?
        .items;
    let client = ctx.client.clone();
    let pods = claim::claim(
        move |ns| Api::<Pod>::namespaced(client.clone(), ns),
        &claimant,
        &owner,
        listed.into_iter().map(Arc::new).collect(),
        |p: &Pod| selector::matches(sel, p.metadata.labels.as_ref()),
        || claim::recheck_owner(&ds_api, &name, &uid),
    )
    .await?;
    let revisions = history::claim(&cr_api, sel, &claimant, &owner, || {
        claim::recheck_owner(&ds_api, &name, &uid)
    })
    .await?;

    let mut collision_count = ds
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let (current, old) = current_revision(
        ds,
        &cr_api,
        &pods_api,
        &pods,
        revisions,
        &mut collision_count,
    )
    .await?;
    let hash = revision_hash(&current);

    let mut by_node: ByNode<'_> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = pod::target_node(p) {
            by_node.entry(n).or_default().push(p.as_ref());
        }
    }
    let empty = Default::default();
    let target = Target {
        template: spec.template.spec.as_ref().unwrap_or(&empty),
        hash: &hash,
        generation: pod::template_generation(ds),
        min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
        now: Timestamp::now(),
    };
    let strategy = spec.update_strategy.as_ref();
    let rolling = strategy
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    let desired = nodes
        .iter()
        .filter(|n| eligibility::should_run(target.template, n).0)
        .count();
    let budget = if rolling {
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        plan::budget(
            ru.and_then(|r| r.max_surge.as_ref()),
            ru.and_then(|r| r.max_unavailable.as_ref()),
            desired,
        )
    } else {
        Budget {
            max_surge: 0,
            max_unavailable: 0,
        }
    };
    let template = pod::template(ds, &hash);
    let mut errors = Vec::new();
    let managed = plan::manage(&target, &nodes, &by_node, budget.max_surge > 0);
    if !managed.is_empty() {
        errors.extend(execute(ds, &template, &managed, &pods_api, ctx).await);
    } else if rolling {
        let update = plan::rolling_update(&target, &nodes, &by_node, budget);
        if !update.is_empty() {
            tracing::info!(daemonset = %format!("{ns}/{name}"), delete = update.delete.len(), create = update.create_on.len(), "rolling update step");
            errors.extend(execute(ds, &template, &update, &pods_api, ctx).await);
        }
    }

    // Revisions some pod still runs are kept whatever the limit.
    let live_hashes: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.labels().get(history::REVISION_LABEL).map(String::as_str))
        .collect();
    let live: HashSet<String> = old
        .iter()
        .filter(|r| live_hashes.contains(revision_hash(r).as_str()))
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    let limit = spec.revision_history_limit.unwrap_or(10);
    for stale in history::to_prune(&old, &live, limit) {
        if let Err(e) = history::delete(&cr_api, &ns, &stale).await {
            errors.push(e.to_string());
        }
    }

    let counts = plan::status(&target, &nodes, &by_node);
    if let Err(e) = write_status(ds, &ds_api, &counts, collision_count).await {
        errors.push(e.to_string());
    }
    if !errors.is_empty() {
        return Err(Error::WorkloadErrors { errors });
    }
    // Pods turn available minReadySeconds after turning ready, without any event.
    let min_ready = target.min_ready_seconds;
    if min_ready > 0 && counts.ready != counts.available {
        return Ok(Action::requeue(Duration::from_secs(
            u64::try_from(min_ready).unwrap_or(1),
        )));
    }
    Ok(Action::requeue(RESYNC))
}

/// The hash a revision's pods are labelled with: its label, else the suffix of its name.
fn revision_hash(rev: &ControllerRevision) -> String {
    if let Some(h) = rev.labels().get(history::REVISION_LABEL) {
        return h.clone();
    }
    let name = rev.name_any();
    name.rsplit_once('-')
        .map_or(name.clone(), |(_, h)| h.to_string())
}

/// `constructHistory`: the revision holding the current template (created if none does,
/// renumbered to the newest if an older one does) and the other revisions, oldest first.
async fn current_revision(
    ds: &DaemonSet,
    cr_api: &Api<ControllerRevision>,
    pods_api: &Api<Pod>,
    pods: &[Arc<Pod>],
    revisions: Vec<ControllerRevision>,
    collision_count: &mut i32,
) -> Result<(ControllerRevision, Vec<ControllerRevision>)> {
    let ns = ds.namespace().unwrap_or_default();
    let template: PodTemplateSpec = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let data = history::template_patch(&template);
    let (mut matching, mut old): (Vec<_>, Vec<_>) = revisions
        .into_iter()
        .partition(|r| history::holds(r, &data));
    history::sort(&mut old);
    history::sort(&mut matching);
    let next = history::max_revision(&old) + 1;
    let cur = match matching.pop() {
        None => {
            let labels = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            let proto = history::Proto {
                namespace: ns.clone(),
                parent: ds.name_any(),
                owner: claim::controller_ref(ds),
                labels,
                annotations: ds.metadata.annotations.clone(),
                hash_label: history::REVISION_LABEL,
                data,
                revision: next,
            };
            history::create(cr_api, &proto, collision_count).await?
        }
        Some(keep) => {
            // Duplicates (a race of two syncs): move their pods to the kept one, drop them.
            let keep_hash = revision_hash(&keep);
            for dup in matching {
                let dup_hash = revision_hash(&dup);
                for p in pods
                    .iter()
                    .filter(|p| p.labels().get(history::REVISION_LABEL) == Some(&dup_hash))
                {
                    let patch =
                        json!({"metadata": {"labels": {history::REVISION_LABEL: keep_hash}}});
                    pods_api
                        .patch(
                            &p.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                        .map_err(api_err("relabel", format!("pod {ns}/{}", p.name_any())))?;
                }
                history::delete(cr_api, &ns, &dup.name_any()).await?;
            }
            if keep.revision < next {
                history::renumber(cr_api, &keep, next).await?
            } else {
                keep
            }
        }
    };
    Ok((cur, old))
}

/// Creates and deletes the plan's pods, recording Kubernetes' events; returns the errors.
async fn execute(
    ds: &DaemonSet,
    template: &PodTemplateSpec,
    plan: &plan::Plan,
    pods_api: &Api<Pod>,
    ctx: &Ctx,
) -> Vec<String> {
    let ns = ds.namespace().unwrap_or_default();
    let reference = ds.object_ref(&());
    let mut errors = Vec::new();
    let nodes = &plan.create_on[..plan.create_on.len().min(BURST)];
    let mut pos = 0;
    let mut batch = 1;
    while pos < nodes.len() {
        let end = (pos + batch).min(nodes.len());
        let results = futures::future::join_all(nodes[pos..end].iter().map(|node| {
            let pod = pod::new_pod(ds, template, node);
            async move { (node, pods_api.create(&PostParams::default(), &pod).await) }
        }))
        .await;
        let mut failed = false;
        for (node, r) in results {
            match r {
                Ok(p) => ctx.events.record(
                    reference.clone(),
                    Kind::Normal,
                    "SuccessfulCreate",
                    "Create",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    failed = true;
                    let msg = api_message(&e);
                    ctx.events.record(
                        reference.clone(),
                        Kind::Warning,
                        "FailedCreate",
                        "Create",
                        format!("Error creating: {msg}"),
                    );
                    errors.push(format!("create a pod for node {node}: {msg}"));
                }
            }
        }
        // The rest waits for the next sync (Kubernetes' slow start).
        if failed {
            break;
        }
        pos = end;
        batch *= 2;
    }
    for (pod_name, why) in plan.delete.iter().take(BURST) {
        match why {
            Removal::Failed { node } => ctx.events.record(
                reference.clone(),
                Kind::Warning,
                "FailedDaemonPod",
                "Delete",
                format!("Found failed daemon pod {ns}/{pod_name} on node {node}, will try to kill it"),
            ),
            Removal::Succeeded { node } => ctx.events.record(
                reference.clone(),
                Kind::Normal,
                "SucceededDaemonPod",
                "Delete",
                format!(
                    "Found succeeded daemon pod {ns}/{pod_name} on node {node}, will try to delete it"
                ),
            ),
            Removal::Other => {}
        }
        match pods_api.delete(pod_name, &DeleteParams::default()).await {
            Ok(_) => ctx.events.record(
                reference.clone(),
                Kind::Normal,
                "SuccessfulDelete",
                "Delete",
                format!("Deleted pod: {pod_name}"),
            ),
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => {
                let msg = api_message(&e);
                ctx.events.record(
                    reference.clone(),
                    Kind::Warning,
                    "FailedDelete",
                    "Delete",
                    format!("Error deleting: {msg}"),
                );
                errors.push(format!("delete pod {ns}/{pod_name}: {msg}"));
            }
        }
    }
    errors
}

/// Writes the counts, the observed generation and the collision count when they changed.
async fn write_status(
    ds: &DaemonSet,
    api: &Api<DaemonSet>,
    c: &plan::Counts,
    collision_count: i32,
) -> Result<()> {
    let generation = ds.metadata.generation.unwrap_or(0);
    let old = ds.status.clone().unwrap_or_default();
    let same = old.desired_number_scheduled == c.desired
        && old.current_number_scheduled == c.current
        && old.number_misscheduled == c.misscheduled
        && old.number_ready == c.ready
        && old.updated_number_scheduled.unwrap_or(0) == c.updated
        && old.number_available.unwrap_or(0) == c.available
        && old.number_unavailable.unwrap_or(0) == c.unavailable
        && old.observed_generation.unwrap_or(0) >= generation
        && old.collision_count.unwrap_or(0) == collision_count;
    if same {
        return Ok(());
    }
    let mut status = json!({
        "observedGeneration": generation,
        "desiredNumberScheduled": c.desired,
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "numberReady": c.ready,
        "updatedNumberScheduled": c.updated,
        "numberAvailable": c.available,
        "numberUnavailable": c.unavailable,
    });
    if collision_count != 0 || old.collision_count.is_some() {
        status["collisionCount"] = json!(collision_count);
    }
    let name = ds.name_any();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .map_err(api_err(
        "update status of",
        format!("daemonset {}/{name}", ds.namespace().unwrap_or_default()),
    ))?;
    Ok(())
}
