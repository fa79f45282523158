//! GET of one object and LIST of a collection, with selectors, pagination and
//! Kubernetes' resourceVersion semantics.
//!
//! GET reads etcd (as Kubernetes does unless `resourceVersion=0`). LIST is served from
//! the watch cache (`crate::cache`) when it can be exact: consistent (`""`), `"0"` and
//! NotOlderThan reads, the first page of a paginated one included. A `continue` token,
//! `resourceVersionMatch=Exact`, Kubernetes' legacy exact match (`limit` with a
//! resourceVersion and no match rule) and a cache still loading go to etcd.

use base64::Engine;
use http::{Response, StatusCode};
use kadm_apimachinery::selector::{FieldSelector, LabelSelector, object_field};
use kadm_apimachinery::{ApiError, ResourceInfo, meta, table};
use serde_json::{Value, json};

use super::{Ctx, respond_object, to_wire};
use std::sync::Arc;

use crate::cache::{Cacher, Entry, FRESHNESS_TIMEOUT, Page};
use crate::response::{self, Body, Format, Partial};

pub async fn get(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let stored = ctx
        .state
        .store
        .get(&ctx.key(&ctx.req.name))
        .await?
        .ok_or_else(|| ctx.not_found(&ctx.req.name))?;
    Ok(respond_object(
        ctx,
        StatusCode::OK,
        to_wire(ctx.res(), stored.object),
    ))
}

/// Label and field selectors of a list or watch, validated against the resource.
pub struct Filter {
    pub label: LabelSelector,
    pub field: FieldSelector,
}

impl Filter {
    pub fn from_query(ctx: &Ctx) -> Result<Filter, ApiError> {
        let label = LabelSelector::parse(ctx.query.str("labelSelector"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let field = FieldSelector::parse(ctx.query.str("fieldSelector"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        field
            .check_supported(&ctx.res().supported_fields())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Filter { label, field })
    }

    pub fn is_everything(&self) -> bool {
        self.label.is_empty() && self.field.is_empty()
    }

    /// Whether a stored object passes both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        self.label.matches_json(meta::labels(obj)) && self.field.matches(|f| object_field(obj, f))
    }

    /// Whether a cached object passes both selectors.
    pub fn matches_entry(&self, cacher: &Cacher, e: &Entry) -> bool {
        self.is_everything() || cacher.layout.matches(e, &self.label, &self.field)
    }
}

/// Kubernetes' answer when a read needs a revision the cache has not reached in time:
/// 504 with cause `ResourceVersionTooLarge`, retry after 1 s.
pub fn too_large_resource_version(rv: i64, current: i64) -> ApiError {
    let mut e = ApiError::timeout(format!(
        "Too large resource version: {rv}, current: {current}"
    ));
    e.causes.push(kadm_apimachinery::Cause {
        reason: "ResourceVersionTooLarge",
        message: "Too large resource version".into(),
        field: String::new(),
    });
    e.retry_after = Some(1);
    e
}

/// Kubernetes' continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key suffix>"}`.
#[derive(Debug, PartialEq)]
pub struct ContinueToken {
    pub rv: i64,
    pub start: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        let j = json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": self.start});
        base64::engine::general_purpose::STANDARD.encode(j.to_string())
    }

    pub fn decode(s: &str) -> Result<ContinueToken, ApiError> {
        let bad = || {
            ApiError::bad_request(format!(
                "continue key is not valid: {s:?}; start the list again without it"
            ))
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .map_err(|_| bad())?;
        let j: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        if j["v"] != "meta.k8s.io/v1" {
            return Err(bad());
        }
        let rv = j["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
        let start = j["start"].as_str().ok_or_else(bad)?.to_string();
        if start.contains("..") || start.starts_with('/') {
            return Err(bad());
        }
        Ok(ContinueToken { rv, start })
    }
}

/// A list result before rendering.
pub struct Listed {
    pub items: Vec<Value>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// Parses a resourceVersion parameter: empty, or a non-negative integer.
pub fn parse_rv(s: &str) -> Result<i64, ApiError> {
    if s.is_empty() {
        return Ok(0);
    }
    s.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid resource version: {s:?}; it must be an integer from a previous response"
        ))
    })
}

