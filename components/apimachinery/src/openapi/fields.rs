//! Server-side field validation, as kube-apiserver's strict decoding does it.
//!
//! `fieldValidation` (`Strict`, `Warn`, `Ignore`; empty means `Warn`) decides what happens to
//! fields the kind's schema does not have and to keys a JSON or YAML object repeats:
//! `Strict` fails the request (`strict decoding error: unknown field "spec.foo", duplicate
//! field "a"`), `Warn` drops them and answers with one `Warning` header each, `Ignore` drops
//! them silently. Either way the stored object has only known fields, and for a repeated key
//! the last value wins, as in Kubernetes.
//!
//! Two pieces:
//! - [`decode_json_strict`] / [`decode_yaml_strict`]: one parse that builds the
//!   `serde_json::Value` and notes every repeated key with its path (serde_json and
//!   serde_yaml keep the last value silently);
//! - [`prune_unknown_fields`]: a walk of the object along the kind's definition — properties,
//!   `$ref`, array items, `additionalProperties` maps, free-form objects (RawExtension,
//!   FieldsV1), `x-kubernetes-preserve-unknown-fields` — that removes unknown fields and
//!   names them. Paths are Kubernetes': `spec.template.spec.containers[0].imagez`, map
//!   values by key (`spec.selector.matchLabels.app`).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{definition, ref_name};
use crate::status::{ApiError, Cause};

/// The `fieldValidation` directive of a create, update or patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    /// The server's default when the parameter is absent.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    /// Every accepted value, as Kubernetes lists them in the error.
    pub const SUPPORTED: &'static [&'static str] = &["", "Ignore", "Strict", "Warn"];

    /// Reads the query parameter. An unsupported value is Kubernetes' 422 on the request's
    /// options (`options_kind`: `CreateOptions`, `UpdateOptions` or `PatchOptions`):
    /// `CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "x": …`.
    pub fn from_query(value: Option<&str>, options_kind: &str) -> Result<Self, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::invalid(
                "meta.k8s.io",
                options_kind,
                "",
                vec![Cause::not_supported(
                    "fieldValidation",
                    &Value::String(other.to_string()),
                    Self::SUPPORTED,
                )],
            )),
        }
    }

    /// Whether the directive needs the checks at all (`Ignore` only needs the pruning).
    pub fn reports(self) -> bool {
        self != FieldValidation::Ignore
    }
}

/// `strict decoding error: <e1>, <e2>` — Kubernetes' `runtime.NewStrictDecodingError` text.
pub fn strict_decoding_error(errors: &[String]) -> String {
    format!("strict decoding error: {}", errors.join(", "))
}

/// Go's `%q` of a field path (as `unknown field %q` prints it).
fn quote(path: &str) -> String {
    serde_json::to_string(path).unwrap_or_else(|_| format!("\"{path}\""))
}

fn unknown_field(path: &str) -> String {
    format!("unknown field {}", quote(path))
}

fn duplicate_field(path: &str) -> String {
    format!("duplicate field {}", quote(path))
}

// ---------------------------------------------------------------------------------------------
// Duplicate-detecting decode.

struct State {
    path: String,
    duplicates: Vec<String>,
}

struct ValueSeed<'a>(&'a mut State);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor(self.0))
    }
}

struct ValueVisitor<'a>(&'a mut State);

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let state = self.0;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        let base = state.path.len();
        loop {
            use fmt::Write;
            let _ = write!(state.path, "[{}]", out.len());
            let item = seq.next_element_seed(ValueSeed(state))?;
            state.path.truncate(base);
            match item {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let state = self.0;
        let mut out = Map::new();
        let base = state.path.len();
        while let Some(key) = map.next_key::<String>()? {
            if base > 0 {
                state.path.push('.');
            }
            state.path.push_str(&key);
            if out.contains_key(&key) {
                state.duplicates.push(state.path.clone());
            }
            let value = map.next_value_seed(ValueSeed(state))?;
            state.path.truncate(base);
            // The last value wins, as in Go; the key keeps its first position.
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parses JSON into a `Value`, returning also one `duplicate field "<path>"` per repeated key.
pub fn decode_json_strict(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut state = State {
        path: String::new(),
        duplicates: Vec::new(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed(&mut state).deserialize(&mut de)?;
    de.end()?;
    Ok((
        value,
        state
            .duplicates
            .iter()
            .map(|p| duplicate_field(p))
            .collect(),
    ))
}

/// [`decode_json_strict`] for a YAML document.
pub fn decode_yaml_strict(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_yaml::Error> {
    let mut state = State {
        path: String::new(),
        duplicates: Vec::new(),
    };
    let value = ValueSeed(&mut state).deserialize(serde_yaml::Deserializer::from_slice(bytes))?;
    Ok((
        value,
        state
            .duplicates
            .iter()
            .map(|p| duplicate_field(p))
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Unknown fields.

/// Follows `$ref` (and a one-element `allOf`) to the schema that describes a value.
fn resolve(mut schema: &'static Value) -> &'static Value {
    for _ in 0..32 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match definition(ref_name(r)) {
                Some(d) => schema = d,
                None => return schema,
            }
        } else if let Some([only]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = only;
        } else {
            return schema;
        }
    }
    schema
}

fn walk(schema: &'static Value, value: &mut Value, path: &mut String, unknown: &mut Vec<String>) {
    let schema = resolve(schema);
    match value {
        Value::Object(map) => {
            if schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true)
            {
                return;
            }
            let base = path.len();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let mut any_unknown = false;
                for (k, v) in map.iter_mut() {
                    if base > 0 {
                        path.push('.');
                    }
                    path.push_str(k);
                    match props.get(k) {
                        Some(ps) => walk(ps, v, path, unknown),
                        None => {
                            any_unknown = true;
                            unknown.push(unknown_field(path));
                        }
                    }
                    path.truncate(base);
                }
                if any_unknown {
                    map.retain(|k, _| props.contains_key(k));
                }
            } else if let Some(values) =
                schema.get("additionalProperties").filter(|v| v.is_object())
            {
                for (k, v) in map.iter_mut() {
                    if base > 0 {
                        path.push('.');
                    }
                    path.push_str(k);
                    walk(values, v, path, unknown);
                    path.truncate(base);
                }
            }
            // An object schema with neither is free-form (RawExtension, FieldsV1).
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                let base = path.len();
                for (i, v) in items.iter_mut().enumerate() {
                    use fmt::Write;
                    let _ = write!(path, "[{i}]");
                    walk(item_schema, v, path, unknown);
                    path.truncate(base);
                }
            }
        }
        // Scalars (IntOrString, Quantity, Time are strings or numbers): nothing below.
        _ => {}
    }
}

/// Removes from `obj` every field the definition `definition_name` does not have and
/// returns one `unknown field "<path>"` per removed field, in document order. An unknown
/// definition leaves the object untouched.
pub fn prune_unknown_fields(definition_name: &str, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(schema) = definition(definition_name) {
        walk(schema, obj, &mut String::new(), &mut unknown);
    }
    unknown
}
