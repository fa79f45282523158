//! The StatefulSet controller: pods with stable names `<set>-<ordinal>` and stable storage,
//! created, replaced and removed in ordinal order.
//!
//! ```text
//!  StatefulSet / its pods changed ──► sync(set)
//!    claim pods named <set>-<n> matching the selector (adopting orphans), claim revisions
//!    update revision = the one holding the template (created; an older one with the same
//!                      template is renumbered: a rollback); current revision = status's
//!    plan (plan.rs): create missing ordinals (claims first), delete condemned ordinals,
//!                    replace old-revision pods from the highest ordinal down to the
//!                    partition — one at a time, waiting for readiness, unless Parallel
//!    status: replicas, ready, available, current, updated; once every replica is updated
//!            and ready, the update revision becomes the current one
//!    prune revisions beyond revisionHistoryLimit that neither pods nor status use
//! ```
//!
//! Like the DaemonSet controller, every sync lists pods with a consistent read, so it never
//! acts on a view older than its own last writes.

pub mod identity;
pub mod plan;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::controllers::STATEFULSET;
use crate::error::{Error, Result, api_code, api_message};
use crate::history;
use crate::intstr;
use crate::workload::claim::{self, Claimant};
use crate::workload::events::{Events, Kind};
use crate::workload::runner::{Retry, Runner};
use crate::workload::selector;
use plan::{Input, Rev, Step, Why};

/// The component name Kubernetes' StatefulSet controller records events as.
pub const COMPONENT: &str = "statefulset-controller";
/// How often a StatefulSet is looked at without changes.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry delays after failed syncs.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The StatefulSet controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// StatefulSets synced at once (`--concurrent-statefulset-syncs`).
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self { concurrency: 5 }
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
    tracing::info!(controller = STATEFULSET, "starting controller");
    let controller = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Pod>::all(client),
        watcher::Config::default(),
        crate::daemonset::owner::<StatefulSet>,
    );
    Runner::new(
        STATEFULSET,
        config.concurrency,
        Retry::new(BACKOFF_BASE, BACKOFF_MAX),
    )
    .run(controller, reconcile, ctx, shutdown)
    .await;
}

fn api_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Workload {
        action,
        object,
        source: Box::new(source),
    }
}

/// One sync of one StatefulSet.
pub async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action> {
    let key = format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any());
    let Some(spec) = set.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    let Some(sel) = selector::parse(Some(&spec.selector)) else {
        tracing::warn!(statefulset = %key, "invalid selector; not syncing");
        return Ok(Action::await_change());
    };
    let action = sync(&set, &sel, &ctx).await?;
    Ok(action)
}

/// The revisions of a sync: the current one, the update one, and all of them oldest first.
struct Revisions {
    current: ControllerRevision,
    update: ControllerRevision,
    all: Vec<ControllerRevision>,
    collision_count: i32,
}

async fn sync(set: &StatefulSet, sel: &Selector, ctx: &Ctx) -> Result<Action> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    let spec = set.spec.as_ref().ok_or_else(|| Error::WorkloadErrors {
        errors: vec![format!("statefulset {ns}/{name} has no spec")],
    })?;
    let set_api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let cr_api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let deleting = set.metadata.deletion_timestamp.is_some();

    let claimant = Claimant {
        uid: &uid,
        namespace: Some(&ns),
        deleting,
    };
    let owner = claim::controller_ref(set);
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
        // Only pods named like members: `isMemberOf`.
        |p: &Pod| {
            selector::matches(sel, p.metadata.labels.as_ref())
                && identity::ordinal_in(&name, p).is_some()
        },
        || claim::recheck_owner(&set_api, &name, &uid),
    )
    .await?;
    let revs = revisions(set, sel, &claimant, &cr_api, &set_api).await?;
    let current_name = revs.current.name_any();
    let update_name = revs.update.name_any();

    let members: Vec<(i32, &Pod)> = pods
        .iter()
        .filter_map(|p| identity::ordinal_in(&name, p).map(|o| (o, p.as_ref())))
        .collect();
    let replicas = spec.replicas.unwrap_or(1);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let mut errors = Vec::new();
    if !deleting {
        let strategy = spec.update_strategy.as_ref();
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let input = Input {
            pods: members.clone(),
            start: spec.ordinals.as_ref().map_or(0, |o| o.start.unwrap_or(0)),
            replicas,
            parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
            rolling,
            partition: ru.and_then(|r| r.partition).unwrap_or(0),
            // `getStatefulSetMaxUnavailable`: rounded down, at least 1.
            max_unavailable: ru
                .and_then(|r| r.max_unavailable.as_ref())
                .map(|m| intstr::scaled(m, replicas, false).unwrap_or(1).max(1)),
            min_ready_seconds: min_ready,
            now,
            update_revision: &update_name,
        };
        let templates = (
            history::template_of(&revs.current).unwrap_or_else(|| spec.template.clone()),
            history::template_of(&revs.update).unwrap_or_else(|| spec.template.clone()),
        );
        for step in plan::plan(&input) {
            if let Err(e) = execute(set, &step, &templates, &revs, ctx).await {
                errors.push(e);
                // Later steps assumed this one happened.
                break;
            }
        }
    }

    let member_pods: Vec<&Pod> = members.iter().map(|(_, p)| *p).collect();
    let counts = plan::status(&member_pods, &current_name, &update_name, min_ready, now);
    let mut current_revision = current_name.clone();
    let mut current_replicas = counts.current;
    // `completeRollingUpdate`.
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling && counts.updated == counts.replicas && counts.ready == counts.replicas {
        current_revision = update_name.clone();
        current_replicas = counts.updated;
    }

    if !deleting {
        // `truncateHistory`: revisions in use by pods or the status are kept.
        let mut live: HashSet<String> = [current_revision.clone(), update_name.clone()].into();
        live.extend(
            member_pods
                .iter()
                .filter_map(|p| p.labels().get(history::REVISION_LABEL).cloned()),
        );
        let limit = spec.revision_history_limit.unwrap_or(10);
        for stale in history::to_prune(&revs.all, &live, limit) {
            if let Err(e) = history::delete(&cr_api, &ns, &stale).await {
                errors.push(e.to_string());
            }
        }
    }

    let status = json!({
        "observedGeneration": set.metadata.generation.unwrap_or(0),
        "replicas": counts.replicas,
        "readyReplicas": counts.ready,
        "availableReplicas": counts.available,
        "currentReplicas": current_replicas,
        "updatedReplicas": counts.updated,
        "currentRevision": current_revision,
        "updateRevision": update_name,
        "collisionCount": revs.collision_count,
    });
    if let Err(e) = write_status(set, &set_api, status).await {
        errors.push(e.to_string());
    }
    if !errors.is_empty() {
        return Err(Error::WorkloadErrors { errors });
    }
    if min_ready > 0 && counts.ready != counts.available {
        return Ok(Action::requeue(Duration::from_secs(
            u64::try_from(min_ready).unwrap_or(1),
        )));
    }
    Ok(Action::requeue(RESYNC))
}

