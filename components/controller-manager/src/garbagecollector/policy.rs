//! The garbage collector's decisions, without I/O: what to do with an object given what
//! became of each of its owners, which dependents hold a foreground deletion, and the
//! metadata changes (owner references, finalizers) the collector writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::PropagationPolicy;

use super::graph::{FOREGROUND, ORPHAN};

/// What became of one owner, as Kubernetes classifies owner references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents: it keeps the object.
    Solid,
    /// The owner does not exist (gone, or replaced by another object of the same name).
    Dangling,
    /// The owner is being deleted in the foreground: it waits for its dependents to go.
    WaitingForDependentsDeletion,
}

/// What the garbage collector does with an object that has owner references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every owner is solid: nothing to do.
    Keep,
    /// Some owner is solid, so the object stays, but the references to these owners (gone,
    /// or waiting for their dependents) are removed so they stop holding anything.
    DropReferences(Vec<String>),
    /// No owner keeps the object: delete it with this propagation. `unblock_first` asks to
    /// make its own owner references non-blocking before (a foreground cycle guard).
    Delete {
        propagation: Propagation,
        unblock_first: bool,
    },
}

/// A deletion's `propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn policy(self) -> PropagationPolicy {
        match self {
            Propagation::Background => PropagationPolicy::Background,
            Propagation::Foreground => PropagationPolicy::Foreground,
            Propagation::Orphan => PropagationPolicy::Orphan,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        }
    }
}

/// The dependents of the object being judged, as far as the decision needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dependents {
    /// It has dependents at all.
    pub any: bool,
    /// One of them is itself being deleted in the foreground.
    pub one_deleting_dependents: bool,
}

/// Kubernetes' rule for an object whose owners were classified (`owners`: the uid of each
/// reference and what became of it; `finalizers`: the object's own):
///
/// - a solid owner keeps it; references to dangling or waiting owners are dropped;
/// - with no solid owner but one waiting in the foreground, an object that has dependents
///   of its own is deleted in the foreground too (so the wait propagates down), first
///   made non-blocking if one of its dependents waits as well (a cycle could never end);
/// - otherwise it is deleted with the propagation its own finalizers ask for (`orphan`,
///   `foregroundDeletion`), else in the background.
pub fn verdict(owners: &[(&str, OwnerState)], finalizers: &[String], deps: Dependents) -> Verdict {
    let of = |state: OwnerState| {
        owners
            .iter()
            .filter(move |(_, s)| *s == state)
            .map(|(uid, _)| uid.to_string())
    };
    if owners.is_empty() || of(OwnerState::Solid).next().is_some() {
        let drop: Vec<String> = of(OwnerState::Dangling)
            .chain(of(OwnerState::WaitingForDependentsDeletion))
            .collect();
        return if drop.is_empty() {
            Verdict::Keep
        } else {
            Verdict::DropReferences(drop)
        };
    }
    if of(OwnerState::WaitingForDependentsDeletion)
        .next()
        .is_some()
        && deps.any
    {
        return Verdict::Delete {
            propagation: Propagation::Foreground,
            unblock_first: deps.one_deleting_dependents,
        };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    let propagation = if has(ORPHAN) {
        Propagation::Orphan
    } else if has(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Verdict::Delete {
        propagation,
        unblock_first: false,
    }
}

/// `refs` without the references to `uids`; `None` when there is none to remove.
pub fn without_owners(refs: &[OwnerReference], uids: &[String]) -> Option<Vec<OwnerReference>> {
    let kept: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| !uids.contains(&r.uid))
        .cloned()
        .collect();
    (kept.len() != refs.len()).then_some(kept)
}

/// `refs` with every `blockOwnerDeletion: true` turned to false; `None` when none blocks.
pub fn unblocked(refs: &[OwnerReference]) -> Option<Vec<OwnerReference>> {
    if !refs.iter().any(|r| r.block_owner_deletion == Some(true)) {
        return None;
    }
    Some(
        refs.iter()
            .cloned()
            .map(|mut r| {
                if r.block_owner_deletion == Some(true) {
                    r.block_owner_deletion = Some(false);
                }
                r
            })
            .collect(),
    )
}

/// `finalizers` without `finalizer`; `None` when it is not there.
pub fn without_finalizer(finalizers: &[String], finalizer: &str) -> Option<Vec<String>> {
    let kept: Vec<String> = finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    (kept.len() != finalizers.len()).then_some(kept)
}

/// The JSON merge patch that sets a metadata list (`ownerReferences`, `finalizers`),
/// guarded by the resourceVersion it was computed from; an empty list removes the field.
pub fn metadata_patch<T: serde::Serialize>(
    field: &str,
    value: &[T],
    resource_version: &str,
) -> serde_json::Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "resourceVersion".into(),
        serde_json::Value::String(resource_version.into()),
    );
    let value = if value.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
    };
    metadata.insert(field.into(), value);
    serde_json::json!({ "metadata": metadata })
}

