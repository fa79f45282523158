//! The shape of objects as server-side apply sees it, read from Kubernetes' OpenAPI
//! definitions ([`crate::openapi::definitions`]) the way kube-apiserver converts them for
//! structured-merge-diff:
//!
//! - a definition with `properties` is a **struct**, granular unless
//!   `x-kubernetes-map-type: atomic`;
//! - `additionalProperties` is a **map** (granular unless `x-kubernetes-map-type: atomic`);
//! - an array is a **list**: `x-kubernetes-list-type` decides (`atomic`, `set`, `map` with
//!   `x-kubernetes-list-map-keys`); without it a `merge` patch strategy makes it a map keyed
//!   by the patch merge key (or a set without one), anything else is atomic;
//! - an object without properties (RawExtension, FieldsV1) or with
//!   `x-kubernetes-preserve-unknown-fields` is **untyped**: maps granular, lists atomic;
//! - everything else (strings, numbers, Quantity, IntOrString, Time) is a **scalar**.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::openapi::{definition, definitions, ref_name};

/// How a value merges, compares and is owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// A struct: the definition that declares its fields.
    Struct {
        def: &'static str,
        atomic: bool,
    },
    /// A map with free keys whose values have one type.
    Map {
        values: Box<Type>,
        atomic: bool,
    },
    /// A list.
    List {
        items: Box<Type>,
        kind: ListKind,
    },
    Scalar,
    /// Free-form JSON.
    Untyped,
}

/// `x-kubernetes-list-type`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    Set,
    /// A list of objects keyed by these fields.
    Map(Vec<String>),
}

/// One struct definition: its fields' types and the fields Go always serializes.
#[derive(Debug)]
pub struct StructDef {
    pub fields: HashMap<String, Type>,
    /// Fields without `omitempty` (OpenAPI `required`).
    pub required: Vec<String>,
}

static UNTYPED: Type = Type::Untyped;
static SCALAR: Type = Type::Scalar;

struct Schema {
    structs: HashMap<&'static str, StructDef>,
    roots: HashMap<&'static str, Type>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut structs = HashMap::new();
        let mut roots = HashMap::new();
        for (name, d) in definitions() {
            let Some(props) = d.get("properties").and_then(Value::as_object) else {
                continue;
            };
            let fields = props.iter().map(|(k, v)| (k.clone(), type_of(v))).collect();
            let required = d
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            structs.insert(name.as_str(), StructDef { fields, required });
            roots.insert(name.as_str(), struct_type(name.as_str(), d));
        }
        Schema { structs, roots }
    })
}

fn struct_type(name: &'static str, d: &Value) -> Type {
    Type::Struct {
        def: name,
        atomic: d.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"),
    }
}

fn type_of(s: &'static Value) -> Type {
    if s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Type::Untyped;
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = ref_name(r);
        return match definitions().get_key_value(name) {
            Some((n, d)) if d.get("properties").is_some() => struct_type(n.as_str(), d),
            Some((_, d)) => type_of(d),
            None => Type::Untyped,
        };
    }
    if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        return type_of(only);
    }
    match s.get("type").and_then(Value::as_str) {
        Some("array") => Type::List {
            items: Box::new(s.get("items").map_or(Type::Untyped, type_of)),
            kind: list_kind(s),
        },
        Some("object") => match s.get("additionalProperties").filter(|v| v.is_object()) {
            Some(values) => Type::Map {
                values: Box::new(type_of(values)),
                atomic: s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic"),
            },
            None => Type::Untyped,
        },
        None => Type::Untyped,
        Some(_) => Type::Scalar,
    }
}

fn list_kind(s: &Value) -> ListKind {
    let ext = |k: &str| s.get(k).and_then(Value::as_str);
    match ext("x-kubernetes-list-type") {
        Some("set") => ListKind::Set,
        Some("map") => ListKind::Map(
            s.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        Some(_) => ListKind::Atomic,
        None => match ext("x-kubernetes-patch-strategy") {
            Some("merge" | "merge,retainKeys") => match ext("x-kubernetes-patch-merge-key") {
                Some(key) => ListKind::Map(vec![key.to_string()]),
                None => ListKind::Set,
            },
            _ => ListKind::Atomic,
        },
    }
}

/// The type of objects of definition `def` (`io.k8s.api.apps.v1.Deployment`).
pub fn root(def: &str) -> Option<&'static Type> {
    schema().roots.get(def)
}

/// A struct definition by name.
pub fn struct_def(def: &str) -> Option<&'static StructDef> {
    schema().structs.get(def)
}

/// Defaults of list-map key fields that Kubernetes' OpenAPI declares with `+default` (the
/// v2 definitions kadm carries do not include them): an item without the field is keyed
/// with the default, as kube-apiserver keys it.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.LocalObjectReference", "name", ""),
];

/// The default of field `field` of struct `def`, when it has one.
pub fn field_default(def: &str, field: &str) -> Option<Value> {
    if let Some(d) =
        definition(def).and_then(|d| d.pointer(&format!("/properties/{field}/default")))
    {
        return Some(d.clone());
    }
    KEY_DEFAULTS
        .iter()
        .find(|(d, f, _)| *d == def && *f == field)
        .map(|(_, _, v)| Value::String((*v).to_string()))
}

impl Type {
    /// Whether the value is replaced and owned as a whole.
    pub fn is_atomic(&self) -> bool {
        match self {
            Type::Struct { atomic, .. } | Type::Map { atomic, .. } => *atomic,
            Type::List { kind, .. } => *kind == ListKind::Atomic,
            Type::Scalar => true,
            Type::Untyped => false,
        }
    }

    /// The type of map entry or struct field `name`; `None` for a field the struct does
    /// not declare.
    pub fn field(&'static self, name: &str) -> Option<&'static Type> {
        match self {
            Type::Struct { def, .. } => struct_def(def).and_then(|d| d.fields.get(name)),
            Type::Map { values, .. } => Some(values),
            Type::Untyped => Some(&UNTYPED),
            Type::List { .. } | Type::Scalar => None,
        }
    }

    /// Whether `name` is a field the struct declares (not a free map key).
    pub fn declares(&self, name: &str) -> bool {
        match self {
            Type::Struct { def, .. } => {
                struct_def(def).is_some_and(|d| d.fields.contains_key(name))
            }
            _ => false,
        }
    }

    /// The type of a list's items (untyped lists hold untyped items).
    pub fn items(&'static self) -> &'static Type {
        match self {
            Type::List { items, .. } => items,
            _ => &UNTYPED,
        }
    }

    /// The untyped type (free-form JSON).
    pub fn untyped() -> &'static Type {
        &UNTYPED
    }

    /// The scalar type.
    pub fn scalar() -> &'static Type {
        &SCALAR
    }
}
