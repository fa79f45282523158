//! Strategic merge patch (`application/strategic-merge-patch+json`), as Kubernetes
//! applies it on the server.
//!
//! A strategic merge patch is a JSON merge patch whose lists know how to merge: per
//! field, the API types declare a patch strategy (`merge`, `retainKeys`, `replace`)
//! and, for lists of objects, a merge key. The rules, as Kubernetes' apiserver applies
//! them (`StrategicMergeMapPatch` with parallel lists merged and unmatched nulls
//! ignored):
//!
//! - **Maps** merge recursively; a `null` value deletes the key. A map field whose
//!   strategy is `replace` is replaced by the patch value.
//! - **Lists** are replaced, unless the field's strategy is `merge`: then lists of
//!   objects merge item by item on the merge key (an item whose key is not in the
//!   original is added), and lists of scalars become the union of both. The merged
//!   list has the patch's items in the patch's order, the original's other items in
//!   their order, interleaved where the original order relates them; without that a
//!   new item comes before the original's remaining items.
//! - A value taken from the patch as it is (a new key, a changed type, a replaced list)
//!   loses its `null`s and every map that carries a `$patch` directive.
//! - **Directives**:
//!   - `$patch: replace` in a map replaces the map by the rest of the patch map;
//!     `$patch: delete` empties it; any other value is an error (`merge` too).
//!   - In a merging list, an item `{"$patch": "delete", <key>: v}` deletes every item
//!     whose merge key is `v`; an item `{"$patch": "replace"}` replaces the whole list by
//!     the patch's other items; `{"$patch": "merge"}` is an error.
//!   - `$deleteFromPrimitiveList/<field>: [..]` removes those values from the
//!     scalar list `<field>`.
//!   - `$setElementOrder/<field>: [..]` orders the merged list `<field>` (items by merge
//!     key for lists of objects): its items first-class in that order, the original's
//!     other items kept in their relative order around them. Every non-directive item
//!     of the patch list must appear in it, in the same relative order.
//!   - `$retainKeys: [..]` clears every key of the original map not in the list (the
//!     patch may only set keys in the list) before merging.
//!
//! Errors carry Kubernetes' messages and classes ([`StrategicError`]): the
//! malformed-directive errors are 400s, lists of lists and retainKeys mismatches 422s,
//! and the rest (a missing merge key, a bad `$patch` value) the 500 Kubernetes answers
//! with the bare error text.
//!
//! Deviations, on purpose: Kubernetes decodes the merged map into the typed object,
//! which drops unknown keys and `null`s; this engine returns JSON, so where a patch value
//! lands in the result unmerged it drops directive keys and `null` map values itself.
//! A field the metadata does not know is merged without metadata (maps merge, lists
//! replace) where Kubernetes would fail the lookup.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// `$patch`: a directive on a map or a list item.
pub const DIRECTIVE_MARKER: &str = "$patch";
/// `$retainKeys`: keys of the original map to keep.
pub const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
/// `$deleteFromPrimitiveList/<field>`: values to remove from a scalar list.
pub const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
/// `$setElementOrder/<field>`: the order of a merged list.
pub const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

const REPLACE: &str = "replace";
const DELETE: &str = "delete";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "retainKeys";

/// Kubernetes' `mergepatch` error texts.
pub mod messages {
    pub const BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
    pub const BAD_PATCH_FORMAT_FOR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
    pub const BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST: &str =
        "invalid patch format of setElementOrder list";
    pub const NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
    pub const MERGING_LISTS_NOT_SPECIFIABLE: &str =
        "merging lists cannot yet be specified in the patch";
}

/// Why a strategic merge patch failed, classed as Kubernetes' apiserver answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// 400 Bad Request: a malformed directive (`$retainKeys`, `$setElementOrder`,
    /// `$deleteFromPrimitiveList`) or a patch that is not a JSON object.
    #[error("{0}")]
    BadRequest(String),
    /// 422: lists of lists.
    #[error("{0}")]
    Unprocessable(String),
    /// Every other failure; Kubernetes answers 500 with this text as the message.
    #[error("{0}")]
    Failed(String),
}

