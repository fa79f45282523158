//! Schema-driven decoding of messages into Kubernetes JSON.

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{Field, Kind, Label, Schema, Shape, Special};
use super::wire::{FIXED32, FIXED64, LEN, Reader, VARINT, Wire};
use super::{MAX_DEPTH, MEDIA_TYPE, ProtobufError};

const MAGIC: &[u8] = b"k8s\0";
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";

/// Decodes magic + `runtime.Unknown` at absolute offset `base`.
pub(super) fn envelope(
    schema: &Schema,
    body: &[u8],
    base: usize,
    depth: usize,
) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::BadMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: (&[u8], usize) = (&[], base + MAGIC.len());
    let mut encoding = String::new();
    let mut content_type = String::new();
    let mut r = Reader::new(rest, base + MAGIC.len());
    while let Some((n, w, at)) = r.field()? {
        match n {
            1 => {
                let (b, off) = len(UNKNOWN, n, w, at)?;
                let mut tm = Reader::new(b, off);
                while let Some((n, w, at)) = tm.field()? {
                    match n {
                        1 => api_version = string(len(TYPE_META, n, w, at)?.0),
                        2 => kind = string(len(TYPE_META, n, w, at)?.0),
                        _ => {}
                    }
                }
            }
            2 => raw = len(UNKNOWN, n, w, at)?,
            3 => encoding = string(len(UNKNOWN, n, w, at)?.0),
            4 => content_type = string(len(UNKNOWN, n, w, at)?.0),
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(encoding));
    }
    if kind.is_empty() || api_version.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let object = match media.as_str() {
        "" | MEDIA_TYPE => {
            let idx = super::message_name(&api_version, &kind)
                .and_then(|name| schema.index(&name))
                .ok_or_else(|| ProtobufError::UnknownKind {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                })?;
            message(schema, idx, raw.0, raw.1, depth + 1)?
        }
        "application/json" => {
            serde_json::from_slice(raw.0).map_err(|source| ProtobufError::RawNotJson {
                message: UNKNOWN.to_string(),
                source,
            })?
        }
        _ => return Err(ProtobufError::UnsupportedContentType(content_type)),
    };
    // Go prints TypeMeta (kind, then apiVersion) before the object's own fields.
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind));
    out.insert("apiVersion".into(), Value::String(api_version));
    if let Value::Object(fields) = object {
        for (k, v) in fields {
            if k != "kind" && k != "apiVersion" {
                out.insert(k, v);
            }
        }
    }
    Ok(Value::Object(out))
}

/// What was seen on the wire for one field.
enum Slot<'a> {
    Absent,
    Scalar(Value),
    /// Occurrences of a singular message field; several are merged, as protobuf says.
    Message(Vec<(&'a [u8], usize)>),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

/// Decodes message `idx` from `data` (absolute offset `base`).
pub(super) fn message(
    schema: &Schema,
    idx: usize,
    data: &[u8],
    base: usize,
    depth: usize,
) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep { limit: MAX_DEPTH });
    }
    let msg = schema
        .messages
        .get(idx)
        .ok_or_else(|| ProtobufError::Schema(format!("message index {idx}")))?;
    if let Some(special) = msg.special {
        return decode_special(schema, &msg.name, special, data, base, depth);
    }
    let mut slots: Vec<Slot<'_>> = msg.fields.iter().map(|_| Slot::Absent).collect();
    let mut r = Reader::new(data, base);
    while let Some((n, w, at)) = r.field()? {
        let Some(&fi) = msg.by_tag.get(&n) else {
            continue; // unknown field: newer client, skip it
        };
        let f = &msg.fields[fi];
        let slot = &mut slots[fi];
        match f.label {
            Label::Optional if f.kind == Kind::Message => {
                let chunk = len(&msg.name, n, w, at)?;
                match slot {
                    Slot::Message(chunks) => chunks.push(chunk),
                    _ => *slot = Slot::Message(vec![chunk]),
                }
            }
            Label::Optional => *slot = Slot::Scalar(scalar(&msg.name, f, w, at)?),
            Label::Repeated => {
                if !matches!(slot, Slot::List(_)) {
                    *slot = Slot::List(Vec::new());
                }
                let Slot::List(list) = slot else { continue };
                match (f.kind, w) {
                    (Kind::Message, _) => {
                        let (b, off) = len(&msg.name, n, w, at)?;
                        list.push(message(schema, type_of(f)?, b, off, depth + 1)?);
                    }
                    (Kind::String | Kind::Bytes, _) => list.push(scalar(&msg.name, f, w, at)?),
                    (_, Wire::Len(b, off)) => packed(&msg.name, f, b, off, list)?,
                    _ => list.push(scalar(&msg.name, f, w, at)?),
                }
            }
            Label::Map => {
                let (b, off) = len(&msg.name, n, w, at)?;
                let (k, v) = entry(schema, &msg.name, f, b, off, depth)?;
                if !matches!(slot, Slot::Map(_)) {
                    *slot = Slot::Map(Map::new());
                }
                if let Slot::Map(m) = slot {
                    m.insert(k, v);
                }
            }
        }
    }

    let mut out = Map::new();
    for (f, slot) in msg.fields.iter().zip(slots) {
        let present = match slot {
            Slot::Absent => None,
            Slot::Scalar(v) => Some(v),
            Slot::Message(chunks) => Some(merged(schema, f, &chunks, depth)?),
            Slot::List(l) => Some(Value::Array(l)),
            Slot::Map(m) => Some(Value::Object(m)),
        };
        if f.shape == Shape::Inline {
            let v = match present {
                Some(v) => v,
                None => message(schema, type_of(f)?, &[], 0, depth + 1)?,
            };
            if let Value::Object(m) = v {
                out.extend(m);
            }
            continue;
        }
        let value = match present {
            Some(v) if omitted(f, &v) => None,
            Some(v) => Some(v),
            None => absent(schema, f, depth)?,
        };
        if let Some(v) = value {
            out.insert(f.json.clone(), v);
        }
    }
    Ok(Value::Object(out))
}

