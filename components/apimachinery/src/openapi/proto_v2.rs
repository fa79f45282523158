//! `/openapi/v2` as protobuf: the Swagger 2.0 document encoded as gnostic's `openapi.v2.Document`
//! (`application/com.github.proto-openapi.spec.v2.v1.0+protobuf`), the only form client-go's
//! `OpenAPISchema()` asks for. kubectl 1.27 and 1.28 load it before every `apply`, `create`
//! and `explain` (client-side validation is built from it), so without it they fail with
//! `failed to download openapi`.
//!
//! Field numbers follow gnostic's `openapiv2/OpenAPIv2.proto`. Only what kadm's documents
//! contain is encoded: info, paths (operations, body/query/path parameters, responses),
//! definitions (refs, types, formats, descriptions, required, properties, items,
//! additionalProperties, allOf) and the security definitions; `x-*` keys become vendor
//! extensions whose `Any.yaml` holds the value as YAML, as gnostic does.

use serde_json::{Map, Value};

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    /// A string field; proto3 leaves empty strings out.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }
    fn opt_string(&mut self, field: u32, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.string(field, s);
        }
    }
    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }
    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }
    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
    fn strings(&mut self, field: u32, v: Option<&Value>) {
        for s in v.and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = s.as_str() {
                self.bytes(field, s.as_bytes());
            }
        }
    }
}

fn build(f: impl FnOnce(&mut Msg)) -> Msg {
    let mut m = Msg::default();
    f(&mut m);
    m
}

/// `Any{yaml}`: the value as YAML (what gnostic keeps for extensions and defaults).
fn any(v: &Value) -> Msg {
    build(|m| m.string(2, serde_yaml::to_string(v).unwrap_or_default().as_str()))
}

/// `NamedAny` vendor extensions for every `x-` key of `obj`.
fn extensions(m: &mut Msg, field: u32, obj: &Map<String, Value>) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        m.message(
            field,
            build(|n| {
                n.string(1, k);
                n.message(2, any(v));
            }),
        );
    }
}

fn schema(v: &Value) -> Msg {
    build(|m| {
        let Some(o) = v.as_object() else {
            return;
        };
        m.opt_string(1, o.get("$ref"));
        m.opt_string(2, o.get("format"));
        m.opt_string(3, o.get("title"));
        m.opt_string(4, o.get("description"));
        if let Some(d) = o.get("default") {
            m.message(5, any(d));
        }
        m.double(7, o.get("maximum").and_then(Value::as_f64).unwrap_or(0.0));
        m.double(9, o.get("minimum").and_then(Value::as_f64).unwrap_or(0.0));
        m.int64(11, o.get("maxLength").and_then(Value::as_i64).unwrap_or(0));
        m.int64(12, o.get("minLength").and_then(Value::as_i64).unwrap_or(0));
        m.opt_string(13, o.get("pattern"));
        m.int64(14, o.get("maxItems").and_then(Value::as_i64).unwrap_or(0));
        m.int64(15, o.get("minItems").and_then(Value::as_i64).unwrap_or(0));
        m.boolean(
            16,
            o.get("uniqueItems").and_then(Value::as_bool) == Some(true),
        );
        m.strings(19, o.get("required"));
        for e in o
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(20, any(e));
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => m.message(
                21,
                build(|a| {
                    a.key(2, 0);
                    a.varint(u64::from(*b));
                }),
            ),
            Some(s @ Value::Object(_)) => m.message(21, build(|a| a.message(1, schema(s)))),
            _ => {}
        }
        match o.get("type") {
            Some(Value::String(t)) => m.message(22, build(|ty| ty.string(1, t))),
            Some(Value::Array(ts)) => m.message(
                22,
                build(|ty| {
                    for t in ts.iter().filter_map(Value::as_str) {
                        ty.bytes(1, t.as_bytes());
                    }
                }),
            ),
            _ => {}
        }
        match o.get("items") {
            Some(s @ Value::Object(_)) => m.message(23, build(|i| i.message(1, schema(s)))),
            Some(Value::Array(list)) => m.message(
                23,
                build(|i| {
                    for s in list {
                        i.message(1, schema(s));
                    }
                }),
            ),
            _ => {}
        }
        for s in o
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(24, schema(s));
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            m.message(
                25,
                build(|p| {
                    for (name, s) in props {
                        p.message(
                            1,
                            build(|n| {
                                n.string(1, name);
                                n.message(2, schema(s));
                            }),
                        );
                    }
                }),
            );
        }
        m.boolean(27, o.get("readOnly").and_then(Value::as_bool) == Some(true));
        extensions(m, 31, o);
    })
}

fn parameter(p: &Value) -> Msg {
    // ParametersItem{ parameter = 1 } / { json_reference = 2 }
    build(|item| {
        let Some(o) = p.as_object() else {
            return;
        };
        if let Some(r) = o.get("$ref").and_then(Value::as_str) {
            item.message(2, build(|j| j.string(1, r)));
            return;
        }
        let location = o.get("in").and_then(Value::as_str).unwrap_or("");
        let required = o.get("required").and_then(Value::as_bool) == Some(true);
        let param = if location == "body" {
            // Parameter{ body_parameter = 1 }
            build(|pm| {
                pm.message(
                    1,
                    build(|b| {
                        b.opt_string(1, o.get("description"));
                        b.opt_string(2, o.get("name"));
                        b.string(3, location);
                        b.boolean(4, required);
                        if let Some(s) = o.get("schema") {
                            b.message(5, schema(s));
                        }
                        extensions(b, 6, o);
                    }),
                );
            })
        } else {
            // Parameter{ non_body_parameter = 2 }: query (3) or path (4) sub-schema.
            let (which, ty_field, unique_field, ext_field) = match location {
                "path" => (4, 5, 19, 22),
                "header" => (1, 5, 19, 22),
                _ => (3, 6, 20, 23),
            };
            build(|pm| {
                pm.message(
                    2,
                    build(|nb| {
                        nb.message(
                            which,
                            build(|s| {
                                s.boolean(1, required);
                                s.string(2, location);
                                s.opt_string(3, o.get("description"));
                                s.opt_string(4, o.get("name"));
                                s.opt_string(ty_field, o.get("type"));
                                s.boolean(
                                    unique_field,
                                    o.get("uniqueItems").and_then(Value::as_bool) == Some(true),
                                );
                                extensions(s, ext_field, o);
                            }),
                        );
                    }),
                );
            })
        };
        item.message(1, param);
    })
}

