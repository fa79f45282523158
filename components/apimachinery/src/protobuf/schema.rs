//! The message descriptions in `schema.json`, parsed once.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::ProtobufError;

/// What a field holds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Double,
    Float,
    Message,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "string" => Kind::String,
            "bytes" => Kind::Bytes,
            "bool" => Kind::Bool,
            "int32" => Kind::Int32,
            "int64" => Kind::Int64,
            "uint32" => Kind::Uint32,
            "uint64" => Kind::Uint64,
            "sint32" => Kind::Sint32,
            "sint64" => Kind::Sint64,
            "fixed32" => Kind::Fixed32,
            "fixed64" => Kind::Fixed64,
            "sfixed32" => Kind::Sfixed32,
            "sfixed64" => Kind::Sfixed64,
            "double" => Kind::Double,
            "float" => Kind::Float,
            "message" => Kind::Message,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Label {
    Optional,
    Repeated,
    Map,
}

/// How Go holds the field, which decides how it is printed in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A non-pointer string, number or bool: printed unless `omitempty` and zero.
    Value,
    /// A pointer: printed when set (zero included), else `null` or omitted.
    Pointer,
    /// A non-pointer struct: always printed (its zero value when absent).
    Struct,
    /// A slice (`[]byte` included): printed when non-empty, else `null` or omitted.
    Slice,
    /// A map: like a slice.
    Map,
    /// An embedded struct whose fields are printed in the parent object.
    Inline,
}

/// Messages with their own JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    RawExtension,
    FieldsV1,
    /// A Go slice wrapped in a message with `repeated items = 1` (Verbs, ExtraValue).
    Array,
}

#[derive(Debug)]
pub(super) struct Field {
    pub tag: u32,
    pub json: String,
    pub kind: Kind,
    /// Index of the message type when `kind` is `Message`.
    pub message: Option<usize>,
    pub label: Label,
    pub shape: Shape,
    pub omitempty: bool,
}

#[derive(Debug)]
pub(super) struct Message {
    pub name: String,
    pub special: Option<Special>,
    /// In the order Go prints them.
    pub fields: Vec<Field>,
    pub by_tag: HashMap<u32, usize>,
}

#[derive(Debug)]
pub(super) struct Schema {
    pub messages: Vec<Message>,
    names: HashMap<String, usize>,
}

impl Schema {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    pub fn parse(text: &str) -> Result<Schema, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not json: {e}"))?;
        let msgs = doc
            .get("messages")
            .and_then(Value::as_object)
            .ok_or("no \"messages\" object")?;
        let special = doc.get("special").and_then(Value::as_object);
        let names: HashMap<String, usize> = msgs
            .keys()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        let mut messages = Vec::with_capacity(msgs.len());
        for (name, fields) in msgs {
            let special = match special.and_then(|s| s.get(name)).and_then(Value::as_str) {
                None => None,
                Some(s) => Some(parse_special(s).ok_or_else(|| format!("{name}: special {s}"))?),
            };
            let rows = fields
                .as_array()
                .ok_or_else(|| format!("{name}: fields are not a list"))?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(parse_field(row, &names).map_err(|e| format!("{name}: {e}: {row}"))?);
            }
            let by_tag = out.iter().enumerate().map(|(i, f)| (f.tag, i)).collect();
            messages.push(Message {
                name: name.clone(),
                special,
                fields: out,
                by_tag,
            });
        }
        Ok(Schema { messages, names })
    }
}

fn parse_special(s: &str) -> Option<Special> {
    Some(match s {
        "time" => Special::Time,
        "microtime" => Special::MicroTime,
        "duration" => Special::Duration,
        "quantity" => Special::Quantity,
        "intorstring" => Special::IntOrString,
        "rawextension" => Special::RawExtension,
        "fieldsv1" => Special::FieldsV1,
        "array" => Special::Array,
        _ => return None,
    })
}

fn parse_field(row: &Value, names: &HashMap<String, usize>) -> Result<Field, String> {
    let get = |i: usize| row.get(i).ok_or_else(|| format!("element {i} missing"));
    let tag = get(0)?
        .as_u64()
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0)
        .ok_or("bad tag")?;
    let json = get(1)?.as_str().ok_or("bad json name")?.to_string();
    let kind = get(2)?.as_str().and_then(Kind::parse).ok_or("bad kind")?;
    let message = match get(3)? {
        Value::Null => None,
        Value::String(t) => Some(*names.get(t).ok_or_else(|| format!("unknown type {t}"))?),
        _ => return Err("bad type".into()),
    };
    if (kind == Kind::Message) != message.is_some() {
        return Err("kind and type disagree".into());
    }
    let label = match get(4)?.as_str() {
        Some("optional") => Label::Optional,
        Some("repeated") => Label::Repeated,
        Some("map") => Label::Map,
        _ => return Err("bad label".into()),
    };
    if label == Label::Map && get(6)?.as_str() != Some("string") {
        return Err("map keys must be strings".into());
    }
    let go = get(5)?.as_str().ok_or("bad go shape")?;
    let (shape, omitempty) = match go.split_once(',') {
        Some((s, "omitempty")) => (s, true),
        None => (go, false),
        _ => return Err("bad go shape".into()),
    };
    let shape = match shape {
        "value" => Shape::Value,
        "pointer" => Shape::Pointer,
        "struct" => Shape::Struct,
        "slice" => Shape::Slice,
        "map" => Shape::Map,
        "inline" if kind == Kind::Message && label == Label::Optional => Shape::Inline,
        _ => return Err("bad go shape".into()),
    };
    Ok(Field {
        tag,
        json,
        kind,
        message,
        label,
        shape,
        omitempty,
    })
}

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();

/// The schema embedded at build time, parsed on first use.
pub(super) fn get() -> Result<&'static Schema, ProtobufError> {
    SCHEMA
        .get_or_init(|| Schema::parse(include_str!("schema.json")))
        .as_ref()
        .map_err(|e| ProtobufError::Schema(e.clone()))
}