/// Whether Go's `omitempty` drops a value that was sent.
fn omitted(f: &Field, v: &Value) -> bool {
    if !f.omitempty {
        return false;
    }
    match f.shape {
        Shape::Value => is_zero(v),
        Shape::Slice | Shape::Map => match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(), // []byte
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        },
        Shape::Pointer | Shape::Struct | Shape::Inline => false,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// What Go prints for a field the body did not carry (its zero value).
fn absent(schema: &Schema, f: &Field, depth: usize) -> Result<Option<Value>, ProtobufError> {
    Ok(match f.shape {
        Shape::Struct if f.kind == Kind::Message => {
            Some(message(schema, type_of(f)?, &[], 0, depth + 1)?)
        }
        _ if f.omitempty => None,
        Shape::Value | Shape::Struct => Some(match f.kind {
            Kind::String => Value::String(String::new()),
            Kind::Bool => Value::Bool(false),
            Kind::Bytes | Kind::Message => Value::Null,
            _ => Value::from(0),
        }),
        Shape::Pointer | Shape::Slice | Shape::Map | Shape::Inline => Some(Value::Null),
    })
}

fn type_of(f: &Field) -> Result<usize, ProtobufError> {
    f.message
        .ok_or_else(|| ProtobufError::Schema(format!("field {} has no message type", f.tag)))
}

fn merged(
    schema: &Schema,
    f: &Field,
    chunks: &[(&[u8], usize)],
    depth: usize,
) -> Result<Value, ProtobufError> {
    let idx = type_of(f)?;
    match chunks {
        [(b, off)] => message(schema, idx, b, *off, depth + 1),
        _ => {
            let joined: Vec<u8> = chunks.iter().flat_map(|(b, _)| b.iter().copied()).collect();
            let off = chunks.first().map_or(0, |c| c.1);
            message(schema, idx, &joined, off, depth + 1)
        }
    }
}

/// One `map<string, V>` entry: key = 1, value = 2.
fn entry(
    schema: &Schema,
    message_name: &str,
    f: &Field,
    data: &[u8],
    base: usize,
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let entry_name = format!("{message_name}.{}Entry", f.json);
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(data, base);
    while let Some((n, w, at)) = r.field()? {
        match n {
            1 => key = string(len(&entry_name, n, w, at)?.0),
            2 if f.kind == Kind::Message => {
                let (b, off) = len(&entry_name, n, w, at)?;
                value = Some(message(schema, type_of(f)?, b, off, depth + 1)?);
            }
            2 => value = Some(scalar(&entry_name, f, w, at)?),
            _ => {}
        }
    }
    let value = match value {
        Some(v) => v,
        None => match f.kind {
            Kind::Message => message(schema, type_of(f)?, &[], 0, depth + 1)?,
            Kind::String | Kind::Bytes => Value::String(String::new()),
            Kind::Bool => Value::Bool(false),
            _ => Value::from(0),
        },
    };
    Ok((key, value))
}

fn expected_wire(kind: Kind) -> u8 {
    match kind {
        Kind::String | Kind::Bytes | Kind::Message => LEN,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => FIXED64,
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => FIXED32,
        Kind::Bool
        | Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64 => VARINT,
    }
}

fn wrong(message: &str, field: u32, expected: u8, w: Wire<'_>, at: usize) -> ProtobufError {
    ProtobufError::WrongWireType {
        message: message.to_string(),
        field,
        expected,
        got: w.wire_type(),
        offset: at,
    }
}

fn len<'a>(
    message: &str,
    field: u32,
    w: Wire<'a>,
    at: usize,
) -> Result<(&'a [u8], usize), ProtobufError> {
    match w {
        Wire::Len(b, off) => Ok((b, off)),
        _ => Err(wrong(message, field, LEN, w, at)),
    }
}

