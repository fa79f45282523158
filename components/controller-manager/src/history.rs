//! ControllerRevision history, shared by the DaemonSet and StatefulSet controllers
//! (Kubernetes' `pkg/controller/history`).
//!
//! A revision snapshots a pod template as the patch that restores it —
//! `{"spec":{"template":{…,"$patch":"replace"}}}`, the data `kubectl rollout undo` applies —
//! with a number that grows with every change. Its name is `<parent>-<hash>`, the hash being
//! FNV-1 (32 bit) of the data's JSON plus the parent's `collisionCount`, encoded with
//! Kubernetes' vowel-free alphabet. A name taken by different data is a collision: the count
//! goes up and the next name is tried (the parent records the count in its status, so the
//! next sync computes the same name).
//!
//! Rolling back to an old template reuses its revision and gives it the next number, so
//! the history never holds two revisions with the same data. Old revisions beyond
//! `revisionHistoryLimit` are deleted oldest first, except those pods still run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Selector;
use serde_json::{Value, json};

use crate::error::{Error, Result, api_code};
use crate::workload;
use crate::workload::claim::Claimant;

/// The label naming the revision a pod (and a DaemonSet revision) belongs to
/// (`apps.ControllerRevisionHashLabelKey`): the hash for DaemonSets, the revision's name for
/// StatefulSets.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label with the data's hash on StatefulSet revisions (`ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
/// Longest parent-name prefix of a revision name, so names stay within 253 bytes.
const MAX_PREFIX: usize = 223;
/// Names tried before a create gives up (each collision bumps the count once).
const CREATE_ATTEMPTS: i32 = 10;
/// `rand.SafeEncodeString`'s alphabet: no vowels, no look-alikes, so hashes spell no words.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1 (32 bit), Go's `hash/fnv.New32`.
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        h.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// `rand.SafeEncodeString`: every byte mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// `HashControllerRevision`: the data's JSON (keys sorted) and the collision count, hashed
/// and safely encoded.
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(c.to_string().as_bytes());
    }
    safe_encode(&fnv32(&bytes).to_string())
}

/// `ControllerRevisionName`: `<prefix>-<hash>`, the prefix cut to 223 bytes.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// The revision data for a pod template: the patch that restores exactly this template.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The pod template a revision restores, if its data is a template patch.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = data_of(rev)?.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

pub fn data_of(rev: &ControllerRevision) -> Option<&Value> {
    rev.data.as_ref().map(|d| &d.0)
}

/// Whether `rev` holds `data` (Kubernetes compares the raw bytes; JSON values are the same
/// comparison without depending on key order).
pub fn holds(rev: &ControllerRevision, data: &Value) -> bool {
    data_of(rev) == Some(data)
}

