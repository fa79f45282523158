//! Building HTTP responses: JSON bodies, `Status` errors, and content negotiation.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use kadm_apimachinery::ApiError;
use serde_json::Value;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// How the client wants objects rendered, from its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`
    Table,
}

/// Picks the first acceptable media type in the client's order; `None` when only
/// types kadm cannot produce (protobuf) are acceptable.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = "";
        let mut g = "";
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = v.trim(),
                    "g" => g = v.trim(),
                    _ => {}
                }
            }
        }
        match (media.as_str(), as_) {
            ("application/json", "Table") if g == "meta.k8s.io" => return Some(Format::Table),
            ("application/json" | "*/*" | "application/*", "") => return Some(Format::Json),
            ("application/yaml", "") => return Some(Format::Yaml),
            _ => {}
        }
    }
    None
}

pub fn object(code: StatusCode, value: &Value, format: Format) -> Response<Body> {
    let (bytes, ct) = match format {
        Format::Yaml => (
            serde_yaml::to_string(value)
                .unwrap_or_default()
                .into_bytes(),
            "application/yaml",
        ),
        _ => (
            serde_json::to_vec(value).unwrap_or_default(),
            "application/json",
        ),
    };
    let mut r = Response::new(full(bytes));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

pub fn json(code: StatusCode, value: &Value) -> Response<Body> {
    object(code, value, Format::Json)
}

pub fn error(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json(code, &e.to_status());
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

pub fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(body.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_accept_header_asks_for_table() {
        let a = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(a)), Some(Format::Table));
    }

    #[test]
    fn protobuf_only_is_not_acceptable_but_fallback_is_used() {
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf")), None);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*")),
            Some(Format::Json)
        );
        assert_eq!(negotiate(None), Some(Format::Json));
        assert_eq!(negotiate(Some("application/yaml")), Some(Format::Yaml));
    }
}
