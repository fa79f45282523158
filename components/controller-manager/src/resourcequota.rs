//! The resource quota controller: keeps every ResourceQuota's `status.hard` equal to its
//! `spec.hard` and `status.used` equal to what its namespace really uses, by counting the
//! namespace's objects (Kubernetes' `resourcequota-controller`, with the same evaluators
//! as the ResourceQuota admission plugin, shared through `kadm_apimachinery::quota`).
//!
//! Admission only ever adds to `status.used` (it charges creates before they are
//! stored); this controller gives back what deletions and finished pods release:
//!
//! ```text
//!  quota watch: new quota, spec.hard changed, status missing ──┐
//!  pods deleted or finished, services / claims / configmaps /  │
//!  secrets / quotas deleted, count/<r>.<g> objects deleted  ───┼─► the quotas of that
//!                                                               │   namespace that track
//!  every --resource-quota-sync-period (full recount) ──────────┘   that kind: recount
//!                                                                     ▼
//!            read the quota, list the namespace's objects per evaluator, sum within the
//!            quota's scopes; write status (hard, used) guarded by the quota's version
//! ```
//!
//! Changes of `status.used` alone (admission's charges) do not trigger a recount: a
//! recount that lists objects while a charged create is still being stored would undo
//! the charge. The status write is guarded by the version read before the objects were
//! listed, so a charge made during the recount makes the write fail and the quota is
//! recounted again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kadm_apimachinery::quota::{self, Evaluator, ResourceList};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use crate::controllers::RESOURCE_QUOTA;
use crate::error::{Error, Result};
use crate::workload::runner::{Retry, Runner};

/// The controller's settings (`--resource-quota-sync-period`, `--concurrent-resource-quota-syncs`).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub resync_period: Duration,
    pub concurrency: u16,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            resync_period: Duration::from_secs(300),
            concurrency: 5,
        }
    }
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub quotas: Store<ResourceQuota>,
    pub resync_period: Duration,
    /// Discovered resources for `count/<resource>.<group>` quotas.
    resources: Mutex<HashMap<(String, String), ApiResource>>,
    /// Deletions of `count/` resources beyond the fixed ones are watched once a quota
    /// tracks them.
    monitors: Monitors,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = RESOURCE_QUOTA, "starting controller");
    let (store, writer) = reflector::store::<ResourceQuota>();
    let quotas = watcher(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(sync_trigger, PredicateConfig::default());

    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded::<ObjectRef<ResourceQuota>>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        quotas: store.clone(),
        resync_period: config.resync_period,
        resources: Mutex::new(HashMap::new()),
        monitors: Monitors {
            started: Mutex::new(BTreeSet::new()),
            triggers: trigger_tx,
            stop: stop_rx,
        },
    });

    // Pods release their compute resources when they finish or are deleted.
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|ev| async move {
            match ev {
                Ok(watcher::Event::Delete(p)) => Some(Ok(p)),
                Ok(watcher::Event::Apply(p)) if !pod_charged(&p) => Some(Ok(p)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        });
    let pod_quotas = {
        let store = store.clone();
        move |p: Pod| quotas_tracking(&store, p.namespace().as_deref(), &Evaluator::Pods)
    };
    let controller = Controller::for_stream(quotas, store.clone())
        .watches_stream(pods, pod_quotas)
        .watches_stream(
            deletions::<Service>(&client),
            tracking::<PartialObjectMeta<Service>>(&store, "", "services"),
        )
        .watches_stream(
            deletions::<PersistentVolumeClaim>(&client),
            tracking::<PartialObjectMeta<PersistentVolumeClaim>>(
                &store,
                "",
                "persistentvolumeclaims",
            ),
        )
        .watches_stream(
            deletions::<ConfigMap>(&client),
            tracking::<PartialObjectMeta<ConfigMap>>(&store, "", "configmaps"),
        )
        .watches_stream(
            deletions::<Secret>(&client),
            tracking::<PartialObjectMeta<Secret>>(&store, "", "secrets"),
        )
        .watches_stream(
            deletions::<ResourceQuota>(&client),
            tracking::<PartialObjectMeta<ResourceQuota>>(&store, "", "resourcequotas"),
        )
        .reconcile_on(trigger_rx);
    Runner::new(
        RESOURCE_QUOTA,
        config.concurrency,
        Retry::default_rate_limiter().quiet_conflicts(),
    )
    .run(controller, reconcile, ctx, shutdown)
    .await;
    let _ = stop_tx.send(true);
}

/// The predicate that lets a quota event through: a quota seen for the first time (its
/// status still to fill) or a changed spec (`hard`, scopes) — not status changes, which
/// are admission's charges and this controller's own writes.
fn sync_trigger(q: &ResourceQuota) -> Option<u64> {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&q.spec)
        .unwrap_or_default()
        .hash(&mut h);
    Some(h.finish())
}

