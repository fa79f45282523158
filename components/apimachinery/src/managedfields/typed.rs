//! The operations server-side apply performs on objects of a known [`Type`]: the set of
//! fields a value sets, the comparison of two values, the merge of an applied
//! configuration into a live object, and the removal of fields.
//!
//! Values are JSON; an absent field is `None`, an explicit `null` is `Some(Null)` (Go's
//! typed objects keep the difference in a few places: a required list is `null` in an
//! empty object, which makes it "present" there).

use serde_json::{Map, Value};

use super::fieldpath::{Path, PathElement, Set, values_equal};
use super::schema::{ListKind, Type, field_default, struct_def};

/// What a comparison of two versions of an object found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    /// Drops the given paths, and everything below them, from all three sets.
    pub fn exclude(&self, fields: &Set) -> Comparison {
        Comparison {
            added: self.added.recursive_difference(fields),
            modified: self.modified.recursive_difference(fields),
            removed: self.removed.recursive_difference(fields),
        }
    }
}

/// A value the schema does not accept, as structured-merge-diff reports it
/// (`.spec.foo: field not declared in schema`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaErrors(pub Vec<String>);

impl std::fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => f.write_str(one),
            many => {
                f.write_str("errors:")?;
                for e in many {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

fn path_string(path: &[PathElement]) -> String {
    Path(path.to_vec()).to_string()
}

fn is_empty_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    }
}

fn is_empty_list(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// Whether a value of type `ty` is handled as one piece (compared and replaced whole)
/// given both sides: scalars, atomic types, mismatched shapes, and containers that are
/// empty on both sides.
fn is_leaf(ty: &Type, l: Option<&Value>, r: Option<&Value>) -> bool {
    let shape_ok = |v: Option<&Value>, want_map: bool| match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(_)) => want_map,
        Some(Value::Array(_)) => !want_map,
        Some(_) => false,
    };
    match ty {
        Type::Scalar => true,
        _ if ty.is_atomic() => true,
        Type::List { .. } => {
            !shape_ok(l, false) || !shape_ok(r, false) || (is_empty_list(l) && is_empty_list(r))
        }
        Type::Struct { .. } | Type::Map { .. } => {
            !shape_ok(l, true) || !shape_ok(r, true) || (is_empty_map(l) && is_empty_map(r))
        }
        Type::Untyped => {
            let is_map = |v: Option<&Value>| matches!(v, Some(Value::Object(_)));
            let absent = |v: Option<&Value>| matches!(v, None | Some(Value::Null));
            // Deduced: maps are granular, everything else is a leaf.
            !((is_map(l) || absent(l)) && (is_map(r) || absent(r)))
                || (is_empty_map(l) && is_empty_map(r))
        }
    }
}

