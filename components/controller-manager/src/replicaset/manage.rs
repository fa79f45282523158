//! Creating and deleting a ReplicaSet's pods (Kubernetes' `manageReplicas`): at most
//! [`BURST`] per sync, creations in slow-start batches (1, 2, 4, …, stopping at the first
//! failure, so a quota or admission error costs one request rather than hundreds), deletions
//! of the pods ranked first, all in parallel, with Kubernetes' events.

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};

use super::expectations::PodKey;
use super::{Ctx, ranking, status};
use crate::error::{Error, Result, api_code, api_message};
use crate::workload::claim::controller_ref;
use crate::workload::events::Kind;
use crate::workload::pods;

/// Kubernetes' `burstReplicas`: pods created or deleted in one sync at most.
pub const BURST: usize = 500;
/// The first slow-start batch (Kubernetes' `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH: usize = 1;

pub const SUCCESSFUL_CREATE: &str = "SuccessfulCreate";
pub const SUCCESSFUL_DELETE: &str = "SuccessfulDelete";
pub const FAILED_CREATE: &str = "FailedCreate";
pub const FAILED_DELETE: &str = "FailedDelete";

/// The sizes of the slow-start batches for `count` creations: 1, 2, 4, … capped by what
/// remains.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut size = initial.max(1).min(remaining);
    while size > 0 {
        out.push(size);
        remaining -= size;
        size = (size * 2).min(remaining);
    }
    out
}

/// Brings the number of `owned` pods to `spec.replicas`.
pub async fn manage_replicas(rs: &ReplicaSet, owned: &[Arc<Pod>], ctx: &Ctx) -> Result<()> {
    let want = usize::try_from(status::spec_replicas(rs)).unwrap_or(0);
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    if owned.len() < want {
        let n = (want - owned.len()).min(BURST);
        ctx.expectations.expect_creations(&uid, n, Instant::now());
        let (created, err) = create_in_batches(rs, n, ctx).await;
        for _ in created..n {
            // Skipped or failed: the watch will never show these.
            ctx.expectations.creation_observed(&uid);
        }
        if created < n {
            tracing::info!(replicaset = %key(rs), skipped = n - created, "slow-start failure; skipping the remaining creations");
        }
        return err.map_or(Ok(()), Err);
    }
    if owned.len() > want {
        let n = (owned.len() - want).min(BURST);
        let related = related_pods(rs, owned, ctx);
        let victims = ranking::pods_to_delete(owned, &related, n, Timestamp::now());
        let keys: Vec<PodKey> = victims.iter().map(|p| pod_key(p)).collect();
        ctx.expectations
            .expect_deletions(&uid, keys.clone(), Instant::now());
        let uid = uid.as_str();
        let results = join_all(victims.iter().zip(keys).map(|(p, k)| async move {
            let r = delete_pod(rs, p, ctx).await;
            if r.is_err() {
                ctx.expectations.deletion_observed(uid, &k);
            }
            r
        }))
        .await;
        // Kubernetes reports the first failure; all were recorded as events.
        return results
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err);
    }
    Ok(())
}

fn key(rs: &ReplicaSet) -> String {
    format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any())
}

pub fn pod_key(p: &Pod) -> PodKey {
    PodKey {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
    }
}

/// The active pods of this ReplicaSet and of every ReplicaSet with the same controller
/// (a Deployment's old and new ReplicaSets), for ranking by colocation.
fn related_pods(rs: &ReplicaSet, owned: &[Arc<Pod>], ctx: &Ctx) -> Vec<Arc<Pod>> {
    let Some(controller) = crate::workload::claim::controller_of(&rs.metadata) else {
        return Vec::new();
    };
    let ns = rs.namespace().unwrap_or_default();
    let siblings: Vec<String> = ctx
        .replicasets
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(ns.as_str()))
        .filter(|r| {
            crate::workload::claim::controller_of(&r.metadata)
                .is_some_and(|c| c.uid == controller.uid)
        })
        .filter_map(|r| r.metadata.uid.clone())
        .collect();
    let mut out: Vec<Arc<Pod>> = owned.to_vec();
    out.extend(ctx.pods.state().into_iter().filter(|p| {
        p.namespace().as_deref() == Some(ns.as_str())
            && crate::workload::claim::controller_of(&p.metadata).is_some_and(|c| {
                siblings.contains(&c.uid) && Some(&c.uid) != rs.metadata.uid.as_ref()
            })
    }));
    out
}

/// Creates `n` pods in slow-start batches; returns how many were created and the first error.
async fn create_in_batches(rs: &ReplicaSet, n: usize, ctx: &Ctx) -> (usize, Option<Error>) {
    let mut created = 0;
    for batch in slow_start_batches(n, SLOW_START_INITIAL_BATCH) {
        let results = join_all((0..batch).map(|_| create_pod(rs, ctx))).await;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => created += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return (created, Some(e));
        }
    }
    (created, None)
}

/// Creates one pod from the template, with the events Kubernetes records. A namespace being
/// deleted refuses every creation; that is not an error of the ReplicaSet.
async fn create_pod(rs: &ReplicaSet, ctx: &Ctx) -> Result<()> {
    let ns = rs.namespace().unwrap_or_default();
    let Some(template) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
        return Ok(());
    };
    let pod = pods::from_template(template, &rs.name_any(), &ns, controller_ref(rs));
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &pod).await {
        Ok(created) => {
            tracing::debug!(replicaset = %key(rs), pod = %created.name_any(), "created pod");
            ctx.events.record(
                rs.object_ref(&()),
                Kind::Normal,
                SUCCESSFUL_CREATE,
                "Create",
                format!("Created pod: {}", created.name_any()),
            );
            Ok(())
        }
        Err(e) if namespace_terminating(&e) => Ok(()),
        Err(e) => {
            if !is_timeout(&e) {
                ctx.events.record(
                    rs.object_ref(&()),
                    Kind::Warning,
                    FAILED_CREATE,
                    "Create",
                    format!("Error creating: {}", api_message(&e)),
                );
            }
            Err(Error::Workload {
                action: "create pod for",
                object: format!("ReplicaSet {}", key(rs)),
                source: Box::new(e),
            })
        }
    }
}

/// Deletes one pod (its grace period applies); already gone is not a failure.
async fn delete_pod(rs: &ReplicaSet, pod: &Pod, ctx: &Ctx) -> Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), &ns);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            ctx.events.record(
                rs.object_ref(&()),
                Kind::Normal,
                SUCCESSFUL_DELETE,
                "Delete",
                format!("Deleted pod: {name}"),
            );
            Ok(())
        }
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => {
            ctx.events.record(
                rs.object_ref(&()),
                Kind::Warning,
                FAILED_DELETE,
                "Delete",
                format!("Error deleting: {}", api_message(&e)),
            );
            Err(Error::Workload {
                action: "delete pod of",
                object: format!("ReplicaSet {}", key(rs)),
                source: Box::new(e),
            })
        }
    }
}

/// Kubernetes' `NamespaceTerminatingCause` on a refused create.
fn namespace_terminating(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")),
        _ => false,
    }
}

fn is_timeout(e: &kube::Error) -> bool {
    matches!(api_code(e), Some(504)) || matches!(e, kube::Error::Api(s) if s.reason == "Timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles_up_to_the_remainder() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), vec![1]);
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15, 1), vec![1, 2, 4, 8]);
        assert_eq!(slow_start_batches(500, 1).iter().sum::<usize>(), 500);
    }
}