/// One field's patch metadata, as the API types declare it
/// (`x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMeta {
    /// The patch strategies, as written, split on commas: `merge`, `retainKeys`, `replace`.
    pub strategies: Vec<String>,
    /// The merge key of a list of objects with the `merge` strategy.
    pub merge_key: Option<String>,
    /// The field's value: for a list, its items; for a map, the map itself.
    pub shape: Shape,
}

impl FieldMeta {
    /// A field without strategy or merge key.
    pub fn plain(shape: Shape) -> FieldMeta {
        FieldMeta {
            strategies: Vec::new(),
            merge_key: None,
            shape,
        }
    }
}

/// How a value is shaped, as far as patching needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Shape {
    /// An object with declared fields: the definition to look them up in
    /// (`io.k8s.api.core.v1.PodSpec`).
    Struct(String),
    /// A map with free keys (labels, `data`, resource lists) whose values have this shape.
    Map(Box<Shape>),
    /// Nothing below it has metadata: scalars, quantities, free-form JSON.
    #[default]
    Opaque,
}

/// Patch metadata of the API types: for a definition and one of its fields, the field's
/// strategy, merge key and the shape of its value (or items).
pub trait PatchMeta {
    /// Field `field` of definition `definition`; `None` when the definition has no such
    /// field (or is unknown).
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta>;
}

/// Applies strategic merge patch `patch` to `original`, an object of definition
/// `kind` (the root definition name, e.g. `io.k8s.api.apps.v1.Deployment`).
///
/// `original` is not changed; the result is the merged object.
pub fn apply_strategic(
    original: &Value,
    patch: &Value,
    meta: &dyn PatchMeta,
    kind: &str,
) -> Result<Value, StrategicError> {
    let patch = match patch {
        Value::Object(m) => m.clone(),
        // Go's json.Unmarshal of `null` into a map leaves it empty.
        Value::Null => Map::new(),
        other => {
            return Err(StrategicError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind_name(other)
            )));
        }
    };
    let original = original.as_object().cloned().unwrap_or_default();
    let engine = Engine { meta };
    let merged = engine.merge_map(original, patch, &Shape::Struct(kind.to_string()))?;
    Ok(Value::Object(merged))
}

/// Whether `key` is one of the strategic merge patch directives (never a field name).
pub fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
        || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
}

struct Engine<'a> {
    meta: &'a dyn PatchMeta,
}

/// The JSON kinds Kubernetes' merge compares (Go's dynamic types after decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Map,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

fn json_kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn failed(msg: impl Into<String>) -> StrategicError {
    StrategicError::Failed(msg.into())
}

/// `map: map[..] does not contain declared merge key: k`
fn no_merge_key(m: &Map<String, Value>, key: &str) -> StrategicError {
    failed(format!(
        "map: {} does not contain declared merge key: {key}",
        gofmt::map(m)
    ))
}

/// `unknown patch type: x in map: map[..]`
fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> StrategicError {
    failed(format!(
        "unknown patch type: {} in map: {}",
        gofmt::verb_s(directive),
        gofmt::map(m)
    ))
}

/// `expected a <want>, but received a <got>` (Go type names).
fn bad_arg_type(want: &str, got: Option<&Value>) -> StrategicError {
    failed(format!(
        "expected a {want}, but received a {}",
        got.map_or("%!s(<nil>)", gofmt::type_name)
    ))
}

const GO_LIST: &str = "[]interface {}";
const GO_MAP: &str = "map[string]interface {}";

/// Splits a `$prefix/<field>` key; Kubernetes' messages when it is malformed.
fn extract_key<'k>(key: &'k str, prefix: &str) -> Result<&'k str, StrategicError> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX => Err(StrategicError::BadRequest(
            messages::BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST.into(),
        )),
        _ => Err(StrategicError::BadRequest(
            messages::BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST.into(),
        )),
    }
}

