//! Field management and server-side apply, as kube-apiserver does them (its
//! `managedfields` package over structured-merge-diff), without I/O.
//!
//! Every write records who set which fields in `metadata.managedFields`:
//!
//! - **Update** (create, update, non-apply patch; [`update`]): the fields the write added
//!   or changed move to the writer's `Update` entry (one per manager, API version and
//!   subresource), fields it removed leave every entry. The entry's `time` moves only when
//!   the write took fields. Clients may replace `managedFields` through these verbs (`[]`
//!   or `[{}]` clears them); a subresource write never does.
//! - **Apply** (`application/apply-patch+yaml`; [`apply`]): the applied configuration is
//!   merged into the live object along the schema ([`schema`]: granular or atomic maps,
//!   list maps keyed by `x-kubernetes-list-map-keys`, sets, atomic lists); the applier's
//!   `Apply` entry becomes exactly the configuration's fields; fields it applied before
//!   and no longer applies are removed unless another manager owns them; changing a
//!   field another manager owns is a conflict (409, [`conflict_error`]) unless forced,
//!   which moves the field; applying the same value shares it.
//!
//! `kubectl apply --server-side` (manager `kubectl`) after client-side applies is honoured
//! as Kubernetes honours it: conflicts on fields whose live value is still what the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation says are taken over, and
//! the annotation is kept current.
//!
//! Entries from updates are capped at [`MAX_UPDATE_MANAGERS`]: the oldest merge into an
//! `ancient-changes` entry per API version.
//!
//! Not done: conversion between API versions (kadm serves one version per resource), the
//! union (`x-kubernetes-unions`) normalisation, schema-change reconciliation of old sets.

mod fieldpath;
pub mod schema;
mod typed;

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

pub use fieldpath::{Path, PathElement, Set, compare_values, go_json, values_equal};
pub use schema::{ListKind, Type};
pub use typed::{
    Comparison, SchemaErrors, compare, field_set, field_set_strict, item_element, merge,
    remove_items, with_named_fields, zero_object,
};

use crate::status::{ApiError, Cause, Reason};

/// Update entries kept before the oldest merge (kube-apiserver's `DefaultMaxUpdateManagers`).
pub const MAX_UPDATE_MANAGERS: usize = 10;
/// The manager the oldest update entries merge into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";
/// kubectl's client-side apply record.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager whose server-side applies keep [`LAST_APPLIED_ANNOTATION`] current.
pub const KUBECTL_MANAGER: &str = "kubectl";
/// `fieldManager` values are at most this long.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who owns a field set: a manager name, the operation, the API version (updates only)
/// and the subresource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Manager {
    pub name: String,
    pub operation: Operation,
    /// Empty for `Apply`: an applier is the same manager in every version.
    pub api_version: String,
    pub subresource: String,
}

impl Manager {
    pub fn apply(name: &str, subresource: &str) -> Manager {
        Manager {
            name: name.to_string(),
            operation: Operation::Apply,
            api_version: String::new(),
            subresource: subresource.to_string(),
        }
    }

    pub fn update(name: &str, api_version: &str, subresource: &str) -> Manager {
        Manager {
            name: if name.is_empty() { "unknown" } else { name }.to_string(),
            operation: Operation::Update,
            api_version: api_version.to_string(),
            subresource: subresource.to_string(),
        }
    }