pub async fn list_objects(ctx: &Ctx, filter: &Filter) -> Result<Listed, ApiError> {
    let res: &ResourceInfo = ctx.res();
    let prefix = ctx.key("");
    let limit = ctx.query.int("limit")?.filter(|l| *l > 0).unwrap_or(0);
    let rv_param = ctx.query.str("resourceVersion");
    let rv = parse_rv(rv_param)?;
    let rv_match = ctx.query.str("resourceVersionMatch");
    let mut revision = 0;
    let mut start: Option<String> = None;
    if let Some(token) = ctx.query.get("continue").filter(|c| !c.is_empty()) {
        if !rv_param.is_empty() {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let t = ContinueToken::decode(token)?;
        revision = t.rv;
        start = Some(format!("{prefix}{}", t.start));
    } else {
        match rv_match {
            "" | "NotOlderThan" => {
                if rv_match == "NotOlderThan" && rv_param.is_empty() {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if rv_match.is_empty() && rv > 0 && limit > 0 {
                    // Kubernetes' legacy exact match: a paginated list at a given
                    // resourceVersion without a match rule reads at that revision.
                    revision = rv;
                } else if rv > 0 {
                    let current = ctx
                        .state
                        .store
                        .current_revision()
                        .await
                        .map_err(crate::storage::StoreError::from)?;
                    if rv > current {
                        return Err(too_large_resource_version(rv, current));
                    }
                }
            }
            "Exact" => {
                if rv == 0 {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\" or empty",
                    ));
                }
                revision = rv;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unsupported resourceVersionMatch {other:?}; use \"Exact\" or \"NotOlderThan\""
                )));
            }
        }
    }
    let mut items = Vec::new();
    let mut continue_token = None;
    let mut remaining = None;
    let page_size = if limit > 0 && filter.is_everything() {
        limit
    } else if limit > 0 {
        limit.max(100)
    } else {
        0
    };
    loop {
        let page = ctx
            .state
            .store
            .list(&prefix, start.as_deref(), revision, page_size)
            .await
            .map_err(|e| {
                let api = e.to_api();
                if api.code == 410 && ctx.query.get("continue").is_some() {
                    ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                } else {
                    api
                }
            })?;
        revision = page.revision;
        let n = page.items.len();
        let mut stopped_at = None;
        for (i, item) in page.items.into_iter().enumerate() {
            if filter.matches(&item.object) {
                items.push(to_wire(res, item.object));
                if limit > 0 && items.len() as i64 >= limit {
                    if i + 1 < n || page.more {
                        stopped_at = Some((item.key, n - i - 1));
                    }
                    break;
                }
            }
            if i + 1 == n {
                start = Some(format!("{}\0", item.key));
            }
        }
        if let Some((key, left_in_page)) = stopped_at {
            let suffix = key.strip_prefix(&prefix).unwrap_or(&key);
            continue_token = Some(
                ContinueToken {
                    rv: revision,
                    start: format!("{suffix}\0"),
                }
                .encode(),
            );
            if filter.is_everything() {
                remaining = Some(page.count - (n as i64) + left_in_page as i64).filter(|r| *r > 0);
            }
            break;
        }
        if !page.more || n == 0 || limit == 0 {
            break;
        }
    }
    Ok(Listed {
        items,
        revision,
        continue_token,
        remaining,
    })
}

pub fn list_meta(listed: &Listed) -> Value {
    let mut m = json!({"resourceVersion": listed.revision.to_string()});
    if let Some(c) = &listed.continue_token {
        m["continue"] = json!(c);
    }
    if let Some(r) = listed.remaining {
        m["remainingItemCount"] = json!(r);
    }
    m
}

