//! What the watch cache keeps per object and per change.
//!
//! An object is decoded from etcd once, when its event arrives, and kept as the JSON a
//! client of its resource receives (`resourceVersion` stamped, `apiVersion`/`kind` set)
//! plus the labels and fields that selectors read. Lists concatenate those bytes and
//! watch events wrap them, so nothing is re-serialized per request or per watcher.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use kadm_apimachinery::selector::{FieldSelector, LabelSelector, object_field};
use kadm_apimachinery::{ResourceInfo, meta};
use serde_json::Value;

/// One object as the cache keeps it.
#[derive(Debug)]
pub struct Entry {
    /// The etcd key (`/registry/pods/<ns>/<name>`).
    pub key: Arc<str>,
    /// The revision this version was written at (for a deletion: the deletion's revision).
    pub rev: i64,
    /// The object as clients of the prefix's primary resource receive it.
    pub json: Bytes,
    /// `metadata.labels` (string values only, as Kubernetes' label sets).
    pub labels: BTreeMap<String, String>,
    /// The values of the prefix's selectable fields, in [`Layout::fields`] order
    /// (`""` for unset ones, as Kubernetes' field sets).
    pub fields: Box<[String]>,
    /// `metadata` of `json` (a view of the same bytes), found when a metadata-only
    /// request first needs it: objects nobody asks metadata of never pay for it.
    metadata: OnceLock<Bytes>,
}

/// How the objects of one etcd prefix are encoded and selected.
#[derive(Debug)]
pub struct Layout {
    /// The resource whose wire form the cached JSON is (the core one when
    /// events.k8s.io shares core events' storage).
    pub primary: &'static ResourceInfo,
    /// Every field any resource stored under the prefix can be selected by.
    pub fields: Vec<&'static str>,
}

impl Layout {
    /// Decodes a stored (etcd) value written at `rev`.
    pub fn decode(
        &self,
        key: Arc<str>,
        value: &[u8],
        rev: i64,
    ) -> Result<Entry, serde_json::Error> {
        let mut obj: Value = serde_json::from_slice(value)?;
        meta::set(&mut obj, "resourceVersion", Value::String(rev.to_string()));
        self.entry(key, rev, obj)
    }

    /// The entry of a stored-form object (with its `resourceVersion` already set).
    pub fn entry(&self, key: Arc<str>, rev: i64, obj: Value) -> Result<Entry, serde_json::Error> {
        let labels = meta::labels(&obj)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let fields = self
            .fields
            .iter()
            .map(|f| object_field(&obj, f).unwrap_or_default())
            .collect();
        let wire = crate::handlers::to_wire(self.primary, obj);
        Ok(Entry {
            key,
            rev,
            json: Bytes::from(serde_json::to_vec(&wire)?),
            labels,
            fields,
            metadata: OnceLock::new(),
        })
    }

    /// The same object stamped with another revision (a deletion's).
    pub fn restamp(&self, e: &Entry, rev: i64) -> Result<Entry, serde_json::Error> {
        let mut obj: Value = serde_json::from_slice(&e.json)?;
        meta::set(&mut obj, "resourceVersion", Value::String(rev.to_string()));
        Ok(Entry {
            key: e.key.clone(),
            rev,
            json: Bytes::from(serde_json::to_vec(&obj)?),
            labels: e.labels.clone(),
            fields: e.fields.clone(),
            metadata: OnceLock::new(),
        })
    }

    /// Whether an entry passes both selectors.
    pub fn matches(&self, e: &Entry, label: &LabelSelector, field: &FieldSelector) -> bool {
        if !label.matches(&e.labels) {
            return false;
        }
        if field.is_empty() {
            return true;
        }
        field.matches(|f| match self.fields.iter().position(|k| *k == f) {
            Some(i) => Some(e.fields[i].clone()),
            // Not precomputed (cannot happen for a validated selector): read the JSON.
            None => serde_json::from_slice::<Value>(&e.json)
                .ok()
                .and_then(|v| object_field(&v, f)),
        })
    }

    /// Whether `res` is served with the cached bytes as they are.
    pub fn is_primary(&self, res: &ResourceInfo) -> bool {
        std::ptr::eq(res, self.primary)
            || (res.group == self.primary.group
                && res.version == self.primary.version
                && res.plural == self.primary.plural)
    }
}

impl Entry {
    /// The object as a JSON value (for renderings other than the cached bytes).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The object's `metadata` JSON, for `PartialObjectMetadata` renderings. The same for
    /// every resource served from the prefix (events.k8s.io renames no metadata field).
    pub fn metadata(&self) -> &Bytes {
        self.metadata
            .get_or_init(|| crate::partial::metadata_bytes(&self.json))
    }
}

/// The kind of a change, as the watch event type of an unfiltered watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object, shared by the history ring and every watcher.
#[derive(Debug)]
pub struct Event {
    /// `Added` when the key did not exist before, `Deleted` for a deletion.
    pub kind: EventType,
    /// The object after the change; for a deletion, the last state stamped with the
    /// deletion's revision.
    pub object: Arc<Entry>,
    /// The object before the change (what selector transitions compare against).
    pub prev: Option<Arc<Entry>>,
}

impl Event {
    pub fn rev(&self) -> i64 {
        self.object.rev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Layout {
        let primary = kadm_apimachinery::registry::lookup("", "v1", "pods").expect("pods");
        Layout {
            primary,
            fields: primary.supported_fields(),
        }
    }

    #[test]
    fn decode_stamps_revision_and_type_and_extracts_selectable_data() {
        let l = pods();
        let stored = json!({"metadata": {"name": "p", "namespace": "n", "labels": {"app": "web", "n": 1}},
            "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}});
        let e = l
            .decode(
                Arc::from("/registry/pods/n/p"),
                &serde_json::to_vec(&stored).expect("json"),
                42,
            )
            .expect("decode");
        let v = e.value();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Pod");
        assert_eq!(e.labels.get("app").map(String::as_str), Some("web"));
        assert!(
            !e.labels.contains_key("n"),
            "non-string label values are ignored"
        );
        let sel = |l: &str, f: &str| {
            (
                LabelSelector::parse(l).expect("label"),
                FieldSelector::parse(f).expect("field"),
            )
        };
        let (ls, fs) = sel("app=web", "spec.nodeName=node-1,status.phase=Running");
        assert!(l.matches(&e, &ls, &fs));
        let (ls, fs) = sel("", "spec.nodeName=");
        assert!(!l.matches(&e, &ls, &fs));
        let (ls, fs) = sel("app!=web", "");
        assert!(!l.matches(&e, &ls, &fs));
        let tomb = l.restamp(&e, 50).expect("restamp");
        assert_eq!(tomb.value()["metadata"]["resourceVersion"], "50");
        assert_eq!(tomb.rev, 50);
        let m: Value = serde_json::from_slice(tomb.metadata()).expect("metadata json");
        assert_eq!(m["resourceVersion"], "50", "a tombstone's own metadata");
        assert_eq!(m["labels"]["app"], "web");
    }
}
