//! Priority: a new pod's `priorityClassName` is resolved into `spec.priority` and
//! `spec.preemptionPolicy` from its PriorityClass (scheduling.k8s.io/v1); a pod without a
//! class gets the `globalDefault` class (lowest value if several), else priority 0. An
//! unknown class, or a pod stating a priority or policy other than its class's, is
//! refused. Updates keep what create resolved. At most one PriorityClass may be the
//! global default.
//!
//! Kubernetes no longer confines the `system-node-critical` / `system-cluster-critical`
//! classes to kube-system (since 1.17 that is left to a ResourceQuota with a
//! PriorityClass scope), and neither does kadm.

use kadm_apimachinery::ApiError;
use serde_json::{Value, json};

use super::{Operation, Request, lookup};
use crate::server::State;

/// `scheduling.DefaultPriorityWhenNoDefaultClassExists`.
pub const DEFAULT_PRIORITY: i64 = 0;
/// The built-in classes the apiserver creates at start (value, description).
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn forbidden(req: &Request<'_>, detail: &str) -> ApiError {
    ApiError::forbidden(req.res.group, req.res.plural, req.name, detail)
}

fn priority_classes() -> Result<&'static kadm_apimachinery::ResourceInfo, ApiError> {
    lookup::resource("scheduling.k8s.io", "priorityclasses")
}

/// The global default class: the one with the lowest value when a race left several.
fn global_default(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0))
}

/// The mutating half, for pods.
pub async fn mutate(state: &State, req: &Request<'_>, pod: &mut Value) -> Result<(), ApiError> {
    if !req.is_core("pods") {
        return Ok(());
    }
    match req.operation {
        Operation::Update => {
            keep_resolved(req.old, pod);
            Ok(())
        }
        Operation::Create => resolve(state, req, pod).await,
        Operation::Delete => Ok(()),
    }
}

/// API validation forbids changing priority, but a client that leaves the fields out of
/// an update keeps what admission resolved at create.
fn keep_resolved(old: Option<&Value>, pod: &mut Value) {
    let Some(old) = old else { return };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["priority", "preemptionPolicy"] {
        if spec.get(field).is_none_or(Value::is_null)
            && let Some(v) = old
                .pointer(&format!("/spec/{field}"))
                .filter(|v| !v.is_null())
        {
            spec.insert(field.into(), v.clone());
        }
    }
}

async fn resolve(state: &State, req: &Request<'_>, pod: &mut Value) -> Result<(), ApiError> {
    let class_name = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let (name, priority, policy) = if class_name.is_empty() {
        let all = lookup::list(state, priority_classes()?, "").await?;
        match global_default(&all) {
            Some(pc) => (
                pc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                pc.get("value").and_then(Value::as_i64).unwrap_or(0),
                pc.get("preemptionPolicy")
                    .and_then(Value::as_str)
                    .map(String::from),
            ),
            None => (
                String::new(),
                DEFAULT_PRIORITY,
                Some("PreemptLowerPriority".to_string()),
            ),
        }
    } else {
        // A class created a moment ago may not be in the watch cache yet: `get` asks etcd.
        let pc = lookup::get(state, priority_classes()?, "", &class_name)
            .await?
            .ok_or_else(|| {
                forbidden(
                    req,
                    &format!("no PriorityClass with name {class_name} was found"),
                )
            })?;
        (
            class_name.clone(),
            pc.get("value").and_then(Value::as_i64).unwrap_or(0),
            pc.get("preemptionPolicy")
                .and_then(Value::as_str)
                .map(String::from),
        )
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(forbidden(
            req,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ),
        ));
    }
    if !name.is_empty() {
        spec.insert("priorityClassName".into(), json!(name));
    }
    spec.insert("priority".into(), json!(priority));
    if let Some(policy) = policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(forbidden(
                req,
                &format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ),
            ));
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// The validating half, for PriorityClasses: a second global default is refused.
pub async fn validate(state: &State, req: &Request<'_>, obj: &Value) -> Result<(), ApiError> {
    if req.res.group != "scheduling.k8s.io"
        || req.res.plural != "priorityclasses"
        || !req.subresource.is_empty()
        || req.operation == Operation::Delete
    {
        return Ok(());
    }
    if obj.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    // PriorityClass writes are rare: read etcd, so a default made a moment ago counts.
    let all = lookup::list_live(state, priority_classes()?, "").await?;
    if let Some(current) = global_default(&all) {
        let current_name = current
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if req.operation == Operation::Create || current_name != req.name {
            return Err(forbidden(
                req,
                &format!(
                    "PriorityClass {current_name} is already marked as default. Only one default can exist"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_global_default_wins() {
        let classes = vec![
            json!({"metadata": {"name": "a"}, "value": 10, "globalDefault": true}),
            json!({"metadata": {"name": "b"}, "value": 5, "globalDefault": true}),
            json!({"metadata": {"name": "c"}, "value": 1}),
        ];
        assert_eq!(
            global_default(&classes).map(|c| c["metadata"]["name"].clone()),
            Some(json!("b"))
        );
        assert!(global_default(&classes[2..]).is_none());
    }

    #[test]
    fn updates_keep_the_resolved_priority() {
        let old = json!({"spec": {"priority": 1000, "preemptionPolicy": "Never"}});
        let mut new = json!({"spec": {"containers": []}});
        keep_resolved(Some(&old), &mut new);
        assert_eq!(new["spec"]["priority"], 1000);
        assert_eq!(new["spec"]["preemptionPolicy"], "Never");
        let mut explicit = json!({"spec": {"priority": 5}});
        keep_resolved(Some(&old), &mut explicit);
        assert_eq!(
            explicit["spec"]["priority"], 5,
            "validation judges a change"
        );
    }
}