    /// Kubernetes' manager identifier: the entry's JSON without fields and time (and
    /// without the API version for appliers). Entries sort by it.
    pub fn identifier(&self) -> String {
        let mut s = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            go_json(&Value::String(self.name.clone())),
            self.operation.as_str()
        );
        if !self.api_version.is_empty() {
            s.push_str(&format!(
                ",\"apiVersion\":{}",
                go_json(&Value::String(self.api_version.clone()))
            ));
        }
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                ",\"subresource\":{}",
                go_json(&Value::String(self.subresource.clone()))
            ));
        }
        s.push('}');
        s
    }

    /// How a conflict names the manager: `"kubectl"`, `"kubectl-edit" using apps/v1`,
    /// `"kubelet" with subresource "status" using v1`.
    pub fn describe(&self) -> String {
        let mut s = quote(&self.name);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {}", quote(&self.subresource)));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// One manager's fields.
#[derive(Debug, Clone)]
struct Entry {
    manager: Manager,
    /// The version the field set is in.
    api_version: String,
    set: Set,
    time: Option<String>,
    /// The entry as it was read, reused when the set did not change (as Kubernetes keeps
    /// the original `fieldsV1` bytes).
    original: Option<(Value, Set)>,
}

/// The decoded `metadata.managedFields` of an object.
#[derive(Debug, Clone, Default)]
pub struct ManagedFields {
    entries: BTreeMap<String, Entry>,
}

impl ManagedFields {
    /// Reads an object's `metadata.managedFields` (absent: none). Fails as Kubernetes'
    /// decoding fails: an operation other than `Apply`/`Update`, no API version, a
    /// `fieldsType` other than `FieldsV1`, malformed `fieldsV1`.
    pub fn from_object(obj: &Value) -> Result<ManagedFields, String> {
        match obj.pointer("/metadata/managedFields") {
            None | Some(Value::Null) => Ok(ManagedFields::default()),
            Some(list) => ManagedFields::decode(list),
        }
    }

    /// Reads a `managedFields` list.
    pub fn decode(list: &Value) -> Result<ManagedFields, String> {
        let Value::Array(items) = list else {
            return Err("managedFields must be a list".into());
        };
        let mut out = ManagedFields::default();
        for (i, item) in items.iter().enumerate() {
            let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("");
            let operation = match s("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            if s("apiVersion").is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match s("fieldsType") {
                "FieldsV1" => {}
                "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
                other => {
                    return Err(format!(
                        "invalid fieldsType {other:?} in managed fields entry {i}"
                    ));
                }
            }
            let set = match item.get("fieldsV1") {
                None => Set::new(),
                Some(f) => {
                    Set::from_fields_v1(f).map_err(|e| format!("error decoding set: {e}"))?
                }
            };
            let manager = Manager {
                name: s("manager").to_string(),
                operation,
                api_version: if operation == Operation::Apply {
                    String::new()
                } else {
                    s("apiVersion").to_string()
                },
                subresource: s("subresource").to_string(),
            };
            let time = item
                .get("time")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            out.entries.insert(
                manager.identifier(),
                Entry {
                    manager,
                    api_version: s("apiVersion").to_string(),
                    set: set.clone(),
                    time,
                    original: Some((item.clone(), set)),
                },
            );
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fields `manager` owns.
    pub fn get(&self, manager: &Manager) -> Option<&Set> {
        self.entries.get(&manager.identifier()).map(|e| &e.set)
    }

    /// Every manager with its fields, in identifier order.
    pub fn managers(&self) -> impl Iterator<Item = (&Manager, &Set)> {
        self.entries.values().map(|e| (&e.manager, &e.set))
    }

    fn put(&mut self, manager: Manager, api_version: &str, set: Set, time: Option<String>) {
        let id = manager.identifier();
        let original = self.entries.remove(&id).and_then(|e| e.original);
        self.entries.insert(
            id,
            Entry {
                manager,
                api_version: api_version.to_string(),
                set,
                time,
                original,
            },
        );
    }

    fn drop_empty(&mut self) {
        self.entries.retain(|_, e| !e.set.is_empty());
    }

    /// The `managedFields` list, sorted as Kubernetes sorts it (appliers first, then by
    /// time, manager, API version and subresource); `None` when no entry is left.
    pub fn encode(&self) -> Option<Value> {
        let mut entries: Vec<&Entry> = self
            .entries
            .values()
            .filter(|e| !e.set.is_empty())
            .collect();
        if entries.is_empty() {
            return None;
        }
        let seconds = |e: &Entry| {
            e.time
                .as_deref()
                .and_then(crate::meta::parse_time)
                .map_or(0, |t| t.timestamp())
        };
        entries.sort_by(|p, q| {
            p.manager
                .operation
                .as_str()
                .cmp(q.manager.operation.as_str())
                .then_with(|| seconds(p).cmp(&seconds(q)))
                .then_with(|| p.manager.name.cmp(&q.manager.name))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| p.manager.subresource.cmp(&q.manager.subresource))
        });
        Some(Value::Array(
            entries.into_iter().map(encode_entry).collect(),
        ))
    }

    /// Writes [`ManagedFields::encode`] into `obj`'s metadata (removing the field when
    /// there is nothing to record).
    pub fn write_to(&self, obj: &mut Value) {
        set_managed_fields(obj, self.encode());
    }
}

fn encode_entry(e: &Entry) -> Value {
    if let Some((orig, set)) = &e.original
        && *set == e.set
        && orig.get("apiVersion").and_then(Value::as_str) == Some(e.api_version.as_str())
    {
        let mut v = orig.clone();
        if let (Some(t), Some(m)) = (&e.time, v.as_object_mut()) {
            m.insert("time".into(), Value::String(t.clone()));
        }
        return v;
    }
    let mut m = Map::new();
    if !e.manager.name.is_empty() {
        m.insert("manager".into(), Value::String(e.manager.name.clone()));
    }
    m.insert(
        "operation".into(),
        Value::String(e.manager.operation.as_str().into()),
    );
    m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
    if let Some(t) = &e.time {
        m.insert("time".into(), Value::String(t.clone()));
    }
    m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
    m.insert("fieldsV1".into(), e.set.to_fields_v1());
    if !e.manager.subresource.is_empty() {
        m.insert(
            "subresource".into(),
            Value::String(e.manager.subresource.clone()),
        );
    }
    Value::Object(m)
}

/// Sets (or, with `None`, removes) `metadata.managedFields`.
pub fn set_managed_fields(obj: &mut Value, list: Option<Value>) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match list {
        Some(l) => {
            let meta = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = meta.as_object_mut() {
                m.insert("managedFields".into(), l);
            }
        }
        None => {
            if let Some(m) = root.get_mut("metadata").and_then(Value::as_object_mut) {
                m.shift_remove("managedFields");
            }
        }
    }
}

/// `obj` without `metadata.managedFields`.
pub fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    set_managed_fields(&mut o, None);
    o
}

