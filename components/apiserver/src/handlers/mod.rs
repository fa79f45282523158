//! Resource handlers, one module per verb family. Each takes the parsed request and
//! answers with an object, a list, a stream, or a `Status` error.

mod delete;
mod read;
mod subresource;
mod watch;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use kadm_apimachinery::{ApiError, ResourceInfo, events, meta, protobuf, table};
use serde_json::{Value, json};

use crate::request::{Query, ResourceRequest, Verb};
use crate::response::{self, Body, Format};
use crate::server::State;
use crate::tls::UserInfo;

/// Everything a handler needs about one request.
pub struct Ctx {
    pub state: Arc<State>,
    pub req: ResourceRequest,
    pub query: Query,
    pub format: Format,
    pub user: UserInfo,
    pub content_type: String,
    pub body: Bytes,
}

impl Ctx {
    pub fn res(&self) -> &'static ResourceInfo {
        self.req.resource
    }
    pub fn key(&self, name: &str) -> String {
        self.res().etcd_key(&self.req.namespace, name)
    }
    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid dry run option: {v:?}; the only supported value is \"All\""
            ))),
        }
    }
    pub fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(self.res().group, self.res().plural, name)
    }
}

pub async fn dispatch(ctx: Ctx) -> Response<Body> {
    let result = match (ctx.req.verb, ctx.req.subresource.as_str()) {
        (Verb::Get, "scale") => subresource::get_scale(&ctx).await,
        (Verb::Update | Verb::Patch, "scale") => subresource::write_scale(&ctx).await,
        (Verb::Create, "binding") => subresource::bind(&ctx).await,
        (Verb::Get, _) => read::get(&ctx).await,
        (Verb::List, _) => read::list(&ctx).await,
        (Verb::Watch, _) => watch::watch(&ctx).await,
        (Verb::Create, "") => write::create(&ctx).await,
        (Verb::Update, _) => write::update(&ctx).await,
        (Verb::Patch, _) => write::patch(&ctx).await,
        (Verb::Delete, "") => delete::delete(&ctx).await,
        (Verb::DeleteCollection, "") => delete::delete_collection(&ctx).await,
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(r) => r,
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(code = e.code, reason = e.reason.as_str(), message = %e.message, "request failed");
            }
            response::error(&e)
        }
    }
}

/// The stored (core) form of an object sent by a client of `res`.
pub fn to_storage(res: &ResourceInfo, obj: Value) -> Value {
    if res.group == "events.k8s.io" {
        events::to_core(&obj)
    } else {
        obj
    }
}

/// The client's form of a stored object.
pub fn to_wire(res: &ResourceInfo, mut obj: Value) -> Value {
    if res.group == "events.k8s.io" {
        return events::from_core(&obj);
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(res.api_version()));
        m.insert("kind".into(), json!(res.kind));
    }
    obj
}

/// One object in the negotiated format (a one-row Table when asked for a Table).
pub fn respond_object(ctx: &Ctx, code: StatusCode, obj: Value) -> Response<Body> {
    match ctx.format {
        Format::Table => {
            let include =
                table::IncludeObject::parse(ctx.query.str("includeObject")).unwrap_or_default();
            let rv = meta::resource_version(&obj).to_string();
            response::json(
                code,
                &table::to_table(
                    ctx.res(),
                    &[obj],
                    json!({"resourceVersion": rv}),
                    include,
                    true,
                ),
            )
        }
        f => response::object(code, &obj, f),
    }
}

/// Decodes a request body as JSON or YAML (by `Content-Type`), naming the line on failure.
pub fn decode_body(ctx: &Ctx) -> Result<Value, ApiError> {
    if ctx.body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send the object as JSON or YAML",
        ));
    }
    let ct = ctx
        .content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let value: Value = match ct.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice(&ctx.body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid yaml: {e}"))
            })?
        }
        "" | "application/json" | "*/*" => serde_json::from_slice(&ctx.body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid json: {e}"))
        })?,
        // kubectl >= 1.32 sends typed creates and updates as Kubernetes protobuf.
        protobuf::MEDIA_TYPE => {
            protobuf::decode(&ctx.body).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        other => {
            return Err(ApiError::unsupported_media_type(
                other,
                &["application/json", "application/yaml", protobuf::MEDIA_TYPE],
            ));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(value)
}

/// Checks `apiVersion`/`kind` in a body against the resource (when present) and fills them in.
pub fn check_type(res: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let (api_version, kind) = meta::type_meta(obj);
    let want_av = res.api_version();
    if !api_version.is_empty() && api_version != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({want_av})"
        )));
    }
    if !kind.is_empty() && kind != res.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({}) for {}",
            res.kind, res.plural
        )));
    }
    obj["apiVersion"] = json!(want_av);
    obj["kind"] = json!(res.kind);
    Ok(())
}

/// Decodes into the Kubernetes type and validates; no object reaches etcd otherwise.
pub fn validate(res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    kadm_apimachinery::validation::decode_typed(res, obj).map_err(|e| {
        ApiError::bad_request(format!("the object does not decode as {}: {e}", res.kind))
    })?;
    let causes = kadm_apimachinery::validation::validate(res, obj);
    if !causes.is_empty() {
        let name = if meta::name(obj).is_empty() {
            meta::generate_name(obj)
        } else {
            meta::name(obj)
        };
        return Err(ApiError::invalid(res.group, res.kind, name, causes));
    }
    Ok(())
}