/// The patch strategy of a field, and whether it retains keys; at most one strategy
/// beside `retainKeys`.
fn patch_strategy(strategies: &[String]) -> Result<(bool, String), StrategicError> {
    match strategies {
        [] => Ok((false, String::new())),
        [one] if one == RETAIN_KEYS => Ok((true, String::new())),
        [one] => Ok((false, one.clone())),
        [a, b] if a == RETAIN_KEYS => Ok((true, b.clone())),
        [a, b] if b == RETAIN_KEYS => Ok((true, a.clone())),
        _ => Err(failed(format!(
            "unexpected patch strategy: [{}]",
            strategies.join(" ")
        ))),
    }
}

/// Drops `null` map values, recursively (Kubernetes' `discardNullValuesFromPatch`).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Drops every map that carries a `$patch` directive (and list items that are such
/// maps); `None` when `v` itself is one (Kubernetes' `removeDirectives`).
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            let kept = m
                .into_iter()
                .filter_map(|(k, x)| remove_directives(x).map(|x| (k, x)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// What decoding into the typed object does to a value that came from the patch: drops
/// directive keys (unknown fields) and `null` map values.
fn decoded(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(decoded_map(m)),
        Value::Array(items) => Value::Array(items.into_iter().map(decoded).collect()),
        other => other,
    }
}

fn decoded_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .map(|(k, v)| (k, decoded(v)))
        .collect()
}

/// A patch value taken into the result as it is; `None`: the key goes away.
fn take_patch_value(mut v: Value) -> Option<Value> {
    discard_nulls(&mut v);
    remove_directives(v).map(decoded)
}