/// `getStatefulSetRevisions`.
async fn revisions(
    set: &StatefulSet,
    sel: &Selector,
    claimant: &Claimant<'_>,
    cr_api: &Api<ControllerRevision>,
    set_api: &Api<StatefulSet>,
) -> Result<Revisions> {
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    let owner = claim::controller_ref(set);
    let mut all = history::claim(cr_api, sel, claimant, &owner, || {
        claim::recheck_owner(set_api, &name, &uid)
    })
    .await?;
    history::sort(&mut all);
    let mut collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let data = history::template_patch(&template);
    let next = all.last().map_or(1, |r| r.revision + 1);
    let newest_equal = all.iter().rposition(|r| history::holds(r, &data));
    let update = match newest_equal {
        // The template has not changed since the newest revision.
        Some(i) if i + 1 == all.len() => all[i].clone(),
        // A rollback: the old revision becomes the newest.
        Some(i) => {
            let renumbered = history::renumber(cr_api, &all[i], next).await?;
            all[i] = renumbered.clone();
            history::sort(&mut all);
            renumbered
        }
        None => {
            let proto = history::Proto {
                namespace: set.namespace().unwrap_or_default(),
                parent: name.clone(),
                owner,
                labels: template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default(),
                annotations: None,
                hash_label: history::HASH_LABEL,
                data,
                revision: next,
            };
            let created = history::create(cr_api, &proto, &mut collision_count).await?;
            if !all.iter().any(|r| r.metadata.name == created.metadata.name) {
                all.push(created.clone());
            }
            created
        }
    };
    let status_current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref())
        .unwrap_or("");
    let current = all
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(status_current))
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok(Revisions {
        current,
        update,
        all,
        collision_count,
    })
}