/// Oldest first: by number, then creation time, then name (Kubernetes' `byRevision`).
pub fn sort(revs: &mut [ControllerRevision]) {
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let t =
                    |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

pub fn max_revision(revs: &[ControllerRevision]) -> i64 {
    revs.iter().map(|r| r.revision).max().unwrap_or(0)
}

/// The revisions to delete to keep at most `limit` revisions that no pod uses: the oldest
/// unused ones. `revs` must be sorted oldest first.
pub fn to_prune(revs: &[ControllerRevision], live: &HashSet<String>, limit: i32) -> Vec<String> {
    let unused: Vec<&ControllerRevision> = revs
        .iter()
        .filter(|r| !r.metadata.name.as_ref().is_some_and(|n| live.contains(n)))
        .collect();
    let excess = unused
        .len()
        .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
    unused
        .into_iter()
        .take(excess)
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

/// A revision to create: everything but the name and the hash label, which depend on the
/// collision count.
pub struct Proto {
    pub namespace: String,
    /// The parent's name, the prefix of the revision's name.
    pub parent: String,
    pub owner: OwnerReference,
    /// The pod template's labels (plus what the controller adds).
    pub labels: BTreeMap<String, String>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// The label that gets the hash (`controller-revision-hash` for DaemonSets,
    /// [`HASH_LABEL`] for StatefulSets).
    pub hash_label: &'static str,
    pub data: Value,
    pub revision: i64,
}

fn object(ns: &str, name: &str) -> String {
    format!("controllerrevision {ns}/{name}")
}

fn api_err(action: &'static str, ns: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
    let object = object(ns, name);
    move |source| Error::Workload {
        action,
        object,
        source: Box::new(source),
    }
}

/// The revisions of a parent: those matching its selector that it controls, plus orphans,
/// which it adopts (`ClaimControllerRevisions`); revisions of other controllers are left
/// alone. `recheck` confirms the parent from the apiserver before the first adoption.
pub async fn claim<F, Fut>(
    api: &Api<ControllerRevision>,
    selector: &Selector,
    claimant: &Claimant<'_>,
    owner: &OwnerReference,
    recheck: F,
) -> Result<Vec<ControllerRevision>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let ns = claimant.namespace.unwrap_or_default();
    let list = api
        .list(&ListParams::default().labels_from(selector))
        .await
        .map_err(api_err("list", ns, &selector.to_string()))?;
    let candidates = list.items.into_iter().map(Arc::new).collect();
    let api = api.clone();
    let owned = workload::claim::claim(
        move |_| api.clone(),
        claimant,
        owner,
        candidates,
        |r: &ControllerRevision| workload::selector::matches(selector, r.metadata.labels.as_ref()),
        recheck,
    )
    .await?;
    Ok(owned.into_iter().map(Arc::unwrap_or_clone).collect())
}

/// Creates the revision, moving to the next name while a name is taken by other data;
/// a name taken by the same data is that revision. `collision_count` ends at the count
/// that named it.
pub async fn create(
    api: &Api<ControllerRevision>,
    proto: &Proto,
    collision_count: &mut i32,
) -> Result<ControllerRevision> {
    for _ in 0..CREATE_ATTEMPTS {
        let hash = hash(&proto.data, Some(*collision_count));
        let name = revision_name(&proto.parent, &hash);
        let mut labels = proto.labels.clone();
        labels.insert(proto.hash_label.to_string(), hash);
        let rev = ControllerRevision {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(proto.namespace.clone()),
                labels: Some(labels),
                annotations: proto.annotations.clone(),
                owner_references: Some(vec![proto.owner.clone()]),
                ..Default::default()
            },
            data: Some(RawExtension(proto.data.clone())),
            revision: proto.revision,
        };
        match api.create(&PostParams::default(), &rev).await {
            Ok(created) => return Ok(created),
            Err(e) if api_code(&e) == Some(409) => {
                let existing =
                    api.get(&name)
                        .await
                        .map_err(api_err("get", &proto.namespace, &name))?;
                if holds(&existing, &proto.data) {
                    return Ok(existing);
                }
                *collision_count = collision_count.saturating_add(1);
                tracing::info!(parent = %proto.parent, collision_count = *collision_count, "revision name collision; trying the next name");
            }
            Err(e) => return Err(api_err("create", &proto.namespace, &name)(e)),
        }
    }
    Err(Error::RevisionCollisions {
        parent: format!("{}/{}", proto.namespace, proto.parent),
        attempts: CREATE_ATTEMPTS,
    })
}

/// Gives an existing revision a new number (a rollback to it, or a newer duplicate).
pub async fn renumber(
    api: &Api<ControllerRevision>,
    rev: &ControllerRevision,
    revision: i64,
) -> Result<ControllerRevision> {
    let name = rev.metadata.name.clone().unwrap_or_default();
    let ns = rev.metadata.namespace.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"revision": revision})),
    )
    .await
    .map_err(api_err("renumber", &ns, &name))
}

/// Deletes a revision; one that is already gone is fine.
pub async fn delete(api: &Api<ControllerRevision>, namespace: &str, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(e) => Err(api_err("delete", namespace, name)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rev(name: &str, n: i64) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: None,
            revision: n,
        }
    }

    #[test]
    fn fnv1_matches_go_hash_fnv() {
        // Reference values of Go's fnv.New32 (FNV-1, not FNV-1a).
        assert_eq!(fnv32(b""), 0x811c_9dc5);
        assert_eq!(fnv32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv32(b"abc"), 0x439c_2f4b);
    }

    #[test]
    fn hashes_use_the_safe_alphabet_and_depend_on_collisions() {
        let data = json!({"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}});
        let h0 = hash(&data, Some(0));
        assert!(h0.bytes().all(|b| ALPHANUMS.contains(&b)), "{h0}");
        assert_eq!(h0, hash(&data, Some(0)), "stable");
        assert_ne!(h0, hash(&data, Some(1)));
        assert_eq!(safe_encode("0123"), "4567");
    }

    #[test]
    fn names_cut_long_parents() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "h").len(), 223 + 2);
    }

    #[test]
    fn template_patches_round_trip() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        }))
        .expect("template");
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let r = ControllerRevision {
            data: Some(RawExtension(data.clone())),
            ..rev("web-1", 1)
        };
        assert!(holds(&r, &data));
        assert_eq!(template_of(&r), Some(t));
    }

    #[test]
    fn pruning_keeps_the_limit_of_unused_revisions_oldest_first() {
        let mut revs = vec![rev("d", 4), rev("a", 1), rev("c", 3), rev("b", 2)];
        sort(&mut revs);
        let names: Vec<_> = revs
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(max_revision(&revs), 4);
        let live: HashSet<String> = ["a".to_string(), "d".to_string()].into();
        // Unused: b, c. Keep one → delete b.
        assert_eq!(to_prune(&revs, &live, 1), vec!["b".to_string()]);
        assert!(to_prune(&revs, &live, 2).is_empty());
        assert_eq!(
            to_prune(&revs, &live, 0),
            vec!["b".to_string(), "c".to_string()]
        );
    }
}