impl Engine<'_> {
    fn lookup(&self, shape: &Shape, field: &str) -> FieldMeta {
        match shape {
            Shape::Struct(def) => self
                .meta
                .field(def, field)
                .unwrap_or_else(|| FieldMeta::plain(Shape::Opaque)),
            Shape::Map(values) => FieldMeta::plain((**values).clone()),
            Shape::Opaque => FieldMeta::plain(Shape::Opaque),
        }
    }

    /// Merges `patch` into `original` (Kubernetes' `mergeMap`).
    fn merge_map(
        &self,
        mut original: Map<String, Value>,
        mut patch: Map<String, Value>,
        shape: &Shape,
    ) -> Result<Map<String, Value>, StrategicError> {
        if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
            return match directive.as_str() {
                Some(REPLACE) => {
                    patch.shift_remove(DIRECTIVE_MARKER);
                    Ok(decoded_map(patch))
                }
                Some(DELETE) => Ok(Map::new()),
                _ => Err(bad_patch_type(directive, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, shape)?;

        for (key, patch_value) in patch {
            let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
                (
                    extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?.to_string(),
                    true,
                )
            } else {
                (key, false)
            };
            if patch_value.is_null() {
                original.shift_remove(&key);
                continue;
            }
            let Some(current) = original.get_mut(&key) else {
                if !delete_list && let Some(v) = take_patch_value(patch_value) {
                    original.insert(key, v);
                }
                continue;
            };
            if kind_of(current) != kind_of(&patch_value) {
                if !delete_list {
                    match take_patch_value(patch_value) {
                        Some(v) => *current = v,
                        None => {
                            original.shift_remove(&key);
                        }
                    }
                }
                continue;
            }
            match (current.take(), patch_value) {
                (Value::Object(cur), Value::Object(p)) => {
                    let field = self.lookup(shape, &key);
                    let (_, strategy) = patch_strategy(&field.strategies)?;
                    *current = Value::Object(if strategy == REPLACE {
                        decoded_map(p)
                    } else {
                        self.merge_map(cur, p, &field.shape)?
                    });
                }
                (Value::Array(cur), Value::Array(p)) => {
                    let field = self.lookup(shape, &key);
                    let (_, strategy) = patch_strategy(&field.strategies)?;
                    let merge_key = field.merge_key.as_deref().unwrap_or("");
                    *current = Value::Array(self.merge_list_field(
                        cur,
                        p,
                        &field.shape,
                        &strategy,
                        merge_key,
                        delete_list,
                    )?);
                }
                (_, p) => match take_patch_value(p) {
                    Some(v) => *current = v,
                    None => {
                        original.shift_remove(&key);
                    }
                },
            }
        }
        Ok(original)
    }

    /// A list field: merged when its strategy is `merge` (or the patch is a deletion
    /// list), replaced otherwise (Kubernetes' `mergeSliceHandler`).
    fn merge_list_field(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        items: &Shape,
        strategy: &str,
        merge_key: &str,
        delete_list: bool,
    ) -> Result<Vec<Value>, StrategicError> {
        if strategy == MERGE || delete_list {
            self.merge_list(original, patch, items, merge_key, delete_list)
        } else {
            Ok(patch.into_iter().map(decoded).collect())
        }
    }

    /// Kubernetes' `mergeSlice`.
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        items: &Shape,
        merge_key: &str,
        delete_list: bool,
    ) -> Result<Vec<Value>, StrategicError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        let kind = element_kind(&[&original, &patch])?;
        let (original, patch, merged) = if kind != Kind::Map {
            if delete_list {
                return Ok(original
                    .into_iter()
                    .filter(|v| !patch.contains(v))
                    .collect());
            }
            let mut both = original.clone();
            both.extend(patch.iter().cloned());
            let merged = dedup_scalars(both);
            (original, patch, merged)
        } else {
            if merge_key.is_empty() {
                return Err(failed("cannot merge lists without merge key for struct"));
            }
            let (original, patch) = apply_special_items(original, patch, merge_key)?;
            let merged = self.merge_items(original.clone(), &patch, merge_key, items)?;
            (original, patch, merged)
        };
        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_scalars(merged, &patch)
        } else {
            partition_maps(merged, &patch, merge_key)?
        };
        normalize_element_order(patch_items, server_only, &patch, &original, merge_key, kind)
    }

    /// Merges each patch item into the original item with the same merge key, or
    /// appends it (Kubernetes' `mergeSliceWithoutSpecialElements`).
    fn merge_items(
        &self,
        mut original: Vec<Value>,
        patch: &[Value],
        merge_key: &str,
        items: &Shape,
    ) -> Result<Vec<Value>, StrategicError> {
        for item in patch {
            let Value::Object(p) = item else {
                return Err(bad_arg_type(GO_MAP, Some(item)));
            };
            let Some(key_value) = p.get(merge_key) else {
                return Err(no_merge_key(p, merge_key));
            };
            match find_by_key(&original, merge_key, key_value)? {
                Some(i) => {
                    let cur = match original[i].take() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    original[i] = Value::Object(self.merge_map(cur, p.clone(), items)?);
                }
                None => original.push(decoded(item.clone())),
            }
        }
        Ok(original)
    }

    /// Processes every `$setElementOrder/<field>` of `patch`: merges `<field>` and orders
    /// it, removing both from `patch` (Kubernetes' `mergePatchIntoOriginal`).
    fn merge_ordered_lists(
        &self,
        original: &mut Map<String, Value>,
        patch: &mut Map<String, Value>,
        shape: &Shape,
    ) -> Result<(), StrategicError> {
        let order_keys: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
            .cloned()
            .collect();
        for order_key in order_keys {
            let Some(order_value) = patch.shift_remove(&order_key) else {
                continue;
            };
            let Value::Array(order) = order_value else {
                return Err(bad_arg_type(GO_LIST, Some(&order_value)));
            };
            let field_key = extract_key(&order_key, SET_ELEMENT_ORDER_PREFIX)?.to_string();
            let original_list = match original.get(&field_key) {
                None => None,
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(bad_arg_type(GO_LIST, Some(other))),
            };
            let patch_list = match patch.get(&field_key) {
                None => None,
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(bad_arg_type(GO_LIST, Some(other))),
            };
            let field = self.lookup(shape, &field_key);
            let (_, strategy) = patch_strategy(&field.strategies)?;
            let merge_key = field.merge_key.clone().unwrap_or_default();
            validate_patch_with_order(patch_list.as_deref().unwrap_or(&[]), &order, &merge_key)?;

            let merged = match (&original_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                    Some(Value::Array(l)) => l.into_iter().map(decoded).collect(),
                    _ => continue,
                },
                (Some(o), Some(p)) => self.merge_list_field(
                    o.clone(),
                    p.clone(),
                    &field.shape,
                    &strategy,
                    &merge_key,
                    false,
                )?,
                (None, None) => continue,
            };
            let (ordered, server_only) = if merge_key.is_empty() {
                partition_scalars(merged, &order)
            } else {
                partition_maps(merged, &order, &merge_key)?
            };
            let original_items = original_list.unwrap_or_default();
            let kind = element_kind(&[&original_items, patch_list.as_deref().unwrap_or(&[])])?;
            let both = normalize_element_order(
                ordered,
                server_only,
                &order,
                &original_items,
                &merge_key,
                kind,
            )?;
            original.insert(field_key.clone(), Value::Array(both));
            patch.shift_remove(&field_key);
        }
        Ok(())
    }
}

