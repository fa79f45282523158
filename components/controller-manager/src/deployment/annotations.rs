//! The `deployment.kubernetes.io/*` annotations: revisions (what `kubectl rollout history` and
//! `undo` read), the revision history of a ReplicaSet that was rolled back to, and the
//! desired/max replica counts that proportional scaling divides by.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The deprecated rollback request annotation of extensions/v1beta1.
pub const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// `kubectl apply`'s record of the last applied configuration.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Longest `revision-history` value kept (Kubernetes' `MaxRevHistoryLengthInChars`).
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations that are never copied to ReplicaSets.
const NOT_COPIED: &[&str] = &[
    LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    DEPRECATED_ROLLBACK_TO,
];

fn get<'a>(annotations: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    annotations.as_ref()?.get(key).map(String::as_str)
}

/// A ReplicaSet's revision; absent or unparsable is 0.
pub fn revision(rs: &ReplicaSet) -> i64 {
    get(&rs.metadata.annotations, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among `sets`.
pub fn max_revision<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    sets.into_iter().map(revision).max().unwrap_or(0)
}

/// `desired-replicas` of a ReplicaSet, when present and valid.
pub fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    get(&rs.metadata.annotations, DESIRED_REPLICAS)?
        .parse()
        .ok()
}

/// `max-replicas` of a ReplicaSet, when present and valid.
pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    get(&rs.metadata.annotations, MAX_REPLICAS)?.parse().ok()
}

/// Sets `annotations[key] = value`; true when that changed anything.
fn set(annotations: &mut Option<BTreeMap<String, String>>, key: &str, value: &str) -> bool {
    let map = annotations.get_or_insert_with(BTreeMap::new);
    if map.get(key).map(String::as_str) == Some(value) {
        return false;
    }
    map.insert(key.to_string(), value.to_string());
    true
}

/// Copies the Deployment's own annotations onto the ReplicaSet (never the controller's).
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) {
            continue;
        }
        changed |= set(&mut rs.metadata.annotations, k, v);
    }
    changed
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises
/// the revision to `new_revision` when it is higher (recording the previous one in
/// `revision-history`, which is how a rolled-back-to ReplicaSet remembers what it was), and
/// for a ReplicaSet about to be created (`!exists`) sets the replica annotations. True when
/// anything changed.
pub fn set_new_replicaset_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let old = get(&rs.metadata.annotations, REVISION).map(str::to_string);
    let old_value = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            // Kubernetes gives up on a ReplicaSet with a revision it cannot read.
            Err(_) => return false,
        },
    };
    if old_value < new_revision {
        changed |= set(
            &mut rs.metadata.annotations,
            REVISION,
            &new_revision.to_string(),
        );
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = get(&rs.metadata.annotations, REVISION_HISTORY)
                .unwrap_or("")
                .to_string();
            if let Some(v) = appended_history(&history, &old, MAX_REVISION_HISTORY_CHARS) {
                changed |= set(&mut rs.metadata.annotations, REVISION_HISTORY, &v);
            }
        }
    }
    if !exists {
        let desired = super::replicasets::deployment_replicas(d);
        changed |= set_replicas_annotations(rs, desired, desired + max_surge);
    }
    changed
}

/// `history` with `old` appended, dropping the oldest entries to stay within `max_chars`;
/// `None` when even `old` alone does not fit.
pub fn appended_history(history: &str, old: &str, max_chars: usize) -> Option<String> {
    if history.is_empty() {
        return Some(old.to_string());
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > max_chars && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > max_chars {
        return None;
    }
    let mut kept: Vec<&str> = entries[start..].to_vec();
    kept.push(old);
    Some(kept.join(","))
}

/// Sets `desired-replicas` and `max-replicas`; true when either changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = set(
        &mut rs.metadata.annotations,
        DESIRED_REPLICAS,
        &desired.to_string(),
    );
    let b = set(&mut rs.metadata.annotations, MAX_REPLICAS, &max.to_string());
    a || b
}

/// Whether `desired-replicas`/`max-replicas` differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    get(&rs.metadata.annotations, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || get(&rs.metadata.annotations, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// Kubernetes' `SetDeploymentRevision`: the Deployment shows its new ReplicaSet's revision.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    set(&mut d.metadata.annotations, REVISION, revision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(annotations: serde_json::Value) -> Deployment {
        serde_json::from_value(
            json!({"metadata": {"name": "d", "annotations": annotations},
            "spec": {"replicas": 4, "selector": {}, "template": {}}}),
        )
        .expect("d")
    }

    fn replicaset(annotations: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": "d-x", "annotations": annotations}}))
            .expect("rs")
    }

    #[test]
    fn new_replicaset_gets_revision_and_replica_annotations() {
        let d = deployment(json!({"team": "a", LAST_APPLIED: "{}", REVISION: "7"}));
        let mut rs = replicaset(json!({}));
        assert!(set_new_replicaset_annotations(&d, &mut rs, 3, false, 1));
        let a = rs.metadata.annotations.clone().expect("annotations");
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get("team").map(String::as_str), Some("a"));
        assert!(!a.contains_key(LAST_APPLIED));
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("4"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("5"));
        assert!(!a.contains_key(REVISION_HISTORY));
        assert!(
            !set_new_replicaset_annotations(&d, &mut rs, 3, true, 1),
            "idempotent"
        );
    }

    #[test]
    fn rolling_back_records_the_previous_revision() {
        let d = deployment(json!({}));
        let mut rs = replicaset(json!({REVISION: "1"}));
        assert!(set_new_replicaset_annotations(&d, &mut rs, 4, true, 1));
        let a = rs.metadata.annotations.clone().expect("annotations");
        assert_eq!(a.get(REVISION).map(String::as_str), Some("4"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
        assert!(
            !a.contains_key(DESIRED_REPLICAS),
            "existing sets keep their replica annotations"
        );
        assert!(set_new_replicaset_annotations(&d, &mut rs, 6, true, 1));
        let a = rs.metadata.annotations.clone().expect("annotations");
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1,4"));
        assert!(
            !set_new_replicaset_annotations(&d, &mut rs, 5, true, 1),
            "never lowered"
        );
    }

    #[test]
    fn history_drops_oldest_entries_to_fit() {
        assert_eq!(appended_history("", "3", 10).as_deref(), Some("3"));
        assert_eq!(appended_history("1,2", "3", 10).as_deref(), Some("1,2,3"));
        assert_eq!(
            appended_history("10,11,12", "13", 8).as_deref(),
            Some("11,12,13")
        );
        assert_eq!(appended_history("1", "123456", 4), None);
    }

    #[test]
    fn revisions_parse_leniently() {
        assert_eq!(revision(&replicaset(json!({REVISION: "12"}))), 12);
        assert_eq!(revision(&replicaset(json!({REVISION: "x"}))), 0);
        assert_eq!(revision(&replicaset(json!({}))), 0);
        let sets = [
            replicaset(json!({REVISION: "2"})),
            replicaset(json!({REVISION: "9"})),
        ];
        assert_eq!(max_revision(&sets), 9);
    }
}