/// The system fields no manager owns: `apiVersion`, `kind`, and the metadata the server
/// sets (`name`, `namespace`, `uid`, `resourceVersion`, …, `managedFields` itself).
pub fn stripped_fields() -> &'static Set {
    static STRIPPED: std::sync::OnceLock<Set> = std::sync::OnceLock::new();
    STRIPPED.get_or_init(build_stripped_fields)
}

fn build_stripped_fields() -> Set {
    let mut paths = vec![
        Path::fields(&["apiVersion"]),
        Path::fields(&["kind"]),
        Path::fields(&["metadata"]),
    ];
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        paths.push(Path::fields(&["metadata", f]));
    }
    Set::from_paths(&paths)
}

/// The fields a write to `subresource` of a resource resets (its strategy's reset
/// fields): nobody owns them through that endpoint.
pub fn reset_fields(has_status: bool, subresource: &str) -> Set {
    let top = |f: &str| Set::from_paths(&[Path::fields(&[f])]);
    match subresource {
        "" if has_status => top("status"),
        "status" | "approval" => top("spec"),
        "finalize" => top("status"),
        _ => Set::new(),
    }
}

/// What a write is about: the object's type and version, and the endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The object's type ([`schema::root`] of its definition).
    pub ty: &'static Type,
    /// `apps/v1`, `v1`, …
    pub api_version: &'a str,
    /// `""` for the resource itself.
    pub subresource: &'a str,
    /// Fields the endpoint resets ([`reset_fields`]).
    pub ignored: &'a Set,
    /// The time to record (`2024-01-02T03:04:05Z`).
    pub now: &'a str,
}