/// Whether a pod is still charged compute resources.
fn pod_charged(p: &Pod) -> bool {
    serde_json::to_value(p).is_ok_and(|v| quota::pod_is_charged(&v, SystemTime::now()))
}

/// A stream of deleted `K`s (metadata only).
fn deletions<K>(
    client: &Client,
) -> impl futures::Stream<Item = std::result::Result<PartialObjectMeta<K>, watcher::Error>>
+ Send
+ 'static
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    watcher(
        Api::<PartialObjectMeta<K>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(|ev| async move {
        match ev {
            Ok(watcher::Event::Delete(o)) => Some(Ok(o)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    })
}

/// The mapper from a deleted object of `group`/`resource` to the quotas of its namespace
/// that track it.
fn tracking<O: ResourceExt>(
    store: &Store<ResourceQuota>,
    group: &'static str,
    resource: &'static str,
) -> impl Fn(O) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static {
    let store = store.clone();
    move |o: O| match Evaluator::for_resource(group, resource) {
        Some(e) => quotas_tracking(&store, o.namespace().as_deref(), &e),
        None => Vec::new(),
    }
}

/// The quotas in `namespace` whose `status.hard` names something `evaluator` measures
/// (Kubernetes' replenishment).
fn quotas_tracking(
    store: &Store<ResourceQuota>,
    namespace: Option<&str>,
    evaluator: &Evaluator,
) -> Vec<ObjectRef<ResourceQuota>> {
    let Some(ns) = namespace else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|q| q.namespace().as_deref() == Some(ns))
        .filter(|q| {
            let hard: Vec<&String> = q
                .status
                .as_ref()
                .and_then(|s| s.hard.as_ref())
                .map(|h| h.keys().collect())
                .unwrap_or_default();
            !evaluator.matching_resources(&hard).is_empty()
        })
        .map(|q| ObjectRef::from_obj(q.as_ref()))
        .collect()
}

/// On-demand deletion watches for the `count/<resource>.<group>` resources quotas track.
struct Monitors {
    started: Mutex<BTreeSet<(String, String)>>,
    triggers: futures::channel::mpsc::UnboundedSender<ObjectRef<ResourceQuota>>,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// Resources the controller watches from the start.
const FIXED_MONITORS: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "resourcequotas"),
];

impl Monitors {
    /// Starts watching deletions of `api` unless that runs already.
    fn ensure(&self, api: &ApiResource, client: &Client, quotas: &Store<ResourceQuota>) {
        let key = (api.group.clone(), api.plural.clone());
        if FIXED_MONITORS.contains(&(api.group.as_str(), api.plural.as_str())) {
            return;
        }
        {
            let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
            if !started.insert(key) {
                return;
            }
        }
        let Some(evaluator) = Evaluator::for_resource(&api.group, &api.plural) else {
            return;
        };
        tracing::info!(controller = RESOURCE_QUOTA, group = %api.group, resource = %api.plural, "watching deletions for quota");
        let stream = watcher(
            Api::<PartialObjectMeta<DynamicObject>>::all_with(client.clone(), api),
            watcher::Config::default(),
        )
        .default_backoff();
        let (tx, quotas, mut stop) = (self.triggers.clone(), quotas.clone(), self.stop.clone());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    ev = stream.next() => match ev {
                        None => break,
                        Some(Ok(watcher::Event::Delete(o))) => {
                            for q in quotas_tracking(&quotas, o.namespace().as_deref(), &evaluator) {
                                if tx.unbounded_send(q).is_err() {
                                    return;
                                }
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
        });
    }
}

/// Recounts one quota.
pub async fn reconcile(cached: Arc<ResourceQuota>, ctx: Arc<Ctx>) -> Result<Action> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let api = Api::<ResourceQuota>::namespaced(ctx.client.clone(), &ns);
    let failed = |action: &'static str, source: kube::Error| Error::Workload {
        action,
        object: format!("resourcequota {ns}/{name}"),
        source: Box::new(source),
    };
    // The live version: the status write is guarded by it, so a charge admission makes
    // while the objects are listed fails the write instead of being lost.
    let Some(current) = api.get_opt(&name).await.map_err(|e| failed("get", e))? else {
        return Ok(Action::await_change());
    };
    let value = serde_json::to_value(&current).unwrap_or_default();
    let hard = quota::parse_list(value.pointer("/spec/hard"));
    let scopes = quota::scope_requirements(&value);
    let now = SystemTime::now();

    // The evaluators of the quota's resources, each with the names it measures.
    let mut by_evaluator: Vec<(Evaluator, Vec<String>)> = Vec::new();
    for name in hard.keys() {
        let Some(e) = Evaluator::for_quota_resource(name) else {
            continue;
        };
        match by_evaluator.iter_mut().find(|(x, _)| *x == e) {
            Some((_, names)) => names.push(name.clone()),
            None => by_evaluator.push((e, vec![name.clone()])),
        }
    }
    let mut computed = ResourceList::new();
    for (evaluator, names) in &by_evaluator {
        let (group, resource) = evaluator.group_resource();
        let Some(api_resource) = ctx.api_resource(group, resource).await else {
            // Not served (yet): nothing of it exists to count.
            computed = quota::add(
                &computed,
                &names
                    .iter()
                    .map(|n| (n.clone(), Default::default()))
                    .collect::<ResourceList>(),
            );
            continue;
        };
        ctx.monitors.ensure(&api_resource, &ctx.client, &ctx.quotas);
        let items = list(&ctx.client, &api_resource, &ns)
            .await
            .map_err(|e| failed("list the objects counted by", e))?;
        computed = quota::add(
            &computed,
            &evaluator.usage_stats(items.iter(), &scopes, names, now),
        );
    }
    let mut used = quota::parse_list(value.pointer("/status/used"));
    for (k, v) in computed {
        used.insert(k, v);
    }
    let hard_names: Vec<&String> = hard.keys().collect();
    let used = quota::mask(&used, &hard_names);
    let status_hard = quota::parse_list(value.pointer("/status/hard"));
    let status_used = quota::parse_list(value.pointer("/status/used"));
    if !quota::equals(&hard, &status_hard) || !quota::equals(&used, &status_used) {
        let mut updated = current.clone();
        updated.status = Some(ResourceQuotaStatus {
            hard: Some(to_quantities(&hard)),
            used: Some(to_quantities(&used)),
        });
        api.replace_status(&name, &PostParams::default(), &updated)
            .await
            .map_err(|e| failed("update the status of", e))?;
        tracing::debug!(namespace = %ns, quota = %name, used = %quota::pretty_print(&used), "recounted quota");
    }
    Ok(Action::requeue(ctx.resync_period))
}

