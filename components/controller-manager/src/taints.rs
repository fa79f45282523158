//! Taints and tolerations as the node controllers use them: Kubernetes' well-known node
//! taint keys, which taints a node's conditions call for, and whether a toleration
//! tolerates a taint (`ToleratesTaint`).

use k8s_openapi::api::core::v1::{NodeCondition, Taint, Toleration};

/// The node's Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node controller has not heard from the node (Ready is Unknown).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// `spec.unschedulable` (cordon).
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

pub const NO_SCHEDULE: &str = "NoSchedule";
pub const NO_EXECUTE: &str = "NoExecute";

/// The NoSchedule taint keys the node lifecycle controller owns (Kubernetes'
/// `taintKeyToNodeConditionMap` plus the unschedulable taint).
pub const NO_SCHEDULE_KEYS: &[&str] = &[
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    MEMORY_PRESSURE,
    DISK_PRESSURE,
    PID_PRESSURE,
    NETWORK_UNAVAILABLE,
];

/// The NoExecute taint keys the node lifecycle controller owns.
pub const NO_EXECUTE_KEYS: &[&str] = &[NOT_READY, UNREACHABLE];

fn status_of<'a>(conditions: &'a [NodeCondition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The `(key, effect)` taints a node with these conditions should carry from the node
/// controller: NoSchedule ones for every unhealthy condition (TaintNodesByCondition) and
/// the NoExecute twin of Ready=False / Ready=Unknown (taint-based eviction).
pub fn wanted(
    conditions: &[NodeCondition],
    unschedulable: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match status_of(conditions, "Ready") {
        Some("False") => {
            out.push((NOT_READY, NO_SCHEDULE));
            out.push((NOT_READY, NO_EXECUTE));
        }
        Some("Unknown") => {
            out.push((UNREACHABLE, NO_SCHEDULE));
            out.push((UNREACHABLE, NO_EXECUTE));
        }
        _ => {}
    }
    for (type_, key) in [
        ("MemoryPressure", MEMORY_PRESSURE),
        ("DiskPressure", DISK_PRESSURE),
        ("PIDPressure", PID_PRESSURE),
        ("NetworkUnavailable", NETWORK_UNAVAILABLE),
    ] {
        if status_of(conditions, type_) == Some("True") {
            out.push((key, NO_SCHEDULE));
        }
    }
    if unschedulable {
        out.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// Whether the node controller owns this taint (it adds and removes it by the conditions).
pub fn owned(t: &Taint) -> bool {
    match t.effect.as_str() {
        NO_SCHEDULE => NO_SCHEDULE_KEYS.contains(&t.key.as_str()),
        NO_EXECUTE => NO_EXECUTE_KEYS.contains(&t.key.as_str()),
        _ => false,
    }
}

/// `taints` with the owned taints replaced by `wanted`: taints of others stay as they
/// are, owned taints that stay keep their `timeAdded`, new ones get `now`. `None` when
/// nothing changes.
pub fn reconcile(
    taints: &[Taint],
    wanted: &[(&str, &str)],
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = taints
        .iter()
        .filter(|t| !owned(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    let mut changed = out.len() != taints.len();
    for (key, effect) in wanted {
        if !out.iter().any(|t| t.key == *key && t.effect == *effect) {
            out.push(Taint {
                key: (*key).to_string(),
                effect: (*effect).to_string(),
                value: None,
                time_added: Some(now.clone()),
            });
            changed = true;
        }
    }
    changed.then_some(out)
}

/// Kubernetes' `ToleratesTaint`: the effect matches (or the toleration names none), the
/// key matches (an empty key with `Exists` matches every key), and `Exists` or the values
/// are equal.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// How long a pod may stay on a node with `taint`: `Some(None)` forever, `Some(Some(s))`
/// `s` seconds (0 or less: not at all), `None` when no toleration tolerates it. As in
/// Kubernetes, the first toleration that tolerates the taint decides.
pub fn toleration_for(tolerations: &[Toleration], taint: &Taint) -> Option<Option<i64>> {
    tolerations
        .iter()
        .find(|t| tolerates(t, taint))
        .map(|t| t.toleration_seconds.map(|s| s.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn cond(type_: &str, status: &str) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            ..NodeCondition::default()
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Taint::default()
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn conditions_map_to_kubernetes_taints() {
        assert!(wanted(&[cond("Ready", "True")], false).is_empty());
        assert_eq!(
            wanted(&[cond("Ready", "Unknown")], false),
            vec![(UNREACHABLE, NO_SCHEDULE), (UNREACHABLE, NO_EXECUTE)]
        );
        assert_eq!(
            wanted(
                &[cond("Ready", "False"), cond("DiskPressure", "True")],
                true
            ),
            vec![
                (NOT_READY, NO_SCHEDULE),
                (NOT_READY, NO_EXECUTE),
                (DISK_PRESSURE, NO_SCHEDULE),
                (UNSCHEDULABLE, NO_SCHEDULE)
            ]
        );
    }

    #[test]
    fn reconcile_keeps_foreign_taints_and_time_added() {
        let then = Time("2025-01-01T00:00:00Z".parse::<Timestamp>().expect("ts"));
        let now = Time(Timestamp::now());
        let mut unreachable = taint(UNREACHABLE, NO_EXECUTE);
        unreachable.time_added = Some(then.clone());
        let foreign = taint("example.com/gpu", NO_SCHEDULE);
        let current = vec![foreign.clone(), unreachable.clone()];
        // Same wanted set: nothing to write.
        assert!(reconcile(&current, &[(UNREACHABLE, NO_EXECUTE)], &now).is_none());
        // A new owned taint is added with `now`; the existing one keeps its time.
        let out = reconcile(
            &current,
            &[(UNREACHABLE, NO_EXECUTE), (UNREACHABLE, NO_SCHEDULE)],
            &now,
        )
        .expect("changed");
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].time_added, Some(then));
        assert_eq!(out[2].time_added, Some(now.clone()));
        // Node healthy again: owned taints go, the foreign one stays.
        assert_eq!(reconcile(&current, &[], &now), Some(vec![foreign]));
    }

    #[test]
    fn toleration_matching_follows_kubernetes() {
        let t = Taint {
            value: Some("v".into()),
            ..taint("k", NO_EXECUTE)
        };
        assert!(tolerates(&tol("k", "Equal", "v", "NoExecute", None), &t));
        assert!(tolerates(&tol("k", "", "v", "", None), &t));
        assert!(!tolerates(&tol("k", "Equal", "w", "NoExecute", None), &t));
        assert!(tolerates(&tol("k", "Exists", "", "", None), &t));
        assert!(tolerates(&tol("", "Exists", "", "", None), &t));
        assert!(!tolerates(&tol("k", "Exists", "", "NoSchedule", None), &t));
        assert!(!tolerates(&tol("other", "Exists", "", "", None), &t));
    }

    #[test]
    fn first_tolerating_toleration_decides_the_time() {
        let t = taint(UNREACHABLE, NO_EXECUTE);
        let tols = vec![
            tol("x", "Exists", "", "", None),
            tol(UNREACHABLE, "Exists", "", NO_EXECUTE, Some(5)),
            tol("", "Exists", "", "", None),
        ];
        assert_eq!(toleration_for(&tols, &t), Some(Some(5)));
        assert_eq!(toleration_for(&tols[2..], &t), Some(None));
        assert_eq!(toleration_for(&tols[..1], &t), None);
        assert_eq!(
            toleration_for(&[tol("", "Exists", "", "", Some(-3))], &t),
            Some(Some(0))
        );
    }
}