/// `$retainKeys`: checks the patch only sets retained keys, then clears the others
/// from `original` (Kubernetes' `applyRetainKeysDirective`).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), StrategicError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let bad = || StrategicError::BadRequest(messages::BAD_PATCH_FORMAT_FOR_RETAIN_KEYS.into());
    let Value::Array(retain) = retain else {
        return Err(bad());
    };
    let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(k) {
            return Err(bad());
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// The common kind of the items of `lists` (Kubernetes' `sliceElementType`).
fn element_kind(lists: &[&[Value]]) -> Result<Kind, StrategicError> {
    let mut found: Option<Kind> = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let k = kind_of(item);
        match found {
            None if k == Kind::List => {
                return Err(StrategicError::Unprocessable(
                    messages::NO_LIST_OF_LISTS.into(),
                ));
            }
            None => found = Some(k),
            Some(prev) if prev != k => {
                let shown: Vec<String> = lists.iter().map(|l| gofmt::list(l)).collect();
                return Err(failed(format!(
                    "list element types are not identical: [{}]",
                    shown.join(" ")
                )));
            }
            Some(_) => {}
        }
    }
    found.ok_or_else(|| failed("no elements in any of the given slices"))
}

/// Handles the `$patch` items of a merging list: deletions by merge key, `replace`
/// (the patch's other items become the list). Returns the original left and the patch
/// without directive items (Kubernetes' `mergeSliceWithSpecialElements`).
fn apply_special_items(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE_MARKER) else {
            plain.push(item);
            continue;
        };
        let map = item.as_object().cloned().unwrap_or_default();
        match directive.as_str() {
            Some(DELETE) => {
                let Some(key_value) = map.get(merge_key) else {
                    return Err(no_merge_key(&map, merge_key));
                };
                while let Some(i) = find_by_key(&original, merge_key, key_value)? {
                    original.remove(i);
                }
            }
            Some(REPLACE) => replace = true,
            Some(MERGE) => return Err(failed(messages::MERGING_LISTS_NOT_SPECIFIABLE)),
            _ => return Err(bad_patch_type(directive, &map)),
        }
    }
    if replace {
        Ok((plain.into_iter().map(decoded).collect(), Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Index of the first map in `list` whose `key` equals `value`.
fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, StrategicError> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(failed(format!("value for key {i} is not a map")));
        };
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Removes duplicates the way Kubernetes' `deduplicateScalars` does (a duplicate is
/// overwritten by the last item); the order is normalized afterwards anyway.
fn dedup_scalars(mut s: Vec<Value>) -> Vec<Value> {
    if s.is_empty() {
        return s;
    }
    let mut last = s.len() - 1;
    let mut i = 0;
    while i < last {
        let mut j = i + 1;
        while j <= last {
            if s[i] == s[j] {
                s.swap(j, last);
                s.truncate(last);
                last -= 1;
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    s
}

/// Splits `merged` into the values present in `by` and the others.
fn partition_scalars(merged: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    merged.into_iter().partition(|v| by.contains(v))
}

/// Splits `merged` into the maps whose merge key appears in `by` and the others.
fn partition_maps(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut present = Vec::new();
    let mut others = Vec::new();
    for v in merged {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type(GO_MAP, Some(&v)));
        };
        let Some(key_value) = m.get(merge_key) else {
            return Err(no_merge_key(m, merge_key));
        };
        if find_by_key(by, merge_key, key_value)?.is_some() {
            present.push(v);
        } else {
            others.push(v);
        }
    }
    Ok((present, others))
}

/// Checks that the patch list's items appear in the `$setElementOrder` list in the same
/// relative order (directive items aside).
fn validate_patch_with_order(
    patch: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), StrategicError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = if merge_key.is_empty() {
        patch.iter().collect()
    } else {
        let mut kept = Vec::new();
        for v in patch {
            let Value::Object(m) = v else {
                return Err(bad_arg_type(GO_MAP, Some(v)));
            };
            if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE) {
                kept.push(v);
            }
        }
        kept
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < items.len() && oi < order.len() {
        if items[pi].get(DIRECTIVE_MARKER).is_some() && items[pi].is_object() {
            pi += 1;
            continue;
        }
        if merge_key_equal(items[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < items.len() && oi >= order.len() {
        return Err(failed(format!(
            "the order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}",
            gofmt::list(patch),
            gofmt::list(order)
        )));
    }
    Ok(())
}

fn merge_key_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool, StrategicError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let Value::Object(l) = left else {
        return Err(bad_arg_type(GO_MAP, Some(left)));
    };
    let Value::Object(r) = right else {
        return Err(bad_arg_type(GO_MAP, Some(right)));
    };
    let Some(lv) = l.get(merge_key) else {
        return Err(no_merge_key(l, merge_key));
    };
    let Some(rv) = r.get(merge_key) else {
        return Err(no_merge_key(r, merge_key));
    };
    Ok(lv == rv)
}

/// Position of `item` in `list`: by merge key for maps, by value otherwise.
fn index_in(list: &[Value], item: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    if kind == Kind::Map {
        let want = item.get(merge_key);
        list.iter().position(|v| v.get(merge_key) == want)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// Sorts `items` stably by their position in `order` (directive deletions last).
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, StrategicError> {
    let (mut items, deletions) = if kind == Kind::Map {
        for v in items.iter().chain(order) {
            let Value::Object(m) = v else {
                return Err(bad_arg_type(GO_MAP, Some(v)));
            };
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
        items.into_iter().partition::<Vec<_>, _>(|v| {
            v.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE)
        })
    } else {
        (items, Vec::new())
    };
    items.sort_by(|a, b| {
        match (
            index_in(order, a, merge_key, kind),
            index_in(order, b, merge_key, kind),
        ) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        }
    });
    items.extend(deletions);
    Ok(items)
}

/// Orders the patch's items by `patch_order` and the original-only items by
/// `server_order`, then interleaves them: an original-only item goes before a patch item
/// when the original had it first (Kubernetes' `normalizeElementOrder`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, StrategicError> {
    let right = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let left = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let before = match (
            index_in(server_order, l, merge_key, kind),
            index_in(server_order, r, merge_key, kind),
        ) {
            (Some(x), Some(y)) => x < y,
            _ => false,
        };
        let next = if before { left.next() } else { right.next() };
        out.extend(next);
    }
    out.extend(left);
    out.extend(right);
    Ok(out)
}

/// The patch metadata of Kubernetes v1.33's API types, from the OpenAPI table in
/// [`crate::openapi`] (`patch_meta.json`).
pub fn builtin_meta() -> &'static crate::openapi::PatchMeta {
    crate::openapi::patch_meta()
}

/// The root definition of `group/version, Kind=kind` (core group: `""`) in the
/// built-in metadata; `None` when the kind has none (then Kubernetes answers a strategic
/// merge patch with 415).
pub fn kind_definition(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    builtin_meta()
        .kinds
        .get(&format!("{group}/{version}/{kind}"))
        .map(String::as_str)
}

impl PatchMeta for crate::openapi::PatchMeta {
    fn field(&self, definition: &str, field: &str) -> Option<FieldMeta> {
        use crate::openapi::FieldType;
        let f = self.definitions.get(definition)?.fields.get(field)?;
        let target = || {
            f.reference
                .as_ref()
                .map_or(Shape::Opaque, |r| Shape::Struct(r.clone()))
        };
        let shape = match f.ty {
            FieldType::Object | FieldType::Array => target(),
            FieldType::Map => Shape::Map(Box::new(target())),
            FieldType::Scalar => Shape::Opaque,
        };
        let strategies = f
            .patch_strategy
            .as_deref()
            .map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(FieldMeta {
            strategies,
            merge_key: f.patch_merge_key.clone(),
            shape,
        })
    }
}

/// Go's `%v` / `%s` renderings of decoded JSON, for error messages that match
/// Kubernetes' byte for byte.
mod gofmt {
    use serde_json::{Map, Value};

    /// `%v`
    pub fn value(v: &Value) -> String {
        match v {
            Value::Null => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (None, Some(u), _) => u.to_string(),
                (None, None, Some(f)) => float(f),
                _ => n.to_string(),
            },
            Value::String(s) => s.clone(),
            Value::Array(items) => list(items),
            Value::Object(m) => map(m),
        }
    }

    /// `%v` of a `[]interface{}`.
    pub fn list(items: &[Value]) -> String {
        let parts: Vec<String> = items.iter().map(value).collect();
        format!("[{}]", parts.join(" "))
    }

    /// `%v` of a `map[string]interface{}`: keys sorted.
    pub fn map(m: &Map<String, Value>) -> String {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        let parts: Vec<String> = keys
            .into_iter()
            .map(|k| format!("{k}:{}", value(&m[k.as_str()])))
            .collect();
        format!("map[{}]", parts.join(" "))
    }

    /// `%s`: strings as they are, other types flagged as Go does.
    pub fn verb_s(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => "%!s(<nil>)".into(),
            Value::Array(_) | Value::Object(_) => value(v),
            other => format!("%!s({}={})", type_name(other), value(other)),
        }
    }

    /// Go's name of the dynamic type of a decoded JSON value.
    pub fn type_name(v: &Value) -> &'static str {
        match v {
            Value::Null => "%!s(<nil>)",
            Value::Bool(_) => "bool",
            Value::Number(n) if n.is_f64() => "float64",
            Value::Number(_) => "int64",
            Value::String(_) => "string",
            Value::Array(_) => super::GO_LIST,
            Value::Object(_) => super::GO_MAP,
        }
    }

    /// `%v` of a float64: the shortest representation, in exponent form when the
    /// exponent is below -4 or at least 6 (Go's `%g` with the shortest precision).
    fn float(f: f64) -> String {
        if f.is_finite() && f != 0.0 {
            let exp = f.abs().log10().floor() as i32;
            if !(-4..6).contains(&exp) {
                let s = format!("{f:e}");
                if let Some((mantissa, e)) = s.split_once('e') {
                    let e: i32 = e.parse().unwrap_or(0);
                    let sign = if e < 0 { '-' } else { '+' };
                    return format!("{mantissa}e{sign}{:02}", e.abs());
                }
            }
        }
        format!("{f}")
    }
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