fn string(b: &[u8]) -> String {
    // Go strings may hold any bytes; encoding/json prints invalid UTF-8 as U+FFFD.
    String::from_utf8_lossy(b).into_owned()
}

fn float(message: &str, field: u32, x: f64) -> Result<Value, ProtobufError> {
    if !x.is_finite() {
        return Err(ProtobufError::NonFinite {
            message: message.to_string(),
            field,
        });
    }
    // Go prints 2.0 as 2.
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return Ok(Value::from(x as i64));
    }
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or(ProtobufError::NonFinite {
            message: message.to_string(),
            field,
        })
}

/// A singular scalar of `f.kind`.
fn scalar(message: &str, f: &Field, w: Wire<'_>, at: usize) -> Result<Value, ProtobufError> {
    Ok(match (f.kind, w) {
        (Kind::String, Wire::Len(b, _)) => Value::String(string(b)),
        (Kind::Bytes, Wire::Len(b, _)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        (Kind::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Kind::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Kind::Uint32, Wire::Varint(v)) => Value::from(v as u32),
        (Kind::Uint64, Wire::Varint(v)) => Value::from(v),
        (Kind::Sint32, Wire::Varint(v)) => Value::from(((v >> 1) as i32) ^ -((v & 1) as i32)),
        (Kind::Sint64, Wire::Varint(v)) => Value::from(((v >> 1) as i64) ^ -((v & 1) as i64)),
        (Kind::Fixed32, Wire::Fixed32(v)) => Value::from(v),
        (Kind::Sfixed32, Wire::Fixed32(v)) => Value::from(v as i32),
        (Kind::Float, Wire::Fixed32(v)) => float(message, f.tag, f64::from(f32::from_bits(v)))?,
        (Kind::Fixed64, Wire::Fixed64(v)) => Value::from(v),
        (Kind::Sfixed64, Wire::Fixed64(v)) => Value::from(v as i64),
        (Kind::Double, Wire::Fixed64(v)) => float(message, f.tag, f64::from_bits(v))?,
        _ => return Err(wrong(message, f.tag, expected_wire(f.kind), w, at)),
    })
}

/// A packed run of numbers or bools.
fn packed(
    message: &str,
    f: &Field,
    data: &[u8],
    base: usize,
    out: &mut Vec<Value>,
) -> Result<(), ProtobufError> {
    let mut r = Reader::new(data, base);
    while !r.at_end() {
        let at = r.offset();
        let w = match expected_wire(f.kind) {
            VARINT => Wire::Varint(r.varint("a packed varint")?),
            FIXED32 => Wire::Fixed32(u32::from_le_bytes(r.fixed::<4>("a packed 32-bit value")?)),
            FIXED64 => Wire::Fixed64(u64::from_le_bytes(r.fixed::<8>("a packed 64-bit value")?)),
            _ => {
                return Err(wrong(
                    message,
                    f.tag,
                    expected_wire(f.kind),
                    Wire::Len(data, base),
                    at,
                ));
            }
        };
        out.push(scalar(message, f, w, at)?);
    }
    Ok(())
}

/// Reads the singular fields of a small special message: `(field, value, offset)`.
fn fields<'a>(data: &'a [u8], base: usize) -> Result<Vec<(u32, Wire<'a>, usize)>, ProtobufError> {
    let mut out = Vec::new();
    let mut r = Reader::new(data, base);
    while let Some(f) = r.field()? {
        out.push(f);
    }
    Ok(out)
}

fn varint_of(message: &str, n: u32, w: Wire<'_>, at: usize) -> Result<u64, ProtobufError> {
    match w {
        Wire::Varint(v) => Ok(v),
        _ => Err(wrong(message, n, VARINT, w, at)),
    }
}