/// Whether two reference lists are the same set (order aside): an object whose references
/// are unchanged may still be deleted on the strength of an earlier decision.
pub fn same_owners(a: &[OwnerReference], b: &[OwnerReference]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use OwnerState::{Dangling, Solid, WaitingForDependentsDeletion as Waiting};

    fn r(uid: &str, block: Option<bool>) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block,
            controller: Some(true),
        }
    }

    const NONE: Dependents = Dependents {
        any: false,
        one_deleting_dependents: false,
    };

    fn delete(p: Propagation) -> Verdict {
        Verdict::Delete {
            propagation: p,
            unblock_first: false,
        }
    }

    #[test]
    fn every_owner_gone_means_background_deletion() {
        assert_eq!(
            verdict(&[("a", Dangling)], &[], NONE),
            delete(Propagation::Background)
        );
        assert_eq!(
            verdict(&[("a", Dangling), ("b", Dangling)], &[], NONE),
            delete(Propagation::Background)
        );
    }

    #[test]
    fn a_live_owner_keeps_the_object_and_dead_references_are_dropped() {
        assert_eq!(verdict(&[("a", Solid)], &[], NONE), Verdict::Keep);
        assert_eq!(
            verdict(&[("a", Dangling), ("b", Solid)], &[], NONE),
            Verdict::DropReferences(vec!["a".into()])
        );
        // A foreground-deleted owner must not wait for an object another owner keeps.
        assert_eq!(
            verdict(&[("a", Waiting), ("b", Solid), ("c", Dangling)], &[], NONE),
            Verdict::DropReferences(vec!["c".into(), "a".into()])
        );
        assert_eq!(verdict(&[], &[], NONE), Verdict::Keep);
    }

    #[test]
    fn dependents_of_a_foreground_owner_go_in_the_foreground_only_with_dependents_of_their_own() {
        assert_eq!(
            verdict(&[("a", Waiting)], &[], NONE),
            delete(Propagation::Background)
        );
        let some = Dependents {
            any: true,
            one_deleting_dependents: false,
        };
        assert_eq!(
            verdict(&[("a", Waiting), ("b", Dangling)], &[], some),
            delete(Propagation::Foreground)
        );
        let cycle = Dependents {
            any: true,
            one_deleting_dependents: true,
        };
        assert_eq!(
            verdict(&[("a", Waiting)], &[], cycle),
            Verdict::Delete {
                propagation: Propagation::Foreground,
                unblock_first: true
            }
        );
        // Dependents alone, without a waiting owner, do not change the propagation.
        assert_eq!(
            verdict(&[("a", Dangling)], &[], some),
            delete(Propagation::Background)
        );
    }

    #[test]
    fn the_objects_own_finalizers_choose_the_propagation() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            verdict(&[("a", Dangling)], &f(&["orphan"]), NONE),
            delete(Propagation::Orphan)
        );
        assert_eq!(
            verdict(
                &[("a", Dangling)],
                &f(&["x.io/y", "foregroundDeletion"]),
                NONE
            ),
            delete(Propagation::Foreground)
        );
        assert_eq!(Propagation::Orphan.as_str(), "Orphan");
    }

    #[test]
    fn removing_owner_references_keeps_the_others_in_order() {
        let refs = [r("a", Some(true)), r("b", None), r("c", Some(false))];
        let kept = without_owners(&refs, &["a".into(), "c".into()]).expect("changed");
        assert_eq!(kept, vec![r("b", None)]);
        assert_eq!(without_owners(&refs, &["zzz".into()]), None);
        assert_eq!(
            without_owners(&refs[..1], &["a".into()]),
            Some(vec![]),
            "the last reference can go"
        );
    }

    #[test]
    fn unblocking_turns_only_blocking_references_off() {
        let refs = [r("a", Some(true)), r("b", None)];
        assert_eq!(
            unblocked(&refs),
            Some(vec![r("a", Some(false)), r("b", None)])
        );
        assert_eq!(unblocked(&[r("b", None), r("c", Some(false))]), None);
    }

    #[test]
    fn finalizer_removal_and_patches() {
        let f = vec!["orphan".to_string(), "x.io/keep".to_string()];
        assert_eq!(
            without_finalizer(&f, "orphan"),
            Some(vec!["x.io/keep".to_string()])
        );
        assert_eq!(without_finalizer(&f, "foregroundDeletion"), None);
        assert_eq!(
            metadata_patch("finalizers", &["x.io/keep".to_string()], "42"),
            json!({"metadata": {"resourceVersion": "42", "finalizers": ["x.io/keep"]}})
        );
        assert_eq!(
            metadata_patch::<OwnerReference>("ownerReferences", &[], "7"),
            json!({"metadata": {"resourceVersion": "7", "ownerReferences": null}})
        );
        let p = metadata_patch("ownerReferences", &[r("b", None)], "7");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "b");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn same_owners_ignores_order() {
        let a = [r("a", Some(true)), r("b", None)];
        let b = [r("b", None), r("a", Some(true))];
        assert!(same_owners(&a, &b));
        assert!(!same_owners(&a, &[r("a", Some(false)), r("b", None)]));
        assert!(!same_owners(&a, &a[..1]));
    }
}