/// Whether a `managedFields` value asks to clear the record: `[]`, or one empty entry.
fn is_reset(list: &Value) -> bool {
    match list {
        Value::Array(a) if a.is_empty() => true,
        Value::Array(a) if a.len() == 1 => match &a[0] {
            Value::Object(m) => m.values().all(|v| v.is_null() || v.as_str() == Some("")),
            _ => false,
        },
        _ => false,
    }
}

/// The manager record an update starts from: the request's own `managedFields` when it
/// carries a valid, non-empty list (clients may rewrite the record), the live object's
/// otherwise; a subresource write always starts from the live object.
fn managed_for_update(cx: &Context, live: &Value, new: &Value) -> ManagedFields {
    let live_managed = || ManagedFields::from_object(live).unwrap_or_default();
    if !cx.subresource.is_empty() {
        return live_managed();
    }
    if let Some(list) = new.pointer("/metadata/managedFields") {
        if is_reset(list) {
            return ManagedFields::default();
        }
        if let Ok(m) = ManagedFields::from_object(new)
            && !m.is_empty()
        {
            return m;
        }
    }
    live_managed()
}

/// The managed fields after a non-apply write (create: `live` is [`zero_object`]) of
/// `new` by `manager`: the new `metadata.managedFields` value (`None`: remove it).
pub fn update(cx: &Context, live: &Value, new: &Value, manager: &str) -> Option<Value> {
    let mut managed = managed_for_update(cx, live, new);
    let live = without_managed_fields(live);
    let new = without_managed_fields(new);
    let cmp = compare(&live, &new, cx.ty).exclude(cx.ignored);
    let changed = cmp.modified.union(&cmp.added);
    for e in managed.entries.values_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    managed.drop_empty();
    let took = changed
        .difference(&cmp.removed)
        .recursive_difference(cx.ignored)
        .difference(stripped_fields());
    if !took.is_empty() {
        let m = Manager::update(manager, cx.api_version, cx.subresource);
        let set = match managed.get(&m) {
            Some(previous) => previous.union(&took),
            None => took,
        };
        managed.put(m, cx.api_version, set, Some(cx.now.to_string()));
    }
    cap_update_managers(&mut managed, MAX_UPDATE_MANAGERS);
    managed.encode()
}

/// Merges the oldest update entries into `ancient-changes` entries (one per API
/// version) until at most `max` update entries are left.
fn cap_update_managers(managed: &mut ManagedFields, max: usize) {
    let seconds = |e: &Entry| {
        e.time
            .as_deref()
            .and_then(crate::meta::parse_time)
            .map_or(0, |t| t.timestamp())
    };
    let mut updaters: Vec<(i64, String)> = managed
        .entries
        .iter()
        .filter(|(_, e)| e.manager.operation == Operation::Update)
        .map(|(id, e)| (seconds(e), id.clone()))
        .collect();
    if updaters.len() <= max {
        return;
    }
    updaters.sort();
    let mut first_of_version: HashMap<String, String> = HashMap::new();
    let mut count = updaters.len();
    for (_, id) in updaters {
        if count <= max {
            break;
        }
        let Some(entry) = managed.entries.get(&id).cloned() else {
            continue;
        };
        let version = entry.api_version.clone();
        let bucket = Manager::update(ANCIENT_CHANGES, &version, "");
        let bucket_id = bucket.identifier();
        match first_of_version.get(&version) {
            Some(first) => {
                if !managed.entries.contains_key(&bucket_id)
                    && let Some(first_entry) = managed.entries.remove(first)
                {
                    managed.entries.insert(
                        bucket_id.clone(),
                        Entry {
                            manager: bucket.clone(),
                            original: None,
                            ..first_entry
                        },
                    );
                }
                managed.entries.remove(&id);
                if let Some(b) = managed.entries.get_mut(&bucket_id) {
                    b.set = entry.set.union(&b.set);
                    b.time = entry.time.clone();
                }
                count -= 1;
            }
            None => {
                first_of_version.insert(version, id);
            }
        }
    }
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: Manager,
    pub path: Path,
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields other managers own would change (and the apply was not forced).
    Conflicts(Vec<Conflict>),
    /// The configuration does not fit the schema.
    Schema(SchemaErrors),
}

