//! Building HTTP responses: JSON bodies, `Status` errors, and content negotiation.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use kadm_apimachinery::ApiError;
use serde_json::Value;

pub use crate::partial::Partial;

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
    /// `as=PartialObjectMetadata` / `as=PartialObjectMetadataList` (`g=meta.k8s.io`,
    /// `v=v1` or `v1beta1`): metadata only.
    Partial(Partial),
}

impl Format {
    /// The encoding of the response body: YAML for YAML renderings, else JSON.
    pub fn encoding(self) -> Format {
        match self {
            Format::Yaml | Format::Partial(Partial { yaml: true, .. }) => Format::Yaml,
            _ => Format::Json,
        }
    }
}

/// One entry of an `Accept` header.
struct Clause<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f64,
    /// `as`, `g`, `v`: the conversion asked for, if any.
    convert: Option<(&'a str, &'a str, &'a str)>,
}

impl<'a> Clause<'a> {
    fn parse(part: &'a str) -> Option<Clause<'a>> {
        let mut params = part.split(';').map(str::trim);
        let media = params.next()?;
        // A lone `*` is `*/*`, as in Kubernetes' Accept parser.
        let (kind, subtype) = match media.split_once('/') {
            Some(ks) => ks,
            None if media == "*" => ("*", "*"),
            None => return None,
        };
        let mut q = 1.0;
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in params {
            let Some((key, value)) = p.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "q" => q = value.parse().unwrap_or(0.0),
                "as" => as_ = Some(value),
                "g" => g = Some(value),
                "v" => v = Some(value),
                _ => {}
            }
        }
        // Any of the three asks for a conversion; the missing ones are empty.
        let convert = (as_.is_some() || g.is_some() || v.is_some())
            .then(|| (as_.unwrap_or(""), g.unwrap_or(""), v.unwrap_or("")));
        Some(Clause {
            kind: kind.trim(),
            subtype: subtype.trim(),
            q,
            convert,
        })
    }

    /// Kubernetes' preference (`goautoneg`): higher `q` first, then a specific type
    /// before a wildcard; lower is preferred, ties keep the client's order.
    fn rank(&self) -> (u16, bool, bool) {
        let q = (self.q.clamp(0.0, 1.0) * 1000.0).round() as u16;
        (1000 - q, self.kind == "*", self.subtype == "*")
    }

    /// What kadm renders for this entry, if it can: JSON for `application/json` and the
    /// wildcards, YAML, and the meta.k8s.io conversions Kubernetes offers every resource
    /// (Tables in JSON; metadata in JSON or YAML). Protobuf is not produced.
    fn format(&self) -> Option<Format> {
        let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let encoding = if self.kind == "*" && self.subtype == "*" {
            Format::Json
        } else if !is(self.kind, "application") {
            return None;
        } else if is(self.subtype, "json") || self.subtype == "*" {
            Format::Json
        } else if is(self.subtype, "yaml") {
            Format::Yaml
        } else {
            return None;
        };
        let Some((kind, group, version)) = self.convert else {
            return Some(encoding);
        };
        let v1beta1 = match (group, version) {
            ("meta.k8s.io", "v1") => false,
            ("meta.k8s.io", "v1beta1") => true,
            _ => return None,
        };
        let yaml = encoding == Format::Yaml;
        match kind {
            "Table" if !yaml => Some(Format::Table),
            "PartialObjectMetadata" | "PartialObjectMetadataList" => {
                Some(Format::Partial(Partial {
                    list: kind == "PartialObjectMetadataList",
                    v1beta1,
                    yaml,
                }))
            }
            _ => None,
        }
    }
}

/// Picks the first media type kadm can produce, in the order Kubernetes tries them
/// (descending `q`, a specific type before a wildcard, else the client's order); `None`
/// when only types kadm cannot produce (protobuf) are acceptable. As in Kubernetes, the
/// kind of a conversion is not checked against the verb here (see [`Partial::check`]).
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    const FIRST_CHOICE: (u16, bool, bool) = (0, false, false);
    let mut best: Option<((u16, bool, bool), Format)> = None;
    for clause in accept.split(',').filter_map(Clause::parse) {
        let Some(format) = clause.format() else {
            continue;
        };
        let rank = clause.rank();
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, format));
        }
        if rank == FIRST_CHOICE {
            // Nothing after it can be preferred.
            break;
        }
    }
    best.map(|(_, format)| format)
}

pub fn object(code: StatusCode, value: &Value, format: Format) -> Response<Body> {
    let (bytes, ct) = match format.encoding() {
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

    fn partial(list: bool, v1beta1: bool, yaml: bool) -> Option<Format> {
        Some(Format::Partial(Partial {
            list,
            v1beta1,
            yaml,
        }))
    }

    #[test]
    fn metadata_clients_get_partial_object_metadata() {
        // kube-rs' get/watch and list headers.
        let get = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(get)), partial(false, false, false));
        let list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(list)), partial(true, false, false));
        // client-go's metadata client: protobuf first, which kadm skips.
        let client_go = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(negotiate(Some(client_go)), partial(true, false, false));
        let beta = "application/json;v=v1beta1;g=meta.k8s.io;as=PartialObjectMetadata";
        assert_eq!(negotiate(Some(beta)), partial(false, true, false));
        let yaml = "application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(yaml)), partial(false, false, true));
        let wildcard = "*/*;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(wildcard)), partial(true, false, false));
    }

    #[test]
    fn conversions_kadm_cannot_serve_fall_back_to_the_next_entry() {
        // Unknown meta version, wrong group, missing version, unknown kind: each skipped.
        for skipped in [
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            "application/json;as=PartialObjectMetadata;g=apps;v=v1",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io",
            "application/json;as=Pod;g=meta.k8s.io;v=v1",
            "application/json;g=meta.k8s.io;v=v1",
            "application/yaml;as=Table;g=meta.k8s.io;v=v1",
        ] {
            assert_eq!(negotiate(Some(skipped)), None, "{skipped}");
            assert_eq!(
                negotiate(Some(&format!("{skipped}, application/json"))),
                Some(Format::Json),
                "{skipped}"
            );
        }
        // Table is still chosen when it comes first; the metadata entry is the fallback.
        let table_first = "application/json;as=Table;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(table_first)), Some(Format::Table));
        let pom_first = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json;as=Table;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(pom_first)), partial(false, false, false));
    }

    #[test]
    fn entries_are_tried_by_quality_then_specificity() {
        let a =
            "application/json;q=0.5, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(Some(a)), partial(false, false, false));
        assert_eq!(negotiate(Some("*/*, application/yaml")), Some(Format::Yaml));
        assert_eq!(negotiate(Some("*")), Some(Format::Json));
        assert_eq!(negotiate(Some("text/html")), None);
    }

    #[test]
    fn metadata_renderings_are_encoded_in_the_negotiated_encoding() {
        let p = |yaml| {
            Format::Partial(Partial {
                list: false,
                v1beta1: false,
                yaml,
            })
        };
        assert_eq!(p(true).encoding(), Format::Yaml);
        assert_eq!(p(false).encoding(), Format::Json);
        assert_eq!(Format::Table.encoding(), Format::Json);
    }
}
