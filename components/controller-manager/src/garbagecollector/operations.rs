//! The garbage collector's writes: guarded deletes and metadata patches, each retried on
//! conflicts against the object's newest state.
//!
//! Decisions are taken on the graph's copy of an object; its `resourceVersion` guards the
//! write, so a decision is never applied to a version of the object it was not taken on.
//! When the guard fails the object is read again: a replaced object (other uid) or a gone
//! one ends the operation, a changed one gets the change recomputed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::discovery::ApiResource;

use super::graph::Node;
use super::policy::{self, Propagation};
use crate::error::{Error, Result, api_code};

/// Writes tried per operation before it is given back to the back-off.
const ATTEMPTS: usize = 5;

/// The part of an object's metadata the collector rewrites, at one resourceVersion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    pub resource_version: String,
    pub owners: Vec<OwnerReference>,
    pub finalizers: Vec<String>,
}

impl Meta {
    pub fn of_node(n: &Node) -> Self {
        Self {
            resource_version: n.resource_version.clone(),
            owners: n.owners.clone(),
            finalizers: n.finalizers.clone(),
        }
    }

    pub fn of_object(m: &ObjectMeta) -> Self {
        Self {
            resource_version: m.resource_version.clone().unwrap_or_default(),
            owners: m.owner_references.clone().unwrap_or_default(),
            finalizers: m.finalizers.clone().unwrap_or_default(),
        }
    }
}

/// How a patch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Patched {
    /// Written; the object's metadata afterwards.
    Done(Meta),
    /// Nothing to change (any more).
    Unneeded,
    /// The object is gone or was replaced.
    Gone,
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The apiserver accepted it (the object is gone or being deleted).
    Requested,
    /// The object was gone already or was replaced.
    Gone,
    /// Its owner references changed since the decision: decide again.
    Changed,
}

fn gc_error(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::GarbageCollector {
        action,
        object,
        source: Box::new(source),
    }
}

/// The API of `resource`, in `namespace` if it has one.
pub fn api(client: &Client, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

fn node_api(client: &Client, node: &Node) -> Api<DynamicObject> {
    api(client, &node.resource, node.identity.namespace.as_deref())
}

/// Reads `name`; `None` when there is no such object.
pub async fn get(
    client: &Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<DynamicObject>> {
    let what = match namespace {
        Some(ns) => format!("{}/{ns}/{name}", resource.kind),
        None => format!("{}/{name}", resource.kind),
    };
    api(client, resource, namespace)
        .get_opt(name)
        .await
        .map_err(gc_error("get", what))
}

/// The newest state of `node`'s object, if it still is the same object.
async fn live(api: &Api<DynamicObject>, node: &Node) -> Result<Option<DynamicObject>> {
    let obj = api
        .get_opt(&node.identity.name)
        .await
        .map_err(gc_error("get", node.identity.to_string()))?;
    Ok(obj.filter(|o| o.metadata.uid.as_deref() == Some(node.uid())))
}

/// Sets one metadata list of `node`'s object to what `change` computes from the object's
/// metadata (`None`: nothing to change), with a merge patch guarded by resourceVersion.
async fn patch_list<T: serde::Serialize>(
    client: &Client,
    node: &Node,
    action: &'static str,
    field: &'static str,
    change: impl Fn(&Meta) -> Option<Vec<T>>,
) -> Result<Patched> {
    let api = node_api(client, node);
    let mut meta = Meta::of_node(node);
    for _ in 0..ATTEMPTS {
        let Some(value) = change(&meta) else {
            return Ok(Patched::Unneeded);
        };
        let patch = policy::metadata_patch(field, &value, &meta.resource_version);
        match api
            .patch(
                &node.identity.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(obj) if obj.metadata.uid.as_deref() == Some(node.uid()) => {
                return Ok(Patched::Done(Meta::of_object(&obj.metadata)));
            }
            Ok(_) => return Ok(Patched::Gone),
            Err(e) if api_code(&e) == Some(404) => return Ok(Patched::Gone),
            Err(e) if api_code(&e) == Some(409) => match live(&api, node).await? {
                Some(obj) => meta = Meta::of_object(&obj.metadata),
                None => return Ok(Patched::Gone),
            },
            Err(e) => return Err(gc_error(action, node.identity.to_string())(e)),
        }
    }
    Err(Error::GarbageCollectorConflicts {
        action,
        object: node.identity.to_string(),
        attempts: ATTEMPTS,
    })
}

/// Rewrites the owner references of `node`'s object with `change`.
pub async fn patch_owner_references(
    client: &Client,
    node: &Node,
    action: &'static str,
    change: impl Fn(&[OwnerReference]) -> Option<Vec<OwnerReference>>,
) -> Result<Patched> {
    patch_list(client, node, action, "ownerReferences", |m| {
        change(&m.owners)
    })
    .await
}

/// Removes `finalizer` from `node`'s object.
pub async fn remove_finalizer(client: &Client, node: &Node, finalizer: &str) -> Result<Patched> {
    patch_list(client, node, "remove a finalizer from", "finalizers", |m| {
        policy::without_finalizer(&m.finalizers, finalizer)
    })
    .await
}

/// Deletes `node`'s object with `propagation`, guarded by its uid and the resourceVersion
/// the decision was taken on. If only the version moved on (status, labels…), the delete is
/// repeated against the newer version; if the owner references changed, it is not.
pub async fn delete(client: &Client, node: &Node, propagation: Propagation) -> Result<Deleted> {
    let api = node_api(client, node);
    let mut version = Some(node.resource_version.clone()).filter(|v| !v.is_empty());
    for _ in 0..ATTEMPTS {
        let dp = DeleteParams {
            propagation_policy: Some(propagation.policy()),
            preconditions: Some(Preconditions {
                uid: Some(node.uid().to_string()),
                resource_version: version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&node.identity.name, &dp).await {
            Ok(_) => return Ok(Deleted::Requested),
            Err(e) if api_code(&e) == Some(404) => return Ok(Deleted::Gone),
            Err(e) if api_code(&e) == Some(409) => {
                let Some(obj) = live(&api, node).await? else {
                    return Ok(Deleted::Gone);
                };
                let now = Meta::of_object(&obj.metadata);
                if !policy::same_owners(&now.owners, &node.owners) {
                    return Ok(Deleted::Changed);
                }
                version = Some(now.resource_version).filter(|v| !v.is_empty());
            }
            Err(e) => return Err(gc_error("delete", node.identity.to_string())(e)),
        }
    }
    Ok(Deleted::Changed)
}