/// The outcome of an apply: the object to store (with its new `managedFields`) and
/// whether anything but the managed fields changed.
#[derive(Debug, Clone)]
pub struct Applied {
    pub object: Value,
    pub changed: bool,
}

/// Server-side apply of `config` by `manager` to `live` (for a create: an object with
/// just `apiVersion`, `kind` and the name).
pub fn apply(
    cx: &Context,
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Applied, ApplyError> {
    let config_set = field_set_strict(config, cx.ty).map_err(ApplyError::Schema)?;
    let managed = ManagedFields::from_object(live).unwrap_or_default();
    let live = without_managed_fields(live);
    let first = apply_fields(
        cx,
        &live,
        config,
        &config_set,
        managed.clone(),
        manager,
        force,
    );
    let (object, changed, managed) = match first {
        Err(ApplyError::Conflicts(conflicts)) if manager == KUBECTL_MANAGER => {
            // kubectl moving from client-side apply: what the last client-side apply set
            // and still holds is its to take.
            let Some(allowed) = allowed_from_last_applied(cx, &live) else {
                return Err(ApplyError::Conflicts(conflicts));
            };
            let rest: Vec<Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.has(&c.path.0))
                .collect();
            if !rest.is_empty() {
                return Err(ApplyError::Conflicts(rest));
            }
            apply_fields(cx, &live, config, &config_set, managed, manager, true)?
        }
        other => other?,
    };
    let mut object = object;
    if manager == KUBECTL_MANAGER && last_applied(&object).is_some() {
        set_last_applied(&mut object, &build_last_applied(config));
    }
    managed.write_to(&mut object);
    Ok(Applied { object, changed })
}

/// The structured-merge part of an apply: merge, prune what the applier dropped, check
/// and move ownership.
fn apply_fields(
    cx: &Context,
    live: &Value,
    config: &Value,
    config_set: &Set,
    mut managed: ManagedFields,
    manager: &str,
    force: bool,
) -> Result<(Value, bool, ManagedFields), ApplyError> {
    let me = Manager::apply(manager, cx.subresource);
    let my_id = me.identifier();
    let merged = merge(live, config, cx.ty);
    let previous = managed.entries.get(&my_id).cloned();
    let set = config_set.recursive_difference(cx.ignored);
    managed.put(
        me.clone(),
        cx.api_version,
        set,
        previous.as_ref().and_then(|p| p.time.clone()),
    );
    let pruned = match previous.as_ref().map(|p| &p.set) {
        Some(last) if !last.is_empty() => prune(cx.ty, &merged, &managed, last),
        _ => merged,
    };
    let cmp = compare(live, &pruned, cx.ty).exclude(cx.ignored);
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    for (id, e) in &managed.entries {
        if *id == my_id {
            continue;
        }
        for path in e.set.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                path,
            });
        }
    }
    if !force && !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (id, e) in managed.entries.iter_mut() {
        if *id != my_id {
            e.set = e.set.difference(&changed).difference(&cmp.removed);
        }
    }
    if let Some(e) = managed.entries.get_mut(&my_id) {
        e.set = e.set.difference(stripped_fields());
    }
    managed.drop_empty();
    let unchanged = values_equal(live, &pruned);
    if !unchanged && let Some(e) = managed.entries.get_mut(&my_id) {
        e.time = Some(cx.now.to_string());
    }
    cap_update_managers(&mut managed, MAX_UPDATE_MANAGERS);
    let object = if unchanged { live.clone() } else { pruned };
    Ok((object, !unchanged, managed))
}

