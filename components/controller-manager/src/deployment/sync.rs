//! One sync of one Deployment (Kubernetes' `syncDeployment` and what it calls): the
//! decisions come from [`rollout`] and [`status`]; this module reads the stores, writes
//! ReplicaSets and the Deployment's status, and records events.
//!
//! ```text
//!  selector selects everything → warn, only observedGeneration
//!  claim ReplicaSets (adopt orphans, release strays)
//!  being deleted               → status only
//!  pause/resume                → Progressing Unknown
//!  paused, or replicas changed → scale (proportionally mid-rollout), status
//!  Recreate                    → old to 0, wait for old pods to go, new to replicas
//!  RollingUpdate               → new up within maxSurge, old down within maxUnavailable
//!  complete                    → delete ReplicaSets beyond revisionHistoryLimit
//! ```
//!
//! Every write is guarded by the resourceVersion it was decided on; a stale cache costs a
//! conflict and a retry, never a wrong write.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Ctx;
use super::annotations;
use super::hash::{POD_TEMPLATE_HASH, compute_hash, equal_ignore_hash};
use super::replicasets::{self as sets, deployment_replicas, spec_replicas};
use super::rollout::{self, Resize};
use super::status::{self, quoted};
use crate::error::{Error, Result, api_code, api_message};
use crate::workload::claim::{self, Claimant, controller_of, controller_ref};
use crate::workload::events::Kind;
use crate::workload::{pods, selector};

pub const SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
pub const SELECTING_ALL: &str = "SelectingAll";

/// One Deployment being synced; `d` follows every write so later writes in the same sync
/// carry the current resourceVersion.
pub struct Sync<'a> {
    ctx: &'a Ctx,
    d: Deployment,
    deployments: Api<Deployment>,
    replicasets: Api<ReplicaSet>,
}

fn api_err(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Workload {
        action,
        object,
        source: Box::new(source),
    }
}

impl<'a> Sync<'a> {
    pub fn new(ctx: &'a Ctx, d: &Deployment) -> Self {
        let ns = d.namespace().unwrap_or_default();
        Self {
            ctx,
            d: d.clone(),
            deployments: Api::namespaced(ctx.client.clone(), &ns),
            replicasets: Api::namespaced(ctx.client.clone(), &ns),
        }
    }

    fn key(&self) -> String {
        format!(
            "{}/{}",
            self.d.namespace().unwrap_or_default(),
            self.d.name_any()
        )
    }

    fn replicas(&self) -> i32 {
        deployment_replicas(&self.d)
    }

    fn event(&self, kind: Kind, reason: &'static str, action: &'static str, note: String) {
        self.ctx
            .events
            .record(self.d.object_ref(&()), kind, reason, action, note);
    }

