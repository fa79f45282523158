//! A Deployment's ReplicaSets as the controller reads them: sizes, counts over sets, the
//! orders Kubernetes sorts them in, and which one is the new one.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::annotations;
use super::hash::equal_ignore_hash;

/// `spec.replicas` of a ReplicaSet (defaulted to 1 by the apiserver).
pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.replicas` (pods that exist).
pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn ready_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn available_replicas(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `spec.replicas` of a Deployment (defaulted to 1 by the apiserver).
pub fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sum of `spec.replicas` (Kubernetes' `GetReplicaCountForReplicaSets`).
pub fn sum_spec<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(spec_replicas).sum()
}

/// Sum of `status.replicas` (`GetActualReplicaCountForReplicaSets`).
pub fn sum_status<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(status_replicas).sum()
}

pub fn sum_ready<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(ready_replicas).sum()
}

pub fn sum_available<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(available_replicas).sum()
}

/// Kubernetes' `FilterActiveReplicaSets`: those asked for at least one pod.
pub fn is_active(rs: &ReplicaSet) -> bool {
    spec_replicas(rs) > 0
}

/// Kubernetes' `ReplicaSetsByCreationTimestamp`: older first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `ReplicaSetsBySizeNewer`: larger first; among equals, newer first.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// `ReplicaSetsBySizeOlder`: larger first; among equals, older first.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    spec_replicas(b)
        .cmp(&spec_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// `ReplicaSetsByRevision`: lower revision first, then by creation.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    annotations::revision(a)
        .cmp(&annotations::revision(b))
        .then_with(|| by_creation(a, b))
}

/// Kubernetes' `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the
/// Deployment's (ignoring `pod-template-hash`). Older first, so that after a hash collision
/// the original one stays the new one.
pub fn find_new<'a>(d: &Deployment, sets: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = d.spec.as_ref().map(|s| &s.template)?;
    let mut sorted: Vec<&ReplicaSet> = sets.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, template))
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    /// A ReplicaSet for tests: name, spec/available replicas, creation second, revision.
    pub fn rs(
        name: &str,
        replicas: i32,
        available: i32,
        created_s: u32,
        revision: &str,
    ) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}"),
                         "creationTimestamp": format!("2024-01-01T00:00:{created_s:02}Z"),
                         "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"replicas": replicas, "selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": name}]}}},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
        }))
        .expect("rs")
    }

    #[test]
    fn orders_follow_kubernetes() {
        let mut v = [
            rs("b", 3, 0, 2, "2"),
            rs("a", 3, 0, 1, "1"),
            rs("c", 5, 0, 3, "3"),
        ];
        v.sort_by(by_size_newer);
        let names: Vec<_> = v
            .iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["c", "b", "a"]);
        v.sort_by(by_size_older);
        let names: Vec<_> = v
            .iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
        v.sort_by(by_revision);
        let names: Vec<_> = v
            .iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn sums_and_activity() {
        let v = [rs("a", 3, 2, 1, "1"), rs("b", 0, 0, 2, "2")];
        assert_eq!(sum_spec(&v), 3);
        assert_eq!(sum_available(&v), 2);
        assert!(is_active(&v[0]) && !is_active(&v[1]));
    }

    #[test]
    fn new_replicaset_is_the_oldest_with_the_same_template() {
        let d: Deployment = serde_json::from_value(json!({
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}}
        }))
        .expect("d");
        let sets = vec![rs("a", 1, 1, 1, "1"), rs("b", 1, 1, 2, "2")];
        assert_eq!(
            find_new(&d, &sets).and_then(|r| r.metadata.name.as_deref()),
            Some("b")
        );
        assert!(find_new(&d, &sets[..1]).is_none());
    }
}