/// Removes from `merged` what the applier applied last time (`last`), does not apply
/// now, and no manager (the applier's new configuration included) owns.
fn prune(ty: &'static Type, merged: &Value, managed: &ManagedFields, last: &Set) -> Value {
    let last = with_named_fields(last, ty);
    let named = |v: &Value| with_named_fields(&field_set(v, ty), ty);
    let first = remove_items(merged, &last, ty);
    let owned = managed
        .entries
        .values()
        .fold(Set::new(), |acc, e| acc.union(&e.set));
    let owned = with_named_fields(&owned, ty);
    let all = named(merged);
    let kept_back = remove_items(merged, &all.difference(&named(&first).union(&owned)), ty);
    remove_items(
        merged,
        &all.difference(&named(&kept_back)).intersection(&last),
        ty,
    )
}

fn last_applied(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn set_last_applied(obj: &mut Value, value: &str) {
    if let Some(a) = obj
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(
            LAST_APPLIED_ANNOTATION.into(),
            Value::String(value.to_string()),
        );
    }
}

/// The last-applied annotation value kubectl's server-side applies keep: the applied
/// configuration without the annotation, as Go's JSON encoder writes it.
fn build_last_applied(config: &Value) -> String {
    let mut c = config.clone();
    if let Some(a) = c
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.shift_remove(LAST_APPLIED_ANNOTATION);
    }
    format!("{}\n", go_json(&c))
}

/// The fields the last client-side apply set that still hold the value it set.
fn allowed_from_last_applied(cx: &Context, live: &Value) -> Option<Set> {
    let last: Value = serde_json::from_str(last_applied(live)?).ok()?;
    if !last.is_object() {
        return None;
    }
    let set = field_set(&last, cx.ty);
    let cmp = compare(&last, live, cx.ty);
    Some(
        set.difference(&cmp.modified)
            .difference(&cmp.added)
            .difference(&cmp.removed),
    )
}

/// Kubernetes' 409 for apply conflicts: `Apply failed with 1 conflict: conflict with
/// "manager": .spec.replicas`, one `FieldManagerConflict` cause per field.
pub fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict",
            message: format!("conflict with {}", c.manager.describe()),
            field: c.path.to_string(),
        })
        .collect();
    let message = match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager.describe(),
            one.path
        ),
        many => {
            let mut by_manager: BTreeMap<String, (&Manager, Vec<&Path>)> = BTreeMap::new();
            for c in many {
                by_manager
                    .entry(c.manager.identifier())
                    .or_insert_with(|| (&c.manager, Vec::new()))
                    .1
                    .push(&c.path);
            }
            let mut lines = Vec::new();
            for (manager, paths) in by_manager.values() {
                lines.push(format!("conflicts with {}:", manager.describe()));
                lines.extend(paths.iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    let mut e = ApiError::new(409, Reason::Conflict, message);
    e.causes = causes;
    e
}

/// Checks a `fieldManager` as Kubernetes does: at most 128 bytes, printable characters
/// only. Returns the causes (field `fieldManager`).
pub fn validate_field_manager(name: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    if name.len() > FIELD_MANAGER_MAX_LENGTH {
        causes.push(Cause::too_long("fieldManager", FIELD_MANAGER_MAX_LENGTH));
    }
    for (i, c) in name.char_indices() {
        if c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{FEFF}')
        {
            causes.push(Cause::invalid(
                "fieldManager",
                &Value::String(name.to_string()),
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    causes
}

/// The manager of a non-apply write: `fieldManager`, else the User-Agent up to its first
/// `/` (`kubectl/v1.33.0 (linux/amd64) …` → `kubectl`).
pub fn manager_or_user_agent(field_manager: &str, user_agent: &str) -> String {
    if !field_manager.is_empty() {
        return field_manager.to_string();
    }
    user_agent.split('/').next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests;