/// Carries out one step, recording Kubernetes' events. Errors are returned as text.
async fn execute(
    set: &StatefulSet,
    step: &Step,
    templates: &(PodTemplateSpec, PodTemplateSpec),
    revs: &Revisions,
    ctx: &Ctx,
) -> std::result::Result<(), String> {
    let ns = set.namespace().unwrap_or_default();
    let set_name = set.name_any();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let reference = set.object_ref(&());
    match step {
        Step::Create { ordinal, rev } => {
            let pod_name = identity::pod_name(&set_name, *ordinal);
            create_claims(set, *ordinal, &pod_name, ctx).await?;
            let (template, revision) = match rev {
                Rev::Current => (&templates.0, &revs.current),
                Rev::Update => (&templates.1, &revs.update),
            };
            let pod = identity::new_pod(set, template, *ordinal, &revision.name_any());
            match pods_api.create(&PostParams::default(), &pod).await {
                Ok(_) => {
                    ctx.events.record(
                        reference,
                        Kind::Normal,
                        "SuccessfulCreate",
                        "Create",
                        format!("create Pod {pod_name} in StatefulSet {set_name} successful"),
                    );
                    Ok(())
                }
                Err(e) => {
                    let msg = api_message(&e);
                    ctx.events.record(
                        reference,
                        Kind::Warning,
                        "FailedCreate",
                        "Create",
                        format!(
                            "create Pod {pod_name} in StatefulSet {set_name} failed error: {msg}"
                        ),
                    );
                    Err(format!("create pod {ns}/{pod_name}: {msg}"))
                }
            }
        }
        Step::Delete { ordinal, name, why } => {
            if *why == Why::Condemned && identity::retention(set).delete_when_scaled {
                hand_claims_to_pod(set, *ordinal, name, &pods_api, ctx).await?;
            }
            tracing::info!(statefulset = %format!("{ns}/{set_name}"), pod = %name, reason = ?why, "deleting pod");
            match pods_api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.events.record(
                        reference,
                        Kind::Normal,
                        "SuccessfulDelete",
                        "Delete",
                        format!("delete Pod {name} in StatefulSet {set_name} successful"),
                    );
                    Ok(())
                }
                Err(e) if api_code(&e) == Some(404) => Ok(()),
                Err(e) => {
                    let msg = api_message(&e);
                    ctx.events.record(
                        reference,
                        Kind::Warning,
                        "FailedDelete",
                        "Delete",
                        format!("delete Pod {name} in StatefulSet {set_name} failed error: {msg}"),
                    );
                    Err(format!("delete pod {ns}/{name}: {msg}"))
                }
            }
        }
    }
}

/// `createPersistentVolumeClaims`: the pod's claims that do not exist yet.
async fn create_claims(
    set: &StatefulSet,
    ordinal: i32,
    pod_name: &str,
    ctx: &Ctx,
) -> std::result::Result<(), String> {
    let ns = set.namespace().unwrap_or_default();
    let set_name = set.name_any();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut errors = Vec::new();
    for claim in identity::claims(set, ordinal) {
        let claim_name = claim.name_any();
        let failed = |msg: String| {
            ctx.events.record(
                set.object_ref(&()),
                Kind::Warning,
                "FailedCreate",
                "Create",
                format!(
                    "create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {msg}"
                ),
            );
            format!("create claim {ns}/{claim_name}: {msg}")
        };
        match api.get_opt(&claim_name).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                errors.push(failed(api_message(&e)));
                continue;
            }
        }
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => ctx.events.record(
                set.object_ref(&()),
                Kind::Normal,
                "SuccessfulCreate",
                "Create",
                format!(
                    "create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success"
                ),
            ),
            // Created meanwhile by an earlier attempt.
            Err(e) if api_code(&e) == Some(409) => {}
            Err(e) => errors.push(failed(api_message(&e))),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// `whenScaled: Delete`: before a scaled-down pod goes, its claims are made the pod's (and
/// no longer the set's), so the garbage collector deletes them after the pod.
async fn hand_claims_to_pod(
    set: &StatefulSet,
    ordinal: i32,
    pod_name: &str,
    pods_api: &Api<Pod>,
    ctx: &Ctx,
) -> std::result::Result<(), String> {
    let ns = set.namespace().unwrap_or_default();
    let Some(pod) = pods_api
        .get_opt(pod_name)
        .await
        .map_err(|e| format!("get pod {ns}/{pod_name}: {}", api_message(&e)))?
    else {
        return Ok(());
    };
    let pod_ref = identity::owner_ref("v1", "Pod", pod_name, &pod.uid().unwrap_or_default());
    let set_uid = set.uid().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for wanted in identity::claims(set, ordinal) {
        let claim_name = wanted.name_any();
        let Some(claim) = api
            .get_opt(&claim_name)
            .await
            .map_err(|e| format!("get claim {ns}/{claim_name}: {}", api_message(&e)))?
        else {
            continue;
        };
        let mut refs: Vec<_> = claim
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.uid != set_uid)
            .collect();
        if refs.iter().any(|r| r.uid == pod_ref.uid) {
            continue;
        }
        refs.push(pod_ref.clone());
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": claim.resource_version()}});
        api.patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                format!(
                    "hand claim {ns}/{claim_name} to its pod: {}",
                    api_message(&e)
                )
            })?;
    }
    Ok(())
}

/// Writes the status when anything in it changed.
async fn write_status(
    set: &StatefulSet,
    api: &Api<StatefulSet>,
    status: serde_json::Value,
) -> Result<()> {
    let old = serde_json::to_value(set.status.clone().unwrap_or_default()).unwrap_or_default();
    // Absent fields read as their zero value, as Go clients decode them.
    let differs = |k: &str, v: &serde_json::Value| match old.get(k) {
        Some(o) => o != v,
        None => !(v == &json!(0) || v == &json!("")),
    };
    let changed = status
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| differs(k, v));
    if !changed {
        return Ok(());
    }
    let name = set.name_any();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": status})),
    )
    .await
    .map_err(api_err(
        "update status of",
        format!("statefulset {}/{name}", set.namespace().unwrap_or_default()),
    ))?;
    Ok(())
}