/// The path element of list item `index` (`item`) of a list of kind `kind`.
pub fn item_element(ty: &'static Type, index: usize, item: &Value) -> Result<PathElement, String> {
    let Type::List { kind, items } = ty else {
        return Ok(PathElement::Index(index));
    };
    match kind {
        ListKind::Atomic => Ok(PathElement::Index(index)),
        ListKind::Set => match item {
            Value::Object(_) | Value::Array(_) => Err(format!(
                "element {index}: associative list without keys has an element that's a map type"
            )),
            v => Ok(PathElement::Value(v.clone())),
        },
        ListKind::Map(keys) => {
            let Value::Object(m) = item else {
                return Err(format!(
                    "element {index}: associative list with keys may not have non-map elements"
                ));
            };
            let def = match items.as_ref() {
                Type::Struct { def, .. } => *def,
                _ => "",
            };
            let mut fields = Vec::with_capacity(keys.len());
            for k in keys {
                match m.get(k).cloned().or_else(|| field_default(def, k)) {
                    Some(v) => fields.push((k.clone(), v)),
                    None => {
                        return Err(format!(
                            "element {index}: associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                        ));
                    }
                }
            }
            Ok(PathElement::key(fields))
        }
    }
}

/// The items of a non-atomic list with their path elements, first occurrence of a
/// repeated element only. Items whose element cannot be built are reported in `errors`
/// (when given) and skipped.
fn indexed_items<'v>(
    ty: &'static Type,
    list: Option<&'v Value>,
    path: &[PathElement],
    mut errors: Option<&mut Vec<String>>,
) -> Vec<(PathElement, &'v Value)> {
    let mut out: Vec<(PathElement, &Value)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in list
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match item_element(ty, i, item) {
            Ok(pe) => {
                if seen.insert(pe.clone()) {
                    out.push((pe, item));
                } else if let Some(errs) = errors.as_deref_mut() {
                    errs.push(format!(
                        "{}: duplicate entries for key {pe}",
                        path_string(path)
                    ));
                }
            }
            Err(e) => {
                if let Some(errs) = errors.as_deref_mut() {
                    errs.push(format!("{}: {e}", path_string(path)));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The field set of a value.

struct SetWalker {
    strict: bool,
    errors: Vec<String>,
    set: Set,
    path: Vec<PathElement>,
}

impl SetWalker {
    fn error(&mut self, msg: impl std::fmt::Display) {
        if self.strict {
            self.errors
                .push(format!("{}: {msg}", path_string(&self.path)));
        }
    }

    fn visit(&mut self, v: &Value, ty: &'static Type) {
        match ty {
            Type::Scalar => {
                if v.is_object() || v.is_array() {
                    self.error(format!(
                        "expected scalar, got {}",
                        if v.is_object() { "map" } else { "list" }
                    ));
                }
                self.set.insert(&self.path);
            }
            _ if ty.is_atomic() => self.set.insert(&self.path),
            Type::List { .. } => match v {
                Value::Array(_) => {
                    let mut errs = Vec::new();
                    let items = indexed_items(
                        ty,
                        Some(v),
                        &self.path,
                        if self.strict { Some(&mut errs) } else { None },
                    );
                    self.errors.extend(errs);
                    for (pe, item) in items {
                        self.path.push(pe);
                        self.visit(item, ty.items());
                        self.set.insert(&self.path);
                        self.path.pop();
                    }
                }
                Value::Null => {}
                _ => self.error("expected list"),
            },
            Type::Untyped => match v {
                Value::Object(m) => self.visit_map(m, ty),
                _ => self.set.insert(&self.path),
            },
            Type::Struct { .. } | Type::Map { .. } => match v {
                Value::Object(m) => self.visit_map(m, ty),
                Value::Null => {}
                _ => self.error("expected map"),
            },
        }
    }

    fn visit_map(&mut self, m: &Map<String, Value>, ty: &'static Type) {
        for (k, val) in m {
            self.path.push(PathElement::Field(k.clone()));
            let declared = ty.declares(k);
            match ty.field(k) {
                Some(fty) => self.visit(val, fty),
                None => {
                    if self.strict {
                        self.error("field not declared in schema");
                    } else {
                        self.visit(val, Type::untyped());
                    }
                }
            }
            if val.is_null() || is_empty_map(Some(val)) || !declared {
                self.set.insert(&self.path);
            }
            self.path.pop();
        }
    }
}

/// The fields `v` (of type `ty`) sets: every scalar, atomic value and list item, and
/// every map key; struct fields only when they are `null` or `{}`.
pub fn field_set(v: &Value, ty: &'static Type) -> Set {
    let mut w = SetWalker {
        strict: false,
        errors: Vec::new(),
        set: Set::new(),
        path: Vec::new(),
    };
    w.visit(v, ty);
    w.set
}

/// [`field_set`] of an applied configuration, which must fit the schema: no undeclared
/// fields, list items with their keys, no repeated keys or set values.
pub fn field_set_strict(v: &Value, ty: &'static Type) -> Result<Set, SchemaErrors> {
    let mut w = SetWalker {
        strict: true,
        errors: Vec::new(),
        set: Set::new(),
        path: Vec::new(),
    };
    w.visit(v, ty);
    if w.errors.is_empty() {
        Ok(w.set)
    } else {
        Err(SchemaErrors(w.errors))
    }
}

/// `set` with every struct field it reaches also a member (structured-merge-diff's
/// `EnsureNamedFieldsAreMembers`), so that removing it removes the field itself.
pub fn with_named_fields(set: &Set, ty: &'static Type) -> Set {
    let mut out = Set::new();
    for m in set.members() {
        out.insert_member(m.clone());
    }
    for (pe, child) in set.children() {
        let child_ty = match pe {
            PathElement::Field(name) => {
                if ty.declares(name) {
                    out.insert_member(pe.clone());
                }
                ty.field(name).unwrap_or(Type::untyped())
            }
            _ => ty.items(),
        };
        out.set_child(pe.clone(), with_named_fields(child, child_ty));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Comparison.

struct Comparer {
    out: Comparison,
    path: Vec<PathElement>,
}

impl Comparer {
    fn compare(&mut self, l: Option<&Value>, r: Option<&Value>, ty: &'static Type) {
        if l.is_none() && r.is_none() {
            return;
        }
        if is_leaf(ty, l, r) {
            match (l, r) {
                (None, _) => self.out.added.insert(&self.path),
                (_, None) => self.out.removed.insert(&self.path),
                (Some(a), Some(b)) if !values_equal(a, b) => self.out.modified.insert(&self.path),
                _ => {}
            }
            return;
        }
        match ty {
            Type::List { .. } => {
                let left = indexed_items(ty, l, &self.path, None);
                let right = indexed_items(ty, r, &self.path, None);
                for (pe, rv) in &right {
                    let lv = left.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                    self.path.push(pe.clone());
                    self.compare(lv, Some(rv), ty.items());
                    self.path.pop();
                }
                for (pe, lv) in &left {
                    if !right.iter().any(|(p, _)| p == pe) {
                        self.path.push(pe.clone());
                        self.compare(Some(lv), None, ty.items());
                        self.path.pop();
                    }
                }
            }
            _ => {
                let lm = l.and_then(Value::as_object);
                let rm = r.and_then(Value::as_object);
                let mut keys: Vec<&String> = lm.into_iter().flat_map(|m| m.keys()).collect();
                for k in rm.into_iter().flat_map(|m| m.keys()) {
                    if !lm.is_some_and(|m| m.contains_key(k)) {
                        keys.push(k);
                    }
                }
                for k in keys {
                    let fty = ty.field(k).unwrap_or(Type::untyped());
                    self.path.push(PathElement::Field(k.clone()));
                    self.compare(lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)), fty);
                    self.path.pop();
                }
            }
        }
        match (l, r) {
            (None, _) => self.out.added.insert(&self.path),
            (_, None) => self.out.removed.insert(&self.path),
            _ => {}
        }
    }
}

/// What changed from `old` to `new` (both of type `ty`).
pub fn compare(old: &Value, new: &Value, ty: &'static Type) -> Comparison {
    let mut c = Comparer {
        out: Comparison::default(),
        path: Vec::new(),
    };
    c.compare(Some(old), Some(new), ty);
    c.out
}

// ---------------------------------------------------------------------------------------------
// Merge.

/// `v` without `null` map values (Go's typed objects have no place for them).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn merge_value(l: Option<&Value>, r: Option<&Value>, ty: &'static Type) -> Option<Value> {
    match (l, r) {
        (None, None) => return None,
        (Some(l), None) => return Some(l.clone()),
        (None, Some(r)) => return (!r.is_null()).then(|| without_nulls(r)),
        _ => {}
    }
    if is_leaf(ty, l, r) {
        return match r {
            Some(Value::Null) => None,
            Some(r) => Some(without_nulls(r)),
            None => l.cloned(),
        };
    }
    match ty {
        Type::List { .. } => Some(Value::Array(merge_lists(l, r, ty))),
        _ => {
            let mut out = Map::new();
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            for (k, lv) in lm.into_iter().flatten() {
                let fty = ty.field(k).unwrap_or(Type::untyped());
                if let Some(v) = merge_value(Some(lv), rm.and_then(|m| m.get(k)), fty) {
                    out.insert(k.clone(), v);
                }
            }
            for (k, rv) in rm.into_iter().flatten() {
                if lm.is_some_and(|m| m.contains_key(k)) {
                    continue;
                }
                let fty = ty.field(k).unwrap_or(Type::untyped());
                if let Some(v) = merge_value(None, Some(rv), fty) {
                    out.insert(k.clone(), v);
                }
            }
            Some(Value::Object(out))
        }
    }
}

/// Merges two keyed lists: items match by key; an item only in `l` keeps its place, the
/// items of `r` come in `r`'s order, with `r`-only items placed where `r` puts them
/// relative to the items both lists have.
fn merge_lists(l: Option<&Value>, r: Option<&Value>, ty: &'static Type) -> Vec<Value> {
    let left = indexed_items(ty, l, &[], None);
    let right = indexed_items(ty, r, &[], None);
    let in_right = |pe: &PathElement| right.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let in_left = |pe: &PathElement| left.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    // The shared items, in r's order: the order they come out in.
    let mut shared = right
        .iter()
        .filter(|(pe, _)| in_left(pe).is_some())
        .map(|(pe, _)| pe.clone())
        .collect::<std::collections::VecDeque<_>>();
    let mut next_shared = shared.pop_front();
    let mut emitted = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    let (mut li, mut ri) = (0, 0);
    while li < left.len() || ri < right.len() {
        if li < left.len() && ri < right.len() {
            let (lpe, lv) = &left[li];
            let (rpe, rv) = &right[ri];
            if lpe == rpe {
                emitted.insert(lpe.clone());
                out.extend(merge_value(Some(lv), Some(rv), ty.items()));
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if in_right(lpe).is_some() && next_shared.as_ref().is_some_and(|n| n != lpe) {
                // Shared, but r wants another shared item first: it comes out in r's turn.
                li += 1;
                continue;
            }
        }
        if li < left.len() {
            let (lpe, lv) = &left[li];
            if in_right(lpe).is_none() {
                out.extend(merge_value(Some(lv), None, ty.items()));
                li += 1;
                continue;
            }
            if emitted.contains(lpe) {
                li += 1;
                continue;
            }
        }
        if ri < right.len() {
            let (rpe, rv) = &right[ri];
            emitted.insert(rpe.clone());
            out.extend(merge_value(in_left(rpe), Some(rv), ty.items()));
            ri += 1;
            if next_shared.as_ref() == Some(rpe) {
                next_shared = shared.pop_front();
            }
        }
    }
    out
}

/// The applied configuration `config` merged into `live` (both of type `ty`): maps and
/// structs merge key by key, keyed lists and sets item by item, everything atomic is
/// replaced; a `null` in the configuration unsets the field.
pub fn merge(live: &Value, config: &Value, ty: &'static Type) -> Value {
    merge_value(Some(live), Some(config), ty).unwrap_or_else(|| Value::Object(Map::new()))
}

// ---------------------------------------------------------------------------------------------
// Removal.

fn remove_value(v: &Value, set: &Set, ty: &'static Type) -> Option<Value> {
    if ty.is_atomic() {
        return Some(v.clone());
    }
    match (ty, v) {
        (Type::List { .. }, Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = item_element(ty, i, item) else {
                    out.push(item.clone());
                    continue;
                };
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => out.extend(remove_value(item, sub, ty.items())),
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        (Type::Struct { .. } | Type::Map { .. } | Type::Untyped, Value::Object(m)) => {
            let mut out = Map::new();
            for (k, val) in m {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                match set.child(&pe) {
                    Some(sub) => {
                        let fty = ty.field(k).unwrap_or(Type::untyped());
                        if let Some(kept) = remove_value(val, sub, fty) {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        out.insert(k.clone(), val.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ => Some(v.clone()),
    }
}

/// `v` without the fields, list items and map entries of `set` (a container left empty
/// by the removal goes too).
pub fn remove_items(v: &Value, set: &Set, ty: &'static Type) -> Value {
    if set.is_empty() {
        return v.clone();
    }
    remove_value(v, set, ty).unwrap_or_else(|| Value::Object(Map::new()))
}

// ---------------------------------------------------------------------------------------------
// The empty object.

/// Struct fields that are Go values, not pointers: present (as `{}` with their own
/// always-present fields) in an empty object, where a pointer field is absent.
const VALUE_STRUCT_FIELDS: &[(&str, &str)] = &[
    ("io.k8s.api.apps.v1.DeploymentSpec", "template"),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy"),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", "template"),
    ("io.k8s.api.apps.v1.StatefulSetSpec", "template"),
    ("io.k8s.api.apps.v1.StatefulSetSpec", "updateStrategy"),
    ("io.k8s.api.apps.v1.DaemonSetSpec", "template"),
    ("io.k8s.api.apps.v1.DaemonSetSpec", "updateStrategy"),
    ("io.k8s.api.batch.v1.JobSpec", "template"),
    ("io.k8s.api.batch.v1.CronJobSpec", "jobTemplate"),
    ("io.k8s.api.core.v1.ServiceStatus", "loadBalancer"),
    ("io.k8s.api.core.v1.NodeStatus", "daemonEndpoints"),
    ("io.k8s.api.core.v1.NodeStatus", "nodeInfo"),
    ("io.k8s.api.core.v1.NodeDaemonEndpoints", "kubeletEndpoint"),
    ("io.k8s.api.core.v1.Container", "resources"),
    ("io.k8s.api.core.v1.EphemeralContainer", "resources"),
    ("io.k8s.api.core.v1.PersistentVolumeClaimSpec", "resources"),
    ("io.k8s.api.core.v1.Event", "involvedObject"),
    ("io.k8s.api.core.v1.Event", "source"),
    ("io.k8s.api.rbac.v1.RoleBinding", "roleRef"),
    ("io.k8s.api.rbac.v1.ClusterRoleBinding", "roleRef"),
    ("io.k8s.api.discovery.v1.Endpoint", "conditions"),
];

/// Timestamps that are Go values (`metav1.Time`, not `*metav1.Time`): `null` in an empty
/// object, so a client sending `null` there sets nothing.
const VALUE_TIME_FIELDS: &[(&str, &str)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "creationTimestamp",
    ),
    ("io.k8s.api.core.v1.Event", "firstTimestamp"),
    ("io.k8s.api.core.v1.Event", "lastTimestamp"),
    ("io.k8s.api.core.v1.Event", "eventTime"),
    ("io.k8s.api.events.v1.Event", "eventTime"),
    ("io.k8s.api.events.v1.Event", "deprecatedFirstTimestamp"),
    ("io.k8s.api.events.v1.Event", "deprecatedLastTimestamp"),
];

/// Whether field `field` of struct `def` is a Go value struct (always serialized).
fn is_value_struct(def: &str, field: &str) -> bool {
    matches!(field, "metadata" | "spec" | "status")
        || VALUE_STRUCT_FIELDS
            .iter()
            .any(|(d, f)| *d == def && *f == field)
}

/// The object Go's zero value of struct `ty` serializes to, as kube-apiserver compares a
/// created object against it: value structs nested as objects, fields without
/// `omitempty` as their zero value (`""`, `0`, `false`, `null`), nothing else.
pub fn zero_object(ty: &'static Type) -> Value {
    fn zero_struct(def: &'static str, depth: usize) -> Value {
        let mut out = Map::new();
        let Some(sd) = struct_def(def) else {
            return Value::Object(out);
        };
        let mut names: Vec<&String> = sd.fields.keys().collect();
        names.sort();
        for name in names {
            let fty = &sd.fields[name];
            let required = sd.required.iter().any(|r| r == name);
            let value = match fty {
                Type::Struct { def: inner, .. } if is_value_struct(def, name) && depth < 8 => {
                    Some(zero_struct(inner, depth + 1))
                }
                Type::Scalar if VALUE_TIME_FIELDS.contains(&(def, name.as_str())) => {
                    Some(Value::Null)
                }
                _ if !required => None,
                Type::Struct { .. } | Type::Map { .. } | Type::List { .. } | Type::Untyped => {
                    Some(Value::Null)
                }
                Type::Scalar => Some(zero_scalar(def, name)),
            };
            if let Some(v) = value {
                out.insert(name.clone(), v);
            }
        }
        Value::Object(out)
    }
    fn zero_scalar(def: &str, field: &str) -> Value {
        let ty = crate::openapi::definition(def)
            .and_then(|d| d.pointer(&format!("/properties/{field}")))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        match ty {
            Some("string") => Value::String(String::new()),
            Some("integer" | "number") => Value::from(0),
            Some("boolean") => Value::Bool(false),
            _ => Value::Null,
        }
    }
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<&'static str, Value>>,
    > = std::sync::OnceLock::new();
    let Type::Struct { def, .. } = ty else {
        return Value::Object(Map::new());
    };
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().ok().and_then(|c| c.get(def).cloned()) {
        return v;
    }
    let v = zero_struct(def, 0);
    if let Ok(mut c) = cache.lock() {
        c.insert(def, v.clone());
    }
    v
}
