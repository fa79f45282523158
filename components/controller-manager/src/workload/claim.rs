//! Controller references and claiming by selector (Kubernetes' `ControllerRefManager`).
//!
//! A workload owns the objects whose controller reference names its uid. Objects that match
//! its selector but have no controller are *adopted* (a controller reference is patched in);
//! objects it controls that no longer match are *released* (the reference is patched out).
//! Objects controlled by someone else are never touched. An owner that is being deleted
//! neither adopts nor releases, and adoption is preceded by one fresh read of the owner, so
//! a stale cache never makes a deleted owner grab objects.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{Error, Result, api_code};

/// The owner reference that makes an object's controller.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner`: `controller` and `blockOwnerDeletion` set, as
/// Kubernetes' `NewControllerRef`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a workload does with one candidate object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by the workload and matching: it is the workload's.
    Keep,
    /// An orphan that matches: take it.
    Adopt,
    /// Controlled by the workload but no longer matching: let it go.
    Release,
    /// Someone else's, or not to be touched now.
    Ignore,
}

/// The owner side of a claim.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub uid: &'a str,
    pub namespace: Option<&'a str>,
    /// The owner has a deletionTimestamp: it keeps what it has, adopts and releases nothing.
    pub deleting: bool,
}

/// Kubernetes' `ClaimObject` decision for one object.
pub fn decide(owner: &Claimant<'_>, obj: &ObjectMeta, matches: bool) -> Claim {
    if let Some(r) = controller_of(obj) {
        if r.uid != owner.uid {
            return Claim::Ignore;
        }
        if matches {
            return Claim::Keep;
        }
        if owner.deleting {
            return Claim::Ignore;
        }
        return Claim::Release;
    }
    if owner.deleting || !matches || obj.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    if owner
        .namespace
        .is_some_and(|ns| obj.namespace.as_deref() != Some(ns))
    {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// The strategic merge patch that adds `controller` to an object's owner references
/// (merged by uid); the object's uid in the patch makes it apply only to that object.
pub fn adopt_patch(obj_uid: &str, controller: &OwnerReference) -> serde_json::Value {
    json!({"metadata": {"ownerReferences": [controller], "uid": obj_uid}})
}

/// The strategic merge patch that removes the reference to `owner_uid`.
pub fn release_patch(obj_uid: &str, owner_uid: &str) -> serde_json::Value {
    json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": obj_uid}})
}

/// Claims `candidates` for the owner described by `claimant`/`controller`: returns the
/// objects it owns afterwards (kept and adopted). `recheck` is called once, before the first
/// adoption, and must confirm from the apiserver that the owner still exists and is not being
/// deleted. Every adoption and release is tried; their failures are returned together.
pub async fn claim<K, F, Fut>(
    api_for: impl Fn(&str) -> Api<K>,
    claimant: &Claimant<'_>,
    controller: &OwnerReference,
    candidates: Vec<Arc<K>>,
    matches: impl Fn(&K) -> bool,
    recheck: F,
) -> Result<Vec<Arc<K>>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut owned = Vec::with_capacity(candidates.len());
    let mut errors = Vec::new();
    let mut recheck = Some(recheck);
    let mut adoptable: Option<std::result::Result<(), String>> = None;
    for obj in candidates {
        let verdict = decide(claimant, obj.meta(), matches(&obj));
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let what = format!("{} {ns}/{name}", K::kind(&()));
        match verdict {
            Claim::Keep => owned.push(obj),
            Claim::Ignore => {}
            Claim::Adopt => {
                if adoptable.is_none()
                    && let Some(check) = recheck.take()
                {
                    adoptable = Some(check().await.map_err(|e| e.to_string()));
                }
                if let Some(Err(e)) = &adoptable {
                    errors.push(e.clone());
                    continue;
                }
                let patch = adopt_patch(&uid, controller);
                match api_for(&ns)
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(adopted) => {
                        tracing::info!(object = %what, owner = %controller.name, "adopted");
                        owned.push(Arc::new(adopted));
                    }
                    // Gone meanwhile: nothing to own.
                    Err(e) if api_code(&e) == Some(404) => {}
                    Err(e) => {
                        errors.push(format!("adopt {what}: {}", crate::error::api_message(&e)))
                    }
                }
            }
            Claim::Release => {
                let patch = release_patch(&uid, claimant.uid);
                match api_for(&ns)
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(object = %what, owner = %controller.name, "released")
                    }
                    // Gone, or the reference is already gone: released either way.
                    Err(e) if matches!(api_code(&e), Some(404) | Some(422)) => {}
                    Err(e) => {
                        errors.push(format!("release {what}: {}", crate::error::api_message(&e)))
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(owned)
    } else {
        Err(Error::WorkloadErrors { errors })
    }
}

/// Kubernetes' `RecheckDeletionTimestamp`: a fresh read of the owner must show the same uid
/// and no deletionTimestamp before anything is adopted.
pub async fn recheck_owner<K>(api: &Api<K>, name: &str, uid: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    let fresh = api.get(name).await.map_err(|source| Error::Workload {
        action: "get",
        object: format!("{kind} {name}"),
        source: Box::new(source),
    })?;
    let found = fresh.meta().uid.as_deref().unwrap_or_default();
    if found != uid {
        return Err(Error::CannotAdopt(format!(
            "original {kind} {}/{name} is gone: got uid {found}, wanted {uid}",
            fresh.namespace().unwrap_or_default()
        )));
    }
    if let Some(t) = &fresh.meta().deletion_timestamp {
        return Err(Error::CannotAdopt(format!(
            "{kind} {}/{name} has just been deleted at {}",
            fresh.namespace().unwrap_or_default(),
            t.0
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(controller_uid: Option<&str>, deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("pod-uid".into()),
            owner_references: controller_uid.map(|u| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "rs".into(),
                    uid: u.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            deletion_timestamp: deleting.then_some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            ),
            ..Default::default()
        }
    }

    const ME: Claimant<'static> = Claimant {
        uid: "me",
        namespace: Some("ns"),
        deleting: false,
    };

    #[test]
    fn owned_objects_are_kept_or_released_by_selector() {
        assert_eq!(decide(&ME, &meta(Some("me"), false), true), Claim::Keep);
        assert_eq!(decide(&ME, &meta(Some("me"), false), false), Claim::Release);
        let dying = Claimant {
            deleting: true,
            ..ME
        };
        assert_eq!(
            decide(&dying, &meta(Some("me"), false), false),
            Claim::Ignore
        );
        assert_eq!(decide(&dying, &meta(Some("me"), false), true), Claim::Keep);
    }

    #[test]
    fn orphans_are_adopted_only_when_matching_alive_and_in_namespace() {
        assert_eq!(decide(&ME, &meta(None, false), true), Claim::Adopt);
        assert_eq!(decide(&ME, &meta(None, false), false), Claim::Ignore);
        assert_eq!(decide(&ME, &meta(None, true), true), Claim::Ignore);
        let other_ns = Claimant {
            namespace: Some("elsewhere"),
            ..ME
        };
        assert_eq!(decide(&other_ns, &meta(None, false), true), Claim::Ignore);
        let dying = Claimant {
            deleting: true,
            ..ME
        };
        assert_eq!(decide(&dying, &meta(None, false), true), Claim::Ignore);
    }

    #[test]
    fn objects_of_other_controllers_are_ignored() {
        assert_eq!(
            decide(&ME, &meta(Some("other"), false), true),
            Claim::Ignore
        );
        assert_eq!(
            decide(&ME, &meta(Some("other"), false), false),
            Claim::Ignore
        );
    }

    #[test]
    fn patches_have_kubernetes_shape() {
        let r = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: "me".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        assert_eq!(
            adopt_patch("pod-uid", &r),
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "me", "controller": true, "blockOwnerDeletion": true}], "uid": "pod-uid"}})
        );
        assert_eq!(
            release_patch("pod-uid", "me"),
            json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "me"}], "uid": "pod-uid"}})
        );
    }
}