    /// Syncs the Deployment; `Some(d)` asks to look again after `d` (a rollout that may time
    /// out without any watch event).
    pub async fn run(mut self) -> Result<Option<Duration>> {
        let spec_selector = self.d.spec.as_ref().map(|s| &s.selector);
        if selector::selects_everything(spec_selector) {
            self.event(
                Kind::Warning,
                SELECTING_ALL,
                "Sync",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let mut st = self.d.status.clone().unwrap_or_default();
            if st.observed_generation < self.d.metadata.generation {
                st.observed_generation = self.d.metadata.generation;
                self.write_status(st).await?;
            }
            return Ok(None);
        }
        let Some(sel) = selector::parse(spec_selector) else {
            tracing::warn!(deployment = %self.key(), "invalid selector; not syncing");
            return Ok(None);
        };
        let rs_list = self.claim_replicasets(&sel).await?;
        if self.d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old) = self.all_and_sync_revision(&rs_list, false).await?;
            self.sync_status(new_rs.as_ref(), &old).await?;
            return Ok(None);
        }
        if let Some(st) = status::paused_update(&self.d, Timestamp::now()) {
            self.write_status(st).await?;
        }
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.scale_and_status(&rs_list).await?;
            return Ok(None);
        }
        if self.is_scaling_event(&rs_list).await? {
            self.scale_and_status(&rs_list).await?;
            return Ok(None);
        }
        if rollout::strategy(&self.d) == rollout::RECREATE {
            let pod_map = self.pod_map(&sel, &rs_list);
            self.recreate(&rs_list, &pod_map).await
        } else {
            self.rolling(&rs_list).await
        }
    }

    /// Kubernetes' `getReplicaSetsForDeployment`: the namespace's ReplicaSets, claimed.
    async fn claim_replicasets(&self, sel: &kube::core::Selector) -> Result<Vec<ReplicaSet>> {
        let ns = self.d.namespace().unwrap_or_default();
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let name = self.d.name_any();
        let candidates: Vec<_> = self
            .ctx
            .replicasets
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(ns.as_str()))
            .collect();
        let claimant = Claimant {
            uid: &uid,
            namespace: Some(&ns),
            deleting: self.d.metadata.deletion_timestamp.is_some(),
        };
        let owned = claim::claim(
            |ns| Api::<ReplicaSet>::namespaced(self.ctx.client.clone(), ns),
            &claimant,
            &controller_ref(&self.d),
            candidates,
            |r| selector::matches(sel, r.metadata.labels.as_ref()),
            || claim::recheck_owner(&self.deployments, &name, &uid),
        )
        .await?;
        Ok(owned.into_iter().map(|r| (*r).clone()).collect())
    }

    /// Pods of the Deployment's ReplicaSets by ReplicaSet uid, inactive ones included (a
    /// Recreate must see every old pod gone).
    fn pod_map(
        &self,
        sel: &kube::core::Selector,
        rs_list: &[ReplicaSet],
    ) -> HashMap<String, Vec<std::sync::Arc<Pod>>> {
        let ns = self.d.namespace();
        let mut map: HashMap<String, Vec<_>> = rs_list
            .iter()
            .filter_map(|r| r.metadata.uid.clone())
            .map(|u| (u, Vec::new()))
            .collect();
        for p in self.ctx.pods.state() {
            if p.namespace() != ns || !selector::matches(sel, p.metadata.labels.as_ref()) {
                continue;
            }
            if let Some(c) = controller_of(&p.metadata)
                && let Some(list) = map.get_mut(&c.uid)
            {
                list.push(p.clone());
            }
        }
        map
    }

    async fn write_status(&mut self, st: DeploymentStatus) -> Result<()> {
        let mut obj = self.d.clone();
        obj.status = Some(st);
        self.d = self
            .deployments
            .replace_status(&self.d.name_any(), &PostParams::default(), &obj)
            .await
            .map_err(api_err(
                "update status of",
                format!("Deployment {}", self.key()),
            ))?;
        Ok(())
    }

    async fn write_status_if_changed(&mut self, st: DeploymentStatus) -> Result<()> {
        if self.d.status.as_ref() == Some(&st) {
            return Ok(());
        }
        self.write_status(st).await
    }

    /// Kubernetes' `scaleReplicaSet`: sets the size and the replica annotations; records
    /// `ScalingReplicaSet` when the size changed. Returns whether it did and the newest set.
    async fn scale_rs(&self, rs: &ReplicaSet, to: i32) -> Result<(bool, ReplicaSet)> {
        let surge = rollout::max_surge(&self.d);
        let replicas = self.replicas();
        let size_changes = spec_replicas(rs) != to;
        if !size_changes
            && !annotations::replicas_annotations_need_update(rs, replicas, replicas + surge)
        {
            return Ok((false, rs.clone()));
        }
        let from = spec_replicas(rs);
        let mut copy = rs.clone();
        copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
        annotations::set_replicas_annotations(&mut copy, replicas, replicas + surge);
        let name = rs.name_any();
        let updated = self
            .replicasets
            .replace(&name, &PostParams::default(), &copy)
            .await
            .map_err(api_err(
                "scale",
                format!("ReplicaSet {}/{name}", rs.namespace().unwrap_or_default()),
            ))?;
        if size_changes {
            let dir = if from < to { "up" } else { "down" };
            tracing::info!(deployment = %self.key(), replicaset = %name, from, to, "scaled replica set");
            self.event(
                Kind::Normal,
                SCALING_REPLICA_SET,
                "Scale",
                format!("Scaled {dir} replica set {name} from {from} to {to}"),
            );
        }
        Ok((size_changes, updated))
    }

    /// Kubernetes' `scaleReplicaSetAndRecordEvent`: nothing when the size is already right.
    async fn scale_rs_to(&self, rs: &ReplicaSet, to: i32) -> Result<(bool, ReplicaSet)> {
        if spec_replicas(rs) == to {
            return Ok((false, rs.clone()));
        }
        self.scale_rs(rs, to).await
    }

    /// Kubernetes' `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when asked
    /// and missing) with its revision brought up to date, and the old ones.
    async fn all_and_sync_revision(
        &mut self,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let new_uid = sets::find_new(&self.d, rs_list).and_then(|r| r.metadata.uid.clone());
        let old: Vec<ReplicaSet> = rs_list
            .iter()
            .filter(|r| new_uid.is_none() || r.metadata.uid != new_uid)
            .cloned()
            .collect();
        let new_rs = self.new_replicaset(rs_list, &old, create).await?;
        Ok((new_rs, old))
    }

    /// Kubernetes' `getNewReplicaSet`.
    async fn new_replicaset(
        &mut self,
        rs_list: &[ReplicaSet],
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>> {
        let new_revision = annotations::max_revision(old) + 1;
        let surge = rollout::max_surge(&self.d);
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let now = Timestamp::now();
        if let Some(existing) = sets::find_new(&self.d, rs_list) {
            let mut copy = existing.clone();
            let annotated = annotations::set_new_replicaset_annotations(
                &self.d,
                &mut copy,
                new_revision,
                true,
                surge,
            );
            let min_ready_changes =
                copy.spec.as_ref().and_then(|s| s.min_ready_seconds) != min_ready;
            if annotated || min_ready_changes {
                copy.spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = min_ready;
                let name = copy.name_any();
                copy = self
                    .replicasets
                    .replace(&name, &PostParams::default(), &copy)
                    .await
                    .map_err(api_err(
                        "update",
                        format!("ReplicaSet {}/{name}", copy.namespace().unwrap_or_default()),
                    ))?;
            }
            let revision = copy
                .annotations()
                .get(annotations::REVISION)
                .cloned()
                .unwrap_or_default();
            let mut st = self.d.status.clone().unwrap_or_default();
            let mut needs = annotations::set_deployment_revision(&mut self.d, &revision);
            if status::has_progress_deadline(&self.d)
                && status::get(&st, status::PROGRESSING).is_none()
            {
                let msg = format!("Found new replica set {}", quoted(&copy.name_any()));
                status::set(
                    &mut st,
                    status::condition(status::PROGRESSING, "True", status::FOUND_NEW_RS, msg, now),
                );
                needs = true;
            }
            if needs {
                self.write_status(st).await?;
            }
            return Ok(Some(copy));
        }
        if !create {
            return Ok(None);
        }

        let spec = self.d.spec.clone().unwrap_or_default();
        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs_selector = spec.selector.clone();
        rs_selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", self.d.name_any());
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.namespace(),
                owner_references: Some(vec![controller_ref(&self.d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector: rs_selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&new_rs)).collect();
        let new_replicas = rollout::new_rs_new_replicas(&self.d, &all, &new_rs);
        if let Some(s) = new_rs.spec.as_mut() {
            s.replicas = Some(new_replicas);
        }
        annotations::set_new_replicaset_annotations(
            &self.d,
            &mut new_rs,
            new_revision,
            false,
            surge,
        );

        let (created, already_existed) = match self
            .replicasets
            .create(&PostParams::default(), &new_rs)
            .await
        {
            Ok(c) => (c, false),
            Err(e) if api_code(&e) == Some(409) => {
                let existing = match self
                    .ctx
                    .replicasets
                    .get(&ObjectRef::new(&name).within(&self.d.namespace().unwrap_or_default()))
                {
                    Some(r) => (*r).clone(),
                    None => self
                        .replicasets
                        .get(&name)
                        .await
                        .map_err(api_err("get", format!("ReplicaSet {name}")))?,
                };
                let ours = controller_of(&existing.metadata).map(|c| c.uid.as_str())
                    == self.d.metadata.uid.as_deref();
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(&spec.template, t));
                if ours && same {
                    (existing, true)
                } else {
                    // A hash collision: another template (or owner) holds this name. Bump the
                    // collision count so the next sync hashes to a new name.
                    let mut st = self.d.status.clone().unwrap_or_default();
                    st.collision_count = Some(st.collision_count.unwrap_or(0) + 1);
                    tracing::info!(deployment = %self.key(), replicaset = %name, collision_count = st.collision_count, "hash collision; bumping collisionCount");
                    self.write_status(st).await?;
                    return Err(api_err("create", format!("ReplicaSet {name}"))(e));
                }
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {}: {}",
                    quoted(&name),
                    api_message(&e)
                );
                if status::has_progress_deadline(&self.d) {
                    let mut st = self.d.status.clone().unwrap_or_default();
                    status::set(
                        &mut st,
                        status::condition(
                            status::PROGRESSING,
                            "False",
                            status::FAILED_RS_CREATE,
                            msg.clone(),
                            now,
                        ),
                    );
                    // The creation error is what matters; a failed status write is only logged.
                    if let Err(se) = self.write_status(st).await {
                        tracing::warn!(deployment = %self.key(), error = %se, "could not record the failed creation");
                    }
                }
                self.event(Kind::Warning, status::FAILED_RS_CREATE, "Create", msg);
                return Err(api_err("create", format!("ReplicaSet {name}"))(e));
            }
        };
        if !already_existed && new_replicas > 0 {
            self.event(
                Kind::Normal,
                SCALING_REPLICA_SET,
                "Scale",
                format!("Scaled up replica set {name} from 0 to {new_replicas}"),
            );
        }
        let mut st = self.d.status.clone().unwrap_or_default();
        let mut needs =
            annotations::set_deployment_revision(&mut self.d, &new_revision.to_string());
        if !already_existed && status::has_progress_deadline(&self.d) {
            let msg = format!("Created new replica set {}", quoted(&name));
            status::set(
                &mut st,
                status::condition(
                    status::PROGRESSING,
                    "True",
                    status::NEW_RS_CREATED,
                    msg,
                    now,
                ),
            );
            needs = true;
        }
        if needs {
            self.write_status(st).await?;
        }
        Ok(Some(created))
    }

    /// Kubernetes' `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    async fn is_scaling_event(&mut self, rs_list: &[ReplicaSet]) -> Result<bool> {
        let (new_rs, old) = self.all_and_sync_revision(rs_list, false).await?;
        let replicas = self.replicas();
        Ok(old
            .iter()
            .chain(new_rs.iter())
            .filter(|r| sets::is_active(r))
            .filter_map(annotations::desired_replicas)
            .any(|desired| desired != replicas))
    }

    /// Kubernetes' `sync`: resize for a changed `spec.replicas` (or while paused), clean up
    /// history when paused, write the status.
    async fn scale_and_status(&mut self, rs_list: &[ReplicaSet]) -> Result<()> {
        let (new_rs, mut old) = self.all_and_sync_revision(rs_list, false).await?;
        let mut all: Vec<ReplicaSet> = old.clone();
        let new_index = new_rs.as_ref().map(|n| {
            all.push(n.clone());
            all.len() - 1
        });
        let plan = {
            let refs: Vec<&ReplicaSet> = all.iter().collect();
            rollout::proportional_scale(&self.d, &refs, new_index)
        };
        let proportional = plan.proportional;
        for Resize { index, to } in plan.resizes {
            // A single target scales only when its size changes (Kubernetes'
            // scaleReplicaSetAndRecordEvent); proportional resizes also refresh annotations.
            if proportional {
                self.scale_rs(&all[index], to).await?;
            } else {
                self.scale_rs_to(&all[index], to).await?;
            }
        }
        if self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup(&mut old).await?;
        }
        self.sync_status(new_rs.as_ref(), &old).await
    }

    /// Kubernetes' `syncDeploymentStatus`.
    async fn sync_status(&mut self, new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Result<()> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let st = status::calculate(&all, new_rs, &self.d, Timestamp::now());
        self.write_status_if_changed(st).await
    }

    /// Kubernetes' `syncRolloutStatus`; returns when to look again for a possible timeout.
    async fn sync_rollout_status(
        &mut self,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<Option<Duration>> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs).collect();
        let now = Timestamp::now();
        let st = status::rollout(&all, new_rs, &self.d, now);
        if self.d.status.as_ref() == Some(&st) {
            return Ok(status::requeue_stuck(&self.d, &st, now));
        }
        self.write_status(st).await?;
        // The write triggers another sync, which looks at the deadline again.
        Ok(None)
    }

    /// Kubernetes' `rolloutRolling`.
    async fn rolling(&mut self, rs_list: &[ReplicaSet]) -> Result<Option<Duration>> {
        let (new_rs, mut old) = self.all_and_sync_revision(rs_list, true).await?;
        let Some(new_rs) = new_rs else {
            return self.sync_rollout_status(None, &old).await;
        };
        // Scale up, if we can.
        let replicas = self.replicas();
        let scaled_up = match spec_replicas(&new_rs).cmp(&replicas) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Greater => self.scale_rs_to(&new_rs, replicas).await?.0,
            std::cmp::Ordering::Less => {
                let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&new_rs)).collect();
                let to = rollout::new_rs_new_replicas(&self.d, &all, &new_rs);
                self.scale_rs_to(&new_rs, to).await?.0
            }
        };
        if scaled_up {
            return self.sync_rollout_status(Some(&new_rs), &old).await;
        }
        // Scale down, if we can.
        let active: Vec<usize> = (0..old.len())
            .filter(|i| sets::is_active(&old[*i]))
            .collect();
        let plan = {
            let refs: Vec<&ReplicaSet> = active.iter().map(|i| &old[*i]).collect();
            rollout::old_scale_down(&self.d, &new_rs, &refs)
        };
        let mut scaled_down = false;
        for Resize { index, to } in plan {
            let i = active[index];
            let (scaled, updated) = self.scale_rs_to(&old[i], to).await?;
            scaled_down |= scaled;
            old[i] = updated;
        }
        if scaled_down {
            return self.sync_rollout_status(Some(&new_rs), &old).await;
        }
        if status::complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&mut old).await?;
        }
        self.sync_rollout_status(Some(&new_rs), &old).await
    }

    /// Kubernetes' `rolloutRecreate`.
    async fn recreate(
        &mut self,
        rs_list: &[ReplicaSet],
        pod_map: &HashMap<String, Vec<std::sync::Arc<Pod>>>,
    ) -> Result<Option<Duration>> {
        // No new ReplicaSet yet: it must not start before the old pods are gone.
        let (mut new_rs, mut old) = self.all_and_sync_revision(rs_list, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut() {
            if spec_replicas(rs) == 0 {
                continue;
            }
            let (scaled, updated) = self.scale_rs_to(rs, 0).await?;
            if scaled {
                *rs = updated;
                scaled_down = true;
            }
        }
        if scaled_down || old_pods_running(new_rs.as_ref(), &old, pod_map) {
            return self.sync_rollout_status(new_rs.as_ref(), &old).await;
        }
        if new_rs.is_none() {
            let (n, o) = self.all_and_sync_revision(rs_list, true).await?;
            new_rs = n;
            old = o;
        }
        if let Some(n) = &new_rs {
            let replicas = self.replicas();
            self.scale_rs_to(n, replicas).await?;
        }
        if status::complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&mut old).await?;
        }
        self.sync_rollout_status(new_rs.as_ref(), &old).await
    }

    /// Kubernetes' `cleanupDeployment`: deletes the oldest old ReplicaSets beyond
    /// `revisionHistoryLimit`, only those that are scaled to zero, have no pods, and whose
    /// controller has seen their latest spec.
    async fn cleanup(&self, old: &mut [ReplicaSet]) -> Result<()> {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut alive: Vec<&ReplicaSet> = old
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = i64::try_from(alive.len()).unwrap_or(i64::MAX) - i64::from(limit);
        if excess <= 0 {
            return Ok(());
        }
        alive.sort_by(|a, b| sets::by_revision(a, b));
        for rs in alive.into_iter().take(usize::try_from(excess).unwrap_or(0)) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if sets::status_replicas(rs) != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            let name = rs.name_any();
            tracing::info!(deployment = %self.key(), replicaset = %name, "deleting old replica set beyond revisionHistoryLimit");
            let dp = DeleteParams::default().preconditions(Preconditions {
                uid: rs.metadata.uid.clone(),
                resource_version: None,
            });
            match self.replicasets.delete(&name, &dp).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(api_err("delete", format!("ReplicaSet {name}"))(e)),
            }
        }
        Ok(())
    }
}