pub async fn list(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let filter = Filter::from_query(ctx)?;
    if ctx.format == Format::Table
        && table::IncludeObject::parse(ctx.query.str("includeObject")).is_none()
    {
        return Err(ApiError::bad_request(
            "includeObject must be one of None, Metadata, Object",
        ));
    }
    if let Format::Partial(p) = ctx.format {
        p.check(ctx.res(), true)?;
    }
    if let Some(r) = list_from_cache(ctx, &filter).await? {
        return Ok(r);
    }
    let listed = list_objects(ctx, &filter).await?;
    Ok(render_list(ctx, &listed))
}

fn render_list(ctx: &Ctx, listed: &Listed) -> Response<Body> {
    let res = ctx.res();
    let body = match ctx.format {
        Format::Table => {
            // `includeObject` was validated before the list was read.
            let include =
                table::IncludeObject::parse(ctx.query.str("includeObject")).unwrap_or_default();
            table::to_table(res, &listed.items, list_meta(listed), include, true)
        }
        Format::Partial(p) => p.list_of(list_meta(listed), &listed.items),
        Format::Json | Format::Yaml => json!({
            "kind": res.list_kind(),
            "apiVersion": res.api_version(),
            "metadata": list_meta(listed),
            "items": listed.items,
        }),
    };
    response::object(StatusCode::OK, &body, ctx.format.encoding())
}

/// Serves a LIST from the watch cache, or `None` when etcd must answer it.
async fn list_from_cache(ctx: &Ctx, filter: &Filter) -> Result<Option<Response<Body>>, ApiError> {
    if ctx.query.get("continue").is_some_and(|c| !c.is_empty()) {
        return Ok(None);
    }
    let rv_param = ctx.query.str("resourceVersion");
    let rv = parse_rv(rv_param)?;
    let limit = ctx.query.int("limit")?.filter(|l| *l > 0).unwrap_or(0);
    match ctx.query.str("resourceVersionMatch") {
        // Legacy exact match: etcd at that revision.
        "" if limit > 0 && rv > 0 => return Ok(None),
        "" => {}
        "NotOlderThan" if !rv_param.is_empty() => {}
        // Exact, and the invalid combinations the etcd path rejects with their messages.
        _ => return Ok(None),
    }
    let cache = &ctx.state.cache;
    let Some(cacher) = cache.cacher(ctx.res()) else {
        return Ok(None);
    };
    if !cache.is_ready() {
        return Ok(None);
    }
    if rv_param.is_empty() {
        // Consistent: everything etcd had committed when the request arrived.
        let current = cache
            .etcd_revision()
            .await
            .map_err(crate::storage::StoreError::from)?;
        if cache.wait_for(current, FRESHNESS_TIMEOUT).await.is_err() {
            tracing::warn!(
                revision = current,
                cached = cache.revision(),
                "watch cache did not catch up with etcd in time; listing from etcd"
            );
            return Ok(None);
        }
    } else if rv > 0
        && let Err(current) = cache.wait_for(rv, FRESHNESS_TIMEOUT).await
    {
        return Err(too_large_resource_version(rv, current));
    }
    // Kubernetes ignores `limit` for resourceVersion="0" served from its cache.
    let limit = if rv_param == "0" { 0 } else { limit };
    let scope = ctx.key("");
    let page = cacher.list(&scope, limit as usize, |e| filter.matches_entry(cacher, e));
    let continue_token = page.continue_after.as_ref().map(|key| {
        let suffix = key.strip_prefix(scope.as_str()).unwrap_or(key);
        ContinueToken {
            rv: page.rev,
            start: format!("{suffix}\0"),
        }
        .encode()
    });
    let remaining = if continue_token.is_some() && filter.is_everything() {
        Some(page.remaining as i64)
    } else {
        None
    };
    if ctx.format == Format::Json && cacher.layout.is_primary(ctx.res()) {
        return Ok(Some(json_list(
            ListHead::Resource(ctx.res()),
            page,
            continue_token,
            remaining,
        )));
    }
    if let Format::Partial(p) = ctx.format
        && !p.yaml
    {
        return Ok(Some(json_list(
            ListHead::Partial(p),
            page,
            continue_token,
            remaining,
        )));
    }
    let listed = Listed {
        items: page
            .items
            .iter()
            .map(|e| to_wire(ctx.res(), e.value()))
            .collect(),
        revision: page.rev,
        continue_token,
        remaining,
    };
    Ok(Some(render_list(ctx, &listed)))
}

