//! Validation of the namespace policy objects admission enforces: LimitRange and
//! ResourceQuota (Kubernetes' `ValidateLimitRange` / `ValidateResourceQuota`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::quantity::Quantity;
use crate::quota;
use crate::status::Cause;

const LIMIT_TYPES: &[&str] = &["Pod", "Container", "PersistentVolumeClaim"];

/// Resources a quota counts in whole numbers.
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// The quota names Kubernetes checks scopes against.
const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

const POD_COMPUTE: &[&str] = &[
    "cpu",
    "memory",
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

/// A `ResourceList` field: its quantities, each checked to be one.
fn quantities(
    obj: &Value,
    path: &str,
    pointer: &str,
    causes: &mut Vec<Cause>,
) -> Vec<(String, Quantity)> {
    let mut out = Vec::new();
    for (k, v) in obj
        .pointer(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        match v.as_str().map(Quantity::parse) {
            Some(Ok(q)) => out.push((k.clone(), q)),
            _ => causes.push(Cause::invalid(
                format!("{path}[{k}]"),
                v,
                crate::quantity::ParseError.to_string(),
            )),
        }
    }
    out
}

/// `ValidateLimitRange`'s spec rules.
pub fn validate_limit_range(obj: &Value, causes: &mut Vec<Cause>) {
    let mut types = BTreeSet::new();
    for (i, item) in obj
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.limits[{i}]");
        let ty = item.get("type").and_then(Value::as_str).unwrap_or("");
        if ty.is_empty() {
            causes.push(Cause::required(format!("{path}.type"), ""));
        } else if !ty.contains('/') && !LIMIT_TYPES.contains(&ty) {
            causes.push(Cause::invalid(
                format!("{path}.type"),
                &json!(ty),
                "must be a standard limit type or fully qualified",
            ));
        }
        if !types.insert(ty.to_string()) {
            causes.push(Cause::duplicate(format!("{path}.type"), &json!(ty)));
        }
        let list = |field: &str, causes: &mut Vec<Cause>| {
            quantities(
                item,
                &format!("{path}.{field}"),
                &format!("/{field}"),
                causes,
            )
        };
        let max = list("max", causes);
        let min = list("min", causes);
        let default = list("default", causes);
        let default_request = list("defaultRequest", causes);
        let ratio = list("maxLimitRequestRatio", causes);
        if ty == "Pod" {
            for (field, l) in [("default", &default), ("defaultRequest", &default_request)] {
                if !l.is_empty() {
                    causes.push(Cause::forbidden(
                        format!("{path}.{field}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        if ty == "PersistentVolumeClaim"
            && !min.iter().chain(max.iter()).any(|(k, _)| k == "storage")
        {
            causes.push(Cause::required(
                format!("{path}.limits"),
                "either minimum or maximum storage value is required, but neither was provided",
            ));
        }
        let get =
            |l: &[(String, Quantity)], k: &str| l.iter().find(|(n, _)| n == k).map(|(_, q)| *q);
        let keys: BTreeSet<&String> = [&max, &min, &default, &default_request, &ratio]
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            let (mn, mx) = (get(&min, k), get(&max, k));
            let (df, dr) = (get(&default, k), get(&default_request, k));
            let mut invalid = |field: &str, value: Quantity, detail: String| {
                causes.push(Cause::invalid(
                    format!("{path}.{field}[{k}]"),
                    &json!(value.to_string()),
                    detail,
                ));
            };
            if let (Some(mn), Some(mx)) = (mn, mx)
                && mn > mx
            {
                invalid(
                    "min",
                    mn,
                    format!("min value {mn} is greater than max value {mx}"),
                );
            }
            if let (Some(dr), Some(mn)) = (dr, mn)
                && mn > dr
            {
                invalid(
                    "defaultRequest",
                    dr,
                    format!("min value {mn} is greater than default request value {dr}"),
                );
            }
            if let (Some(dr), Some(mx)) = (dr, mx)
                && dr > mx
            {
                invalid(
                    "defaultRequest",
                    dr,
                    format!("default request value {dr} is greater than max value {mx}"),
                );
            }
            if let (Some(dr), Some(df)) = (dr, df)
                && dr > df
            {
                invalid(
                    "defaultRequest",
                    dr,
                    format!("default request value {dr} is greater than default limit value {df}"),
                );
            }
            if let (Some(df), Some(mn)) = (df, mn)
                && mn > df
            {
                invalid(
                    "default",
                    mn,
                    format!("min value {mn} is greater than default value {df}"),
                );
            }
            if let (Some(df), Some(mx)) = (df, mx)
                && df > mx
            {
                invalid(
                    "default",
                    mx,
                    format!("default value {df} is greater than max value {mx}"),
                );
            }
            if let Some(r) = get(&ratio, k)
                && r < Quantity::from_value(1)
            {
                invalid(
                    "maxLimitRequestRatio",
                    r,
                    format!("ratio {r} is less than 1"),
                );
            }
        }
    }
}

/// `ValidateResourceQuota`'s spec (and status) rules: known scopes that fit the limited
/// resources, quantities that are not negative, whole numbers for object counts.
pub fn validate_resource_quota(obj: &Value, causes: &mut Vec<Cause>) {
    for (path, pointer) in [
        ("spec.hard", "/spec/hard"),
        ("status.hard", "/status/hard"),
        ("status.used", "/status/used"),
    ] {
        for (k, q) in quantities(obj, path, pointer, causes) {
            let field = format!("{path}[{k}]");
            if q.sign() < 0 {
                causes.push(Cause::invalid(
                    field.clone(),
                    &json!(q.to_string()),
                    "must be greater than or equal to 0",
                ));
            }
            let integer =
                INTEGER_RESOURCES.contains(&k.as_str()) || quota::is_extended_resource_name(&k);
            if integer && q.milli_value() % 1000 != 0 {
                causes.push(Cause::invalid(
                    field,
                    &json!(q.to_string()),
                    "must be an integer",
                ));
            }
        }
    }
    let scopes: Vec<&str> = obj
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let hard: Vec<String> = obj
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let shown = json!(scopes);
    for scope in &scopes {
        if !quota::SCOPES.contains(scope) {
            causes.push(Cause::invalid("spec.scopes", &shown, "unsupported scope"));
        }
        for k in hard.iter().filter(|k| {
            STANDARD_QUOTA_RESOURCES.contains(&k.as_str()) || k.starts_with("hugepages-")
        }) {
            let valid = match *scope {
                "BestEffort" => k == "pods",
                "Terminating"
                | "NotTerminating"
                | "NotBestEffort"
                | "PriorityClass"
                | "CrossNamespacePodAffinity" => k == "pods" || POD_COMPUTE.contains(&k.as_str()),
                _ => true,
            };
            if !valid {
                causes.push(Cause::invalid(
                    "spec.scopes",
                    &shown,
                    "unsupported scope applied to resource",
                ));
            }
        }
    }
    for pair in [
        ["BestEffort", "NotBestEffort"],
        ["Terminating", "NotTerminating"],
    ] {
        if pair.iter().all(|p| scopes.contains(p)) {
            causes.push(Cause::invalid("spec.scopes", &shown, "conflicting scopes"));
        }
    }
    for (i, e) in obj
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.scopeSelector.matchExpressions[{i}]");
        let name = e.get("scopeName").and_then(Value::as_str).unwrap_or("");
        if !quota::SCOPES.contains(&name) {
            causes.push(Cause::invalid(
                format!("{path}.scopeName"),
                &json!(name),
                "unsupported scope",
            ));
        }
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match op {
            "In" | "NotIn" if values == 0 => causes.push(Cause::required(
                format!("{path}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if values > 0 => causes.push(Cause::invalid(
                format!("{path}.values"),
                e.get("values").unwrap_or(&Value::Null),
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::not_supported(
                format!("{path}.operator"),
                &json!(other),
                &["DoesNotExist", "Exists", "In", "NotIn"],
            )),
        }
    }
}

/// Kubernetes' built-in priority classes: (name, value), neither a global default.
const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];
/// `HighestUserDefinablePriority`.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// `ValidatePriorityClass`: `system-` names are reserved for the built-in classes (with
/// their values), other classes stay at or below one billion.
pub fn validate_priority_class(obj: &Value, causes: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
    let global_default = obj
        .get("globalDefault")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if name.starts_with("system-") {
        let problem = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((_, v)) if *v != value => {
                Some(format!("value of {name} PriorityClass must be {v}"))
            }
            Some(_) if global_default => Some(format!(
                "globalDefault of {name} PriorityClass must be false"
            )),
            Some(_) => None,
        };
        if let Some(p) = problem {
            causes.push(Cause::forbidden(
                "metadata.name",
                format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
            ));
        }
    } else if value > HIGHEST_USER_PRIORITY {
        causes.push(Cause::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lr_causes(obj: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate_limit_range(&obj, &mut c);
        c.iter().map(Cause::to_error_string).collect()
    }

    fn rq_causes(obj: Value) -> Vec<String> {
        let mut c = Vec::new();
        validate_resource_quota(&obj, &mut c);
        c.iter().map(Cause::to_error_string).collect()
    }

    #[test]
    fn limit_ranges_keep_min_below_defaults_below_max() {
        assert!(
            lr_causes(json!({"spec": {"limits": [{"type": "Container",
                "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "default": {"cpu": "500m"},
                "defaultRequest": {"cpu": "200m"}}]}}))
            .is_empty()
        );
        assert_eq!(
            lr_causes(json!({"spec": {"limits": [{"type": "Container",
                "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}})),
            [
                "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"
            ]
        );
        assert_eq!(
            lr_causes(json!({"spec": {"limits": [{"type": "Pod", "default": {"cpu": "1"}}]}})),
            ["spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'"]
        );
        assert_eq!(
            lr_causes(json!({"spec": {"limits": [{"type": "Widget"}]}})),
            [
                "spec.limits[0].type: Invalid value: \"Widget\": must be a standard limit type or fully qualified"
            ]
        );
        assert_eq!(
            lr_causes(json!({"spec": {"limits": [{"type": "PersistentVolumeClaim"}]}})).len(),
            1
        );
    }

    #[test]
    fn system_priority_class_names_are_reserved() {
        let causes = |obj: Value| {
            let mut c = Vec::new();
            validate_priority_class(&obj, &mut c);
            c.iter().map(Cause::to_error_string).collect::<Vec<_>>()
        };
        assert!(
            causes(json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000}))
                .is_empty()
        );
        assert_eq!(
            causes(json!({"metadata": {"name": "system-mine"}, "value": 1})),
            [
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
            ]
        );
        assert_eq!(
            causes(json!({"metadata": {"name": "high"}, "value": 2000000000})),
            ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]
        );
    }

    #[test]
    fn quotas_refuse_negative_fractional_counts_and_bad_scopes() {
        assert!(
            rq_causes(json!({"spec": {"hard": {"pods": "10", "requests.cpu": "1500m"}}}))
                .is_empty()
        );
        assert_eq!(
            rq_causes(json!({"spec": {"hard": {"pods": "1500m", "cpu": "-1"}}})),
            [
                "spec.hard[pods]: Invalid value: \"1500m\": must be an integer",
                "spec.hard[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
            ]
        );
        assert_eq!(
            rq_causes(json!({"spec": {"hard": {"configmaps": "1"}, "scopes": ["BestEffort"]}})),
            ["spec.scopes: Invalid value: [\"BestEffort\"]: unsupported scope applied to resource"]
        );
        assert_eq!(
            rq_causes(
                json!({"spec": {"hard": {"pods": "1"}, "scopes": ["Terminating", "NotTerminating"]}})
            ),
            [
                "spec.scopes: Invalid value: [\"Terminating\",\"NotTerminating\"]: conflicting scopes"
            ]
        );
        assert_eq!(
            rq_causes(
                json!({"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In"}]}}})
            )
            .len(),
            1
        );
    }
}
