//! Two-way strategic merge patches for status writes, as the kubelet sends them: the new
//! status, plus `null` for every field that disappeared and `$patch: delete` for list
//! entries that went away, so that fields written by others (a condition the taint manager
//! added) survive and nothing stale stays behind.

use serde_json::{Map, Value};

/// The merge key of a list field by its name, for the status types the kubelet writes
/// (conditions by `type`, container statuses by `name`, IPs by `ip`); `None` means the
/// list is replaced whole.
pub type MergeKeys = fn(&str) -> Option<&'static str>;

/// Merge keys of PodStatus and NodeStatus lists.
pub fn status_merge_keys(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "containerStatuses" | "initContainerStatuses" | "ephemeralContainerStatuses" => {
            Some("name")
        }
        "podIPs" | "hostIPs" => Some("ip"),
        _ => None,
    }
}

/// The patch that turns `old` into `new`.
pub fn two_way(old: &Value, new: &Value, keys: MergeKeys) -> Value {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => Value::Object(objects(o, n, keys)),
        _ => new.clone(),
    }
}

fn objects(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    keys: MergeKeys,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, nv) in new {
        let v = match (old.get(k), nv) {
            (Some(ov @ Value::Object(_)), Value::Object(_)) => two_way(ov, nv, keys),
            (Some(Value::Array(ol)), Value::Array(nl)) => match keys(k) {
                Some(key) => Value::Array(lists(ol, nl, key, keys)),
                None => nv.clone(),
            },
            _ => nv.clone(),
        };
        out.insert(k.clone(), v);
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.insert(k.clone(), Value::Null);
        }
    }
    out
}

fn lists(old: &[Value], new: &[Value], key: &str, keys: MergeKeys) -> Vec<Value> {
    let id = |v: &Value| v.get(key).cloned();
    let mut out: Vec<Value> = new
        .iter()
        .map(
            |nv| match old.iter().find(|ov| id(ov).is_some() && id(ov) == id(nv)) {
                Some(ov) => two_way(ov, nv, keys),
                None => nv.clone(),
            },
        )
        .collect();
    for ov in old {
        if let Some(k) = id(ov)
            && !new.iter().any(|nv| id(nv).as_ref() == Some(&k))
        {
            let mut del = Map::new();
            del.insert("$patch".into(), Value::String("delete".into()));
            del.insert(key.to_string(), k);
            out.push(Value::Object(del));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn removed_fields_become_null_and_list_entries_merge_by_key() {
        let old = json!({
            "phase": "Pending",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "Stale", "status": "True"}
            ],
            "containerStatuses": [
                {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ],
            "podIPs": [{"ip": "10.0.0.1"}]
        });
        let new = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "c", "state": {"running": {"startedAt": "t"}}}
            ],
            "podIPs": [{"ip": "10.0.0.1"}]
        });
        let p = two_way(&old, &new, status_merge_keys);
        assert_eq!(
            p,
            json!({
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": null},
                    {"$patch": "delete", "type": "Stale"}
                ],
                "containerStatuses": [
                    {"name": "c", "state": {"running": {"startedAt": "t"}, "waiting": null}}
                ],
                "podIPs": [{"ip": "10.0.0.1"}]
            })
        );
    }
}
