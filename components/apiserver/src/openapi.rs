//! `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<path>`, served as kube-apiserver serves them
//! (kube-openapi's handlers): the documents are built once from
//! [`kadm_apimachinery::openapi`] and kept as bytes with their hashes.
//!
//! - `/openapi/v2`: Swagger 2.0, as JSON or — what client-go's `OpenAPISchema()` asks for
//!   (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) — as gnostic
//!   protobuf (`application/com.github.proto-openapi.spec.v2.v1.0+protobuf`). kubectl 1.27 and
//!   1.28 load it before every `apply`, `create` and `explain`; client-go has no fallback to
//!   JSON (a 406 makes it try the pre-1.10 `/swagger-2.0.0.pb-v1`, a JSON body fails to
//!   unmarshal), so both encodings are served. An Accept with neither is 406.
//! - `/openapi/v3`: `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<H>"}}}`
//!   where `<H>` is the upper-case hex SHA-512 of the document's bytes.
//! - `/openapi/v3/<path>`: the document as JSON, with `ETag: "<H>"`. With `?hash=<H>` the
//!   answer is immutable (`Cache-Control: public, immutable`, `Expires` a year ahead,
//!   `Vary: Accept`); a stale hash is a 301 to the current URL. `If-None-Match` with the
//!   current ETag is a 304 everywhere.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use kadm_apimachinery::{ApiError, Reason, openapi, registry};

use crate::request::Query;
use crate::response::{self, Body};

/// One document, serialized once.
struct Doc {
    bytes: Bytes,
    hash: String,
    content_type: &'static str,
}

impl Doc {
    fn new(value: &serde_json::Value) -> Doc {
        Doc::from_bytes(
            serde_json::to_vec(value).unwrap_or_default(),
            "application/json",
        )
    }
    fn from_bytes(bytes: Vec<u8>, content_type: &'static str) -> Doc {
        let hash = openapi::hash(&bytes);
        Doc {
            bytes: bytes.into(),
            hash,
            content_type,
        }
    }
}

struct Documents {
    v2: Doc,
    v2_proto: Doc,
    v3_root: Doc,
    v3: HashMap<String, Doc>,
}

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

fn documents() -> &'static Documents {
    DOCUMENTS.get_or_init(|| {
        let started = std::time::Instant::now();
        let mut v3 = HashMap::new();
        let mut entries = Vec::new();
        for path in openapi::v3_paths() {
            if let Some(doc) = openapi::v3_document(&path) {
                let d = Doc::new(&doc);
                entries.push((path.clone(), d.hash.clone()));
                v3.insert(path, d);
            }
        }
        let v2 = openapi::v2_document(registry::all());
        let docs = Documents {
            v2_proto: Doc::from_bytes(openapi::encode_v2(&v2), PROTO_V2_CONTENT_TYPE),
            v2: Doc::new(&v2),
            v3_root: Doc::new(&openapi::v3_root_from(&entries)),
            v3,
        };
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            v2_bytes = docs.v2.bytes.len(),
            "openapi documents built"
        );
        docs
    })
}

/// Builds the documents ahead of the first request (they take a moment).
pub fn warm() {
    documents();
}

/// Whether `path` is one of the OpenAPI endpoints.
pub fn is_openapi(path: &str) -> bool {
    path == "/openapi/v2" || path == "/openapi/v3" || path.starts_with("/openapi/v3/")
}

/// The protobuf media types of `/openapi/v2` (the first is what client-go asks for; both
/// are answered with the second, as kube-openapi does).
const PROTO_V2: &[&str] = &[
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];
const PROTO_V2_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Protobuf,
}

/// The first `Accept` clause (by quality, then order, as goautoneg sorts them) that names
/// JSON or one of `protobuf`; an empty header means `*/*` (JSON).
fn negotiate(headers: &HeaderMap, protobuf: &[&str]) -> Option<Encoding> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Some(Encoding::Json);
    }
    let mut clauses: Vec<(f32, String)> = accept
        .split(',')
        .map(|clause| {
            let mut parts = clause.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim() == "q")
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, media)
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0));
    clauses
        .into_iter()
        .find_map(|(_, media)| match media.as_str() {
            "application/json" | "application/*" | "*/*" => Some(Encoding::Json),
            m if protobuf.contains(&m) => Some(Encoding::Protobuf),
            _ => None,
        })
}

fn not_acceptable(headers: &HeaderMap) -> Response<Body> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut e = ApiError::not_acceptable(accept);
    e.message = if accept.contains("spec.v3") {
        format!("the OpenAPI v3 documents are served as application/json only (asked for {accept})")
    } else {
        format!(
            "the OpenAPI v2 document is served as application/json or {PROTO_V2_CONTENT_TYPE} (asked for {accept})"
        )
    };
    let mut r = response::error(&e);
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

fn not_found() -> Response<Body> {
    response::error(&ApiError::new(
        404,
        Reason::NotFound,
        "the server could not find the requested resource",
    ))
}

fn quoted(hash: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{hash}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// Whether `If-None-Match` names this ETag (or `*`).
fn not_modified(headers: &HeaderMap, hash: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == hash)
}