/// Kubernetes' `oldPodsRunning`: any old ReplicaSet still has pods, or any pod of an old
/// ReplicaSet has not finished (terminating pods count until they are gone).
pub fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    pod_map: &HashMap<String, Vec<std::sync::Arc<Pod>>>,
) -> bool {
    if sets::sum_status(old) > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|r| r.metadata.uid.as_deref());
    pod_map.iter().any(|(uid, list)| {
        Some(uid.as_str()) != new_uid
            && list.iter().any(|p| {
                let phase = pods::phase(p);
                phase != pods::PHASE_FAILED && phase != pods::PHASE_SUCCEEDED
            })
    })
}

#[cfg(test)]
mod tests {
    use super::super::replicasets::tests::rs;
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn pod(phase: &str) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({"status": {"phase": phase}})).expect("pod"))
    }

    #[test]
    fn recreate_waits_for_every_old_pod() {
        let new = rs("new", 0, 0, 2, "2");
        let mut old = rs("old", 0, 0, 1, "1");
        old.status.as_mut().expect("status").replicas = 0;
        let mut map = HashMap::new();
        map.insert("uid-old".to_string(), vec![pod("Succeeded"), pod("Failed")]);
        map.insert("uid-new".to_string(), vec![pod("Running")]);
        assert!(!old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map
        ));
        map.insert("uid-old".to_string(), vec![pod("Running")]);
        assert!(old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map
        ));
        map.insert("uid-old".to_string(), vec![pod("Unknown")]);
        assert!(old_pods_running(
            Some(&new),
            std::slice::from_ref(&old),
            &map
        ));
        let busy = rs("old", 0, 0, 1, "1");
        let mut busy = busy;
        busy.status.as_mut().expect("status").replicas = 2;
        assert!(old_pods_running(Some(&new), &[busy], &HashMap::new()));
    }
}
