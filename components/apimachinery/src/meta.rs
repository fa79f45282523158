//! Reading and writing `metadata` on objects held as JSON.
//!
//! The apiserver keeps objects as `serde_json::Value` end to end — it must store
//! fields it does not model and round-trip them untouched — so metadata access is
//! a handful of small, total functions instead of typed structs.

use serde_json::{Map, Value, json};

/// `metadata` of an object, if it is an object.
pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created when missing (or not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("object just ensured");
    let m = map.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("metadata just ensured")
}

fn str_field<'a>(obj: &'a Value, field: &str) -> &'a str {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    str_field(obj, "name")
}
pub fn generate_name(obj: &Value) -> &str {
    str_field(obj, "generateName")
}
pub fn namespace(obj: &Value) -> &str {
    str_field(obj, "namespace")
}
pub fn uid(obj: &Value) -> &str {
    str_field(obj, "uid")
}
pub fn resource_version(obj: &Value) -> &str {
    str_field(obj, "resourceVersion")
}
pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    metadata(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .and_then(Value::as_str)
}
pub fn generation(obj: &Value) -> i64 {
    metadata(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

pub fn set(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

pub fn remove(obj: &mut Value, field: &str) {
    metadata_mut(obj).remove(field);
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    if finalizers.is_empty() {
        remove(obj, "finalizers");
    } else {
        set(obj, "finalizers", json!(finalizers));
    }
}

/// `metadata.labels`, if present.
pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    metadata(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
}

/// Kubernetes timestamps: RFC 3339 in UTC with second precision (`2024-01-02T03:04:05Z`).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `format_time` of now.
pub fn now() -> String {
    format_time(chrono::Utc::now())
}

/// Parses a Kubernetes timestamp (RFC 3339, any precision).
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `apiVersion` and `kind` of an object, empty when missing.
pub fn type_meta(obj: &Value) -> (&str, &str) {
    (
        obj.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_mut_repairs_non_objects() {
        let mut v = json!({"metadata": 5});
        set(&mut v, "name", json!("a"));
        assert_eq!(name(&v), "a");
        let mut not_obj = json!([1]);
        set(&mut not_obj, "name", json!("b"));
        assert_eq!(name(&not_obj), "b");
    }

    #[test]
    fn finalizers_round_trip_and_empty_removes() {
        let mut v = json!({"metadata": {"finalizers": ["a", "b"]}});
        assert_eq!(finalizers(&v), vec!["a", "b"]);
        set_finalizers(&mut v, &[]);
        assert!(metadata(&v).expect("meta").get("finalizers").is_none());
    }

    #[test]
    fn time_format_is_second_precision_utc() {
        let t = parse_time("2024-01-02T03:04:05.123456Z").expect("parse");
        assert_eq!(format_time(t), "2024-01-02T03:04:05Z");
    }
}