fn decode_special(
    schema: &Schema,
    name: &str,
    special: Special,
    data: &[u8],
    base: usize,
    depth: usize,
) -> Result<Value, ProtobufError> {
    let fs = fields(data, base)?;
    Ok(match special {
        Special::Time | Special::MicroTime => {
            // Go writes a zero time as an empty message, printed as null.
            if data.is_empty() {
                return Ok(Value::Null);
            }
            let (mut seconds, mut nanos) = (0i64, 0i64);
            for (n, w, at) in fs {
                match n {
                    1 => seconds = varint_of(name, n, w, at)? as i64,
                    2 => nanos = i64::from(varint_of(name, n, w, at)? as i32),
                    _ => {}
                }
            }
            time(name, seconds, nanos, special == Special::MicroTime)?
        }
        Special::Duration => {
            let mut ns = 0i64;
            for (n, w, at) in fs {
                if n == 1 {
                    ns = varint_of(name, n, w, at)? as i64;
                }
            }
            Value::String(go_duration(ns))
        }
        Special::Quantity => {
            let mut s = None;
            for (n, w, at) in fs {
                if n == 1 {
                    s = Some(string(len(name, n, w, at)?.0));
                }
            }
            Value::String(s.unwrap_or_else(|| "0".to_string()))
        }
        Special::IntOrString => {
            let (mut ty, mut int_val, mut str_val) = (0u64, 0i32, String::new());
            for (n, w, at) in fs {
                match n {
                    1 => ty = varint_of(name, n, w, at)?,
                    2 => int_val = varint_of(name, n, w, at)? as i32,
                    3 => str_val = string(len(name, n, w, at)?.0),
                    _ => {}
                }
            }
            if ty == 1 {
                Value::String(str_val)
            } else {
                Value::from(int_val)
            }
        }
        Special::RawExtension | Special::FieldsV1 => {
            let mut raw: Option<(&[u8], usize)> = None;
            for (n, w, at) in fs {
                if n == 1 {
                    raw = Some(len(name, n, w, at)?);
                }
            }
            match raw {
                None => Value::Null,
                Some(([], _)) => Value::Null,
                Some((b, off)) if special == Special::RawExtension && b.starts_with(MAGIC) => {
                    envelope(schema, b, off, depth + 1)?
                }
                Some((b, _)) => {
                    serde_json::from_slice(b).map_err(|source| ProtobufError::RawNotJson {
                        message: name.to_string(),
                        source,
                    })?
                }
            }
        }
        Special::Array => {
            let mut items = Vec::new();
            for (n, w, at) in fs {
                if n == 1 {
                    items.push(Value::String(string(len(name, n, w, at)?.0)));
                }
            }
            Value::Array(items)
        }
    })
}

/// `meta/v1.Time` prints RFC 3339 in seconds, `MicroTime` with 6 fractional digits, both UTC.
fn time(name: &str, seconds: i64, nanos: i64, micro: bool) -> Result<Value, ProtobufError> {
    const GO_ZERO_TIME: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z, Go's zero time
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Ok(Value::Null);
    }
    let bad = || ProtobufError::BadTime {
        message: name.to_string(),
        seconds,
        nanos,
    };
    let secs = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(bad)?;
    let ns = u32::try_from(nanos.rem_euclid(1_000_000_000)).map_err(|_| bad())?;
    let t = chrono::DateTime::from_timestamp(secs, ns).ok_or_else(bad)?;
    if !(0..=9999).contains(&chrono::Datelike::year(&t)) {
        return Err(bad());
    }
    let fmt = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Value::String(t.format(fmt).to_string()))
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1.5s`, `300ms`, `0s`.
pub(super) fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    // The fraction of v / 10^prec without trailing zeros, with its dot.
    let frac = |v: u64, prec: usize| {
        let digits = format!("{v:0prec$}");
        let digits = digits.trim_end_matches('0');
        if digits.is_empty() {
            String::new()
        } else {
            format!(".{digits}")
        }
    };
    if u < 1_000_000_000 {
        let (unit, prec, div) = if u < 1_000 {
            ("ns", 0, 1)
        } else if u < 1_000_000 {
            ("µs", 3, 1_000)
        } else {
            ("ms", 6, 1_000_000)
        };
        let f = if prec == 0 {
            String::new()
        } else {
            frac(u % div, prec)
        };
        return format!("{sign}{}{f}{unit}", u / div);
    }
    let f = frac(u % 1_000_000_000, 9);
    let secs = u / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}{f}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}{f}s")
    } else {
        format!("{sign}{s}{f}s")
    }
}
