//! The two Event APIs share one storage: `core/v1` Events are stored, and
//! `events.k8s.io/v1` reads and writes are converted on the way, as Kubernetes does.
//! Field names follow the renames of the events.k8s.io API (`regarding` ↔
//! `involvedObject`, `note` ↔ `message`, `deprecated*` ↔ the old counters).

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field) pairs that are renamed only.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, to_core: bool, api_version: &str) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let key = RENAMES
            .iter()
            .find_map(|(new, core)| {
                if to_core && k == new {
                    Some(*core)
                } else if !to_core && k == core {
                    Some(*new)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// events.k8s.io/v1 → stored core/v1 form.
pub fn to_core(obj: &Value) -> Value {
    rename(obj, true, "v1")
}

/// Stored core/v1 form → events.k8s.io/v1.
pub fn from_core(obj: &Value) -> Value {
    rename(obj, false, "events.k8s.io/v1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversion_round_trips() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "Started",
            "reportingController": "kubelet", "deprecatedCount": 3});
        let core = to_core(&new);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["count"], 3);
        assert_eq!(from_core(&core), new);
    }
}