fn serve(
    doc: &Doc,
    headers: &HeaderMap,
    extra: &[(header::HeaderName, HeaderValue)],
) -> Response<Body> {
    let mut r = if not_modified(headers, &doc.hash) {
        let mut r = Response::new(response::full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(response::full(doc.bytes.clone()));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(doc.content_type),
        );
        r
    };
    r.headers_mut().insert(header::ETAG, quoted(&doc.hash));
    for (k, v) in extra {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

/// Answers an OpenAPI path (see the module docs).
pub fn handle(method: &Method, path: &str, query: &Query, headers: &HeaderMap) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return response::error(&ApiError::method_not_allowed());
    }
    let docs = documents();
    let vary = (header::VARY, HeaderValue::from_static("Accept"));
    match path {
        "/openapi/v2" => match negotiate(headers, PROTO_V2) {
            Some(Encoding::Json) => serve(&docs.v2, headers, &[vary]),
            Some(Encoding::Protobuf) => serve(&docs.v2_proto, headers, &[vary]),
            None => not_acceptable(headers),
        },
        "/openapi/v3" => serve(&docs.v3_root, headers, &[]),
        _ => {
            let Some(doc_path) = path.strip_prefix("/openapi/v3/") else {
                return not_found();
            };
            let Some(doc) = docs.v3.get(doc_path) else {
                return not_found();
            };
            if negotiate(headers, &[]) != Some(Encoding::Json) {
                return not_acceptable(headers);
            }
            match query.get("hash").filter(|h| !h.is_empty()) {
                None => serve(doc, headers, &[vary]),
                Some(h) if h != doc.hash => {
                    let mut r = Response::new(response::full(Bytes::new()));
                    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
                    if let Ok(v) =
                        HeaderValue::from_str(&format!("/openapi/v3/{doc_path}?hash={}", doc.hash))
                    {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    r.headers_mut().insert(header::ETAG, quoted(&doc.hash));
                    r
                }
                Some(_) => {
                    let expires = chrono::Utc::now()
                        .checked_add_months(chrono::Months::new(12))
                        .unwrap_or_else(chrono::Utc::now)
                        .format("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string();
                    let mut extra = vec![
                        vary,
                        (
                            header::CACHE_CONTROL,
                            HeaderValue::from_static("public, immutable"),
                        ),
                    ];
                    if let Ok(v) = HeaderValue::from_str(&expires) {
                        extra.push((header::EXPIRES, v));
                    }
                    serve(doc, headers, &extra)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header"),
            );
        }
        h
    }

    #[test]
    fn accept_negotiation_follows_quality_then_order() {
        let json = Some(Encoding::Json);
        let pb = Some(Encoding::Protobuf);
        let v2pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        assert_eq!(negotiate(&HeaderMap::new(), PROTO_V2), json);
        assert_eq!(
            negotiate(&headers(&[("accept", "application/json")]), PROTO_V2),
            json
        );
        assert_eq!(negotiate(&headers(&[("accept", v2pb)]), PROTO_V2), pb);
        let both = format!("*/*;q=0.5, {v2pb}");
        assert_eq!(negotiate(&headers(&[("accept", &both)]), PROTO_V2), pb);
        assert_eq!(
            negotiate(&headers(&[("accept", "application/json;q=0")]), PROTO_V2),
            None
        );
        let v3pb = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf";
        assert_eq!(negotiate(&headers(&[("accept", v3pb)]), &[]), None);
    }

    #[test]
    fn v2_is_served_as_protobuf_or_json() {
        let q = Query::parse(None);
        let v2pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        let r = handle(
            &Method::GET,
            "/openapi/v2",
            &q,
            &headers(&[("accept", v2pb)]),
        );
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROTO_V2_CONTENT_TYPE);
        let r = handle(&Method::GET, "/openapi/v2", &q, &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert!(r.headers().contains_key(header::ETAG));
        let r = handle(
            &Method::GET,
            "/openapi/v2",
            &q,
            &headers(&[("accept", "application/yaml")]),
        );
        assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn v3_hash_urls_are_immutable_and_stale_hashes_redirect() {
        let docs = documents();
        let doc = &docs.v3["apis/apps/v1"];
        let ok = handle(
            &Method::GET,
            "/openapi/v3/apis/apps/v1",
            &Query::parse(Some(&format!("hash={}", doc.hash))),
            &HeaderMap::new(),
        );
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CACHE_CONTROL], "public, immutable");
        assert!(ok.headers().contains_key(header::EXPIRES));
        assert_eq!(
            ok.headers()[header::ETAG].to_str().expect("etag"),
            format!("\"{}\"", doc.hash)
        );
        let stale = handle(
            &Method::GET,
            "/openapi/v3/apis/apps/v1",
            &Query::parse(Some("hash=ABC")),
            &HeaderMap::new(),
        );
        assert_eq!(stale.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            stale.headers()[header::LOCATION]
                .to_str()
                .expect("location"),
            format!("/openapi/v3/apis/apps/v1?hash={}", doc.hash)
        );
        let cached = handle(
            &Method::GET,
            "/openapi/v3/apis/apps/v1",
            &Query::parse(None),
            &headers(&[("if-none-match", &format!("\"{}\"", doc.hash))]),
        );
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        let missing = handle(
            &Method::GET,
            "/openapi/v3/apis/nope/v1",
            &Query::parse(None),
            &HeaderMap::new(),
        );
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn root_hashes_match_the_served_documents() {
        let docs = documents();
        let root: serde_json::Value =
            serde_json::from_slice(&docs.v3_root.bytes).expect("root json");
        let url = root["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .expect("api/v1 url");
        assert_eq!(
            url,
            format!("/openapi/v3/api/v1?hash={}", docs.v3["api/v1"].hash)
        );
        assert_eq!(
            openapi::hash(&docs.v3["api/v1"].bytes),
            docs.v3["api/v1"].hash
        );
    }
}