/// What a list streamed from the cache is made of.
#[derive(Clone, Copy)]
enum ListHead {
    /// `<Kind>List` of the cached objects as they are.
    Resource(&'static ResourceInfo),
    /// `PartialObjectMetadataList` of the cached objects' metadata.
    Partial(Partial),
}

/// A JSON list assembled from the cache's encoded objects (or their metadata), without
/// re-serializing them, and streamed in chunks: no allocation of the whole list, and the
/// first bytes are on their way while the rest is assembled.
fn json_list(
    what: ListHead,
    page: Page,
    continue_token: Option<String>,
    remaining: Option<i64>,
) -> Response<Body> {
    let meta = list_meta(&Listed {
        items: Vec::new(),
        revision: page.rev,
        continue_token,
        remaining,
    });
    let (head, item_head) = match what {
        ListHead::Resource(res) => (
            json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": meta}),
            None,
        ),
        ListHead::Partial(p) => (
            json!({"kind": "PartialObjectMetadataList", "apiVersion": p.api_version(), "metadata": meta}),
            Some(p.item_head()),
        ),
    };
    // `{"kind":…,"apiVersion":…,"metadata":{…}}` without its closing brace, then the items.
    let mut head = match serde_json::to_vec(&head) {
        Ok(h) => h,
        Err(_) => return response::error(&ApiError::internal("encoding a list failed")),
    };
    head.pop();
    head.extend_from_slice(b",\"items\":[");
    let body = ListBody::new(head, page.items, item_head);
    let len = body.len;
    let mut r = Response::new(http_body_util::BodyExt::boxed(body));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r
}

/// The bytes of a cached list, produced a chunk at a time.
struct ListBody {
    head: Option<Vec<u8>>,
    items: std::vec::IntoIter<Arc<Entry>>,
    /// Items are `item_head + metadata + "}"` (metadata-only lists), else the objects.
    item_head: Option<&'static [u8]>,
    first: bool,
    done: bool,
    len: u64,
}

/// Bytes per chunk of a list body.
const LIST_CHUNK: usize = 64 * 1024;

impl ListBody {
    fn new(head: Vec<u8>, items: Vec<Arc<Entry>>, item_head: Option<&'static [u8]>) -> ListBody {
        let items_len = match item_head {
            None => items.iter().map(|e| e.json.len()).sum::<usize>(),
            Some(h) => items.iter().map(|e| h.len() + e.metadata().len() + 1).sum(),
        };
        let len = head.len() + items_len + items.len().saturating_sub(1) + 2;
        ListBody {
            head: Some(head),
            items: items.into_iter(),
            item_head,
            first: true,
            done: false,
            len: len as u64,
        }
    }
}

impl http_body::Body for ListBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.done {
            return std::task::Poll::Ready(None);
        }
        let mut buf = Vec::with_capacity(LIST_CHUNK + 4096);
        if let Some(h) = self.head.take() {
            buf.extend_from_slice(&h);
        }
        while buf.len() < LIST_CHUNK {
            match self.items.next() {
                Some(e) => {
                    if !std::mem::take(&mut self.first) {
                        buf.push(b',');
                    }
                    match self.item_head {
                        None => buf.extend_from_slice(&e.json),
                        Some(h) => {
                            buf.extend_from_slice(h);
                            buf.extend_from_slice(e.metadata());
                            buf.push(b'}');
                        }
                    }
                }
                None => {
                    buf.extend_from_slice(b"]}");
                    self.done = true;
                    break;
                }
            }
        }
        self.len = self.len.saturating_sub(buf.len() as u64);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips_and_rejects_garbage() {
        let t = ContinueToken {
            rv: 42,
            start: "ns/name\0".into(),
        };
        assert_eq!(ContinueToken::decode(&t.encode()).expect("decode"), t);
        assert_eq!(
            ContinueToken::decode("not-base64!").expect_err("bad").code,
            400
        );
        let escape = ContinueToken {
            rv: 1,
            start: "../secrets/".into(),
        };
        assert_eq!(
            ContinueToken::decode(&escape.encode())
                .expect_err("escape")
                .code,
            400
        );
    }