fn operation(op: &Value) -> Msg {
    build(|m| {
        let Some(o) = op.as_object() else {
            return;
        };
        m.strings(1, o.get("tags"));
        m.opt_string(2, o.get("summary"));
        m.opt_string(3, o.get("description"));
        m.opt_string(5, o.get("operationId"));
        m.strings(6, o.get("produces"));
        m.strings(7, o.get("consumes"));
        for p in o
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(8, parameter(p));
        }
        if let Some(responses) = o.get("responses").and_then(Value::as_object) {
            m.message(
                9,
                build(|rs| {
                    for (code, r) in responses {
                        rs.message(
                            1,
                            build(|named| {
                                named.string(1, code);
                                // ResponseValue{ response = 1 }
                                named.message(
                                    2,
                                    build(|rv| {
                                        rv.message(
                                            1,
                                            build(|resp| {
                                                resp.opt_string(1, r.get("description"));
                                                if let Some(s) = r.get("schema") {
                                                    // SchemaItem{ schema = 1 }
                                                    resp.message(
                                                        2,
                                                        build(|si| si.message(1, schema(s))),
                                                    );
                                                }
                                            }),
                                        );
                                    }),
                                );
                            }),
                        );
                    }
                }),
            );
        }
        m.strings(10, o.get("schemes"));
        m.boolean(
            11,
            o.get("deprecated").and_then(Value::as_bool) == Some(true),
        );
        extensions(m, 13, o);
    })
}

fn path_item(item: &Value) -> Msg {
    build(|m| {
        let Some(o) = item.as_object() else {
            return;
        };
        for (field, method) in [
            (2, "get"),
            (3, "put"),
            (4, "post"),
            (5, "delete"),
            (6, "options"),
            (7, "head"),
            (8, "patch"),
        ] {
            if let Some(op) = o.get(method) {
                m.message(field, operation(op));
            }
        }
        for p in o
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(9, parameter(p));
        }
        extensions(m, 10, o);
    })
}

/// Encodes a Swagger 2.0 document (as [`super::v2_document`] builds it) as gnostic's
/// `openapi.v2.Document`.
pub fn encode_v2(doc: &Value) -> Vec<u8> {
    let d = build(|m| {
        let Some(o) = doc.as_object() else {
            return;
        };
        m.opt_string(1, o.get("swagger"));
        if let Some(info) = o.get("info") {
            m.message(
                2,
                build(|i| {
                    i.opt_string(1, info.get("title"));
                    i.opt_string(2, info.get("version"));
                    i.opt_string(3, info.get("description"));
                }),
            );
        }
        m.opt_string(3, o.get("host"));
        m.opt_string(4, o.get("basePath"));
        m.strings(5, o.get("schemes"));
        m.strings(6, o.get("consumes"));
        m.strings(7, o.get("produces"));
        if let Some(paths) = o.get("paths").and_then(Value::as_object) {
            m.message(
                8,
                build(|ps| {
                    for (p, item) in paths {
                        ps.message(
                            2,
                            build(|n| {
                                n.string(1, p);
                                n.message(2, path_item(item));
                            }),
                        );
                    }
                }),
            );
        }
        if let Some(defs) = o.get("definitions").and_then(Value::as_object) {
            m.message(
                9,
                build(|ds| {
                    for (name, s) in defs {
                        ds.message(
                            1,
                            build(|n| {
                                n.string(1, name);
                                n.message(2, schema(s));
                            }),
                        );
                    }
                }),
            );
        }
        for req in o
            .get("security")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            m.message(
                12,
                build(|sr| {
                    for (name, scopes) in req.as_object().into_iter().flatten() {
                        sr.message(
                            1,
                            build(|n| {
                                n.string(1, name);
                                n.message(2, build(|a| a.strings(1, Some(scopes))));
                            }),
                        );
                    }
                }),
            );
        }
        if let Some(defs) = o.get("securityDefinitions").and_then(Value::as_object) {
            m.message(
                13,
                build(|sd| {
                    for (name, def) in defs {
                        sd.message(
                            1,
                            build(|n| {
                                n.string(1, name);
                                // SecurityDefinitionsItem{ api_key_security = 2 }
                                n.message(
                                    2,
                                    build(|item| {
                                        item.message(
                                            2,
                                            build(|k| {
                                                k.opt_string(1, def.get("type"));
                                                k.opt_string(2, def.get("name"));
                                                k.opt_string(3, def.get("in"));
                                                k.opt_string(4, def.get("description"));
                                            }),
                                        );
                                    }),
                                );
                            }),
                        );
                    }
                }),
            );
        }
        if let Some(obj) = doc.as_object() {
            extensions(m, 16, obj);
        }
    });
    d.0
}