fn to_quantities(list: &ResourceList) -> BTreeMap<String, Quantity> {
    list.iter()
        .map(|(k, v)| (k.clone(), Quantity(v.canonical())))
        .collect()
}

/// The namespace's objects of `api`, as JSON for the evaluators.
async fn list(client: &Client, api: &ApiResource, ns: &str) -> kube::Result<Vec<Value>> {
    let objects = Api::<DynamicObject>::namespaced_with(client.clone(), ns, api)
        .list(&ListParams::default())
        .await?;
    Ok(objects
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect())
}

impl Ctx {
    /// The served resource `group`/`resource` (preferred version), discovered once; `None`
    /// when the apiserver does not serve it or is not namespaced.
    async fn api_resource(&self, group: &str, resource: &str) -> Option<ApiResource> {
        let key = (group.to_string(), resource.to_string());
        if let Some(r) = self
            .resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(r.clone());
        }
        let found = crate::discovery::preferred(&self.client).await.resources();
        let mut known = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        for r in found.into_iter().filter(|r| r.namespaced && r.has("list")) {
            known.insert((r.api.group.clone(), r.api.plural.clone()), r.api);
        }
        known.get(&key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rq(v: Value) -> ResourceQuota {
        serde_json::from_value(v).expect("quota")
    }

    #[test]
    fn charges_do_not_trigger_a_recount_but_spec_changes_do() {
        let settled = rq(json!({"metadata": {"name": "q", "namespace": "n"},
            "spec": {"hard": {"pods": "2"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "1"}}}));
        let charged = rq(json!({"metadata": {"name": "q", "namespace": "n"},
            "spec": {"hard": {"pods": "2"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "2"}}}));
        assert_eq!(sync_trigger(&settled), sync_trigger(&charged));
        let raised = rq(json!({"metadata": {"name": "q", "namespace": "n"},
            "spec": {"hard": {"pods": "3"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "2"}}}));
        assert_ne!(sync_trigger(&settled), sync_trigger(&raised));
        let scoped = rq(json!({"metadata": {"name": "q", "namespace": "n"},
            "spec": {"hard": {"pods": "2"}, "scopes": ["BestEffort"]}}));
        assert_ne!(sync_trigger(&settled), sync_trigger(&scoped));
    }

    #[test]
    fn finished_pods_are_released() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "p"}, "spec": {"containers": []},
                "status": {"phase": phase}}),
            )
            .expect("pod")
        };
        assert!(pod_charged(&pod("Running")));
        assert!(!pod_charged(&pod("Succeeded")));
        assert!(!pod_charged(&pod("Failed")));
    }
}