    #[tokio::test]
    async fn a_cached_list_streams_valid_json_of_the_announced_length() {
        use http_body_util::BodyExt;
        let res = kadm_apimachinery::registry::lookup("", "v1", "configmaps").expect("cm");
        let layout = crate::cache::Layout {
            primary: res,
            fields: res.supported_fields(),
        };
        let big = "x".repeat(3000);
        for n in [0usize, 1, 2, 100] {
            let items: Vec<Arc<Entry>> = (0..n)
                .map(|i| {
                    Arc::new(
                        layout
                            .entry(
                                Arc::from(format!("/registry/configmaps/d/c{i:03}")),
                                7,
                                json!({"metadata": {"name": format!("c{i:03}"), "resourceVersion": "7"}, "data": {"k": big}}),
                            )
                            .expect("entry"),
                    )
                })
                .collect();
            let page = |items| Page {
                rev: 9,
                items,
                continue_after: None,
                remaining: 0,
            };
            let partial = Partial {
                list: true,
                v1beta1: false,
                yaml: false,
            };
            let resp = json_list(
                ListHead::Partial(partial),
                page(items.clone()),
                Some("tok".into()),
                Some(3),
            );
            let announced: usize = resp.headers()[http::header::CONTENT_LENGTH]
                .to_str()
                .expect("len")
                .parse()
                .expect("number");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body.len(), announced, "{n} metadata items");
            let v: Value = serde_json::from_slice(&body).expect("metadata list json");
            assert_eq!(v["kind"], "PartialObjectMetadataList");
            assert_eq!(v["apiVersion"], "meta.k8s.io/v1");
            assert_eq!(v["metadata"]["continue"], "tok");
            assert_eq!(v["metadata"]["remainingItemCount"], 3);
            assert_eq!(v["items"].as_array().map(Vec::len), Some(n));
            for (i, item) in v["items"].as_array().into_iter().flatten().enumerate() {
                assert_eq!(item["kind"], "PartialObjectMetadata");
                assert_eq!(item["apiVersion"], "meta.k8s.io/v1");
                assert_eq!(item["metadata"]["name"], format!("c{i:03}"));
                assert!(item.get("data").is_none(), "metadata only");
            }

            let resp = json_list(
                ListHead::Resource(res),
                page(items),
                Some("tok".into()),
                Some(3),
            );
            let announced: usize = resp.headers()[http::header::CONTENT_LENGTH]
                .to_str()
                .expect("len")
                .parse()
                .expect("number");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body.len(), announced, "{n} items");
            let v: Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["kind"], "ConfigMapList");
            assert_eq!(v["metadata"]["resourceVersion"], "9");
            assert_eq!(v["metadata"]["continue"], "tok");
            assert_eq!(v["metadata"]["remainingItemCount"], 3);
            assert_eq!(v["items"].as_array().map(Vec::len), Some(n));
            if n > 0 {
                assert_eq!(
                    v["items"][n - 1]["metadata"]["name"],
                    format!("c{:03}", n - 1)
                );
            }
        }
    }

    #[test]
    fn resource_version_must_be_an_integer() {
        assert_eq!(parse_rv("").expect("empty"), 0);
        assert_eq!(parse_rv("17").expect("int"), 17);
        assert_eq!(parse_rv("abc").expect_err("bad").code, 400);
        assert_eq!(parse_rv("-1").expect_err("neg").code, 400);
    }
}
