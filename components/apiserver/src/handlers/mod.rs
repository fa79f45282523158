//! Resource handlers, one module per verb family. Each takes the parsed request and
//! answers with an object, a list, a stream, or a `Status` error.

mod apply;
mod delete;
mod read;
mod subresource;
mod watch;
mod write;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use kadm_apimachinery::managedfields;
use kadm_apimachinery::openapi::{self, FieldValidation};
use kadm_apimachinery::patch::PatchType;
use kadm_apimachinery::{ApiError, Cause, Reason, ResourceInfo, events, meta, protobuf, table};
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
    /// The `User-Agent` header (names the field manager of writes without `fieldManager`).
    pub user_agent: String,
    /// Warnings for the response's `Warning` headers (unknown and duplicate fields under
    /// `fieldValidation=Warn`); added by [`dispatch`] to a successful answer.
    pub warnings: Mutex<Vec<String>>,
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
    /// The request's `fieldValidation` directive (absent: `Warn`, Kubernetes' default);
    /// an unsupported value is a 422 on the request's Create/Update/PatchOptions.
    pub fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        FieldValidation::from_query(self.query.get("fieldValidation"), self.options_kind())
    }
    /// The kind of options this request's query carries.
    fn options_kind(&self) -> &'static str {
        match self.req.verb {
            Verb::Create => "CreateOptions",
            Verb::Patch => "PatchOptions",
            _ => "UpdateOptions",
        }
    }
    /// The field manager of a non-apply write: `fieldManager` (at most 128 printable
    /// characters, else 422 on the request's options), else the User-Agent's first part.
    pub fn update_manager(&self) -> Result<String, ApiError> {
        let requested = self.query.str("fieldManager");
        let causes = managedfields::validate_field_manager(requested);
        if !causes.is_empty() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                self.options_kind(),
                "",
                causes,
            ));
        }
        Ok(managedfields::manager_or_user_agent(
            requested,
            &self.user_agent,
        ))
    }
    /// The OpenAPI definition of what this request's body holds: the resource's kind, or
    /// autoscaling/v1 Scale, core/v1 Binding for those subresources.
    pub fn body_definition(&self) -> Option<&'static str> {
        match self.req.subresource.as_str() {
            "scale" => openapi::gvk_definition("autoscaling", "v1", "Scale"),
            "binding" => openapi::gvk_definition("", "v1", "Binding"),
            "token" => openapi::gvk_definition("authentication.k8s.io", "v1", "TokenRequest"),
            _ => openapi::resource_definition(self.res()),
        }
    }
    /// Runs the mutating admission phase over a write of `name` (`old` for updates).
    pub(crate) async fn admit(
        &self,
        operation: crate::admission::Operation,
        name: &str,
        old: Option<&Value>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        let req = self.admission_request(operation, name, old);
        self.state.admission.mutate(&self.state, &req, obj).await
    }

    /// Runs the validating admission phase (`obj` is `None` for deletes).
    pub(crate) async fn admit_validate(
        &self,
        operation: crate::admission::Operation,
        name: &str,
        old: Option<&Value>,
        obj: Option<&Value>,
    ) -> Result<(), ApiError> {
        let mut out = crate::admission::Outcome::default();
        let req = self.admission_request(operation, name, old);
        let result = self
            .state
            .admission
            .validate(&self.state, &req, obj, &mut out)
            .await;
        self.warn(out.warnings);
        result
    }

    fn admission_request<'a>(
        &'a self,
        operation: crate::admission::Operation,
        name: &'a str,
        old: Option<&'a Value>,
    ) -> crate::admission::Request<'a> {
        crate::admission::Request {
            res: self.res(),
            subresource: &self.req.subresource,
            operation,
            namespace: &self.req.namespace,
            name,
            user: &self.user,
            old,
            dry_run: self.dry_run().unwrap_or(false),
        }
    }

    fn warn(&self, warnings: impl IntoIterator<Item = String>) {
        if let Ok(mut w) = self.warnings.lock() {
            for m in warnings {
                if !w.contains(&m) {
                    w.push(m);
                }
            }
        }
    }
}

/// How many `Warning` headers one response carries at most.
const MAX_WARNINGS: usize = 64;

/// Adds Kubernetes' `Warning: 299 - "<text>"` headers (one per warning, text Go-quoted).
pub fn add_warnings(resp: &mut Response<Body>, warnings: &[String]) {
    for w in warnings.iter().take(MAX_WARNINGS) {
        let quoted = serde_json::to_string(w).unwrap_or_default();
        if let Ok(v) = HeaderValue::from_bytes(format!("299 - {quoted}").as_bytes()) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

pub async fn dispatch(ctx: Ctx) -> Response<Body> {
    let result = match (ctx.req.verb, ctx.req.subresource.as_str()) {
        (Verb::Get, "scale") => subresource::get_scale(&ctx).await,
        (Verb::Update | Verb::Patch, "scale") => subresource::write_scale(&ctx).await,
        (Verb::Create, "binding") => subresource::bind(&ctx).await,
        (Verb::Create, "token") => crate::authn::tokenrequest::create(&ctx).await,
        (_, "token") => Err(ApiError::method_not_allowed()),
        (Verb::Get, _) => read::get(&ctx).await,
        (Verb::List, _) => read::list(&ctx).await,
        (Verb::Watch, _) => watch::watch(&ctx).await,
        (Verb::Create, "") => write::create(&ctx).await,
        (Verb::Update, _) => write::update(&ctx).await,
        (Verb::Patch, _) if apply::is_apply(&ctx) => apply::apply(&ctx).await,
        (Verb::Patch, _) => write::patch(&ctx).await,
        (Verb::Delete, "") => delete::delete(&ctx).await,
        (Verb::DeleteCollection, "") => delete::delete_collection(&ctx).await,
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(mut r) => {
            let warnings = ctx.warnings.lock().map(|w| w.clone()).unwrap_or_default();
            add_warnings(&mut r, &warnings);
            r
        }
        Err(e) => {
            if e.code >= 500 {
                tracing::warn!(code = e.code, reason = e.reason.as_str(), message = %e.message, "request failed");
            }
            response::error(&e)
        }
    }
}

/// The stored (core) form of an object sent by a client of `res`.
pub fn to_storage(res: &ResourceInfo, mut obj: Value) -> Value {
    if res.group == "events.k8s.io" {
        events::to_core(&obj)
    } else {
        if res.group.is_empty() && res.plural == "secrets" {
            fold_string_data(&mut obj);
        }
        obj
    }
}

/// A Secret's `stringData` is write-only: Kubernetes' conversion merges it into `data`
/// (base64, its keys winning over `data`'s) and never stores or returns it.
fn fold_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    if strings.is_empty() {
        return;
    }
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    if let Some(data) = data.as_object_mut() {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            data.insert(
                k,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
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

/// One object in the negotiated format (a one-row Table when asked for a Table, its
/// metadata when asked for `PartialObjectMetadata`).
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
        // As in Kubernetes, a write asked for the wrong kind is answered 406 after it
        // has been made.
        Format::Partial(p) => match p.check(ctx.res(), false) {
            Ok(()) => response::object(code, &p.object(&obj), ctx.format),
            Err(e) => response::error(&e),
        },
        f => response::object(code, &obj, f),
    }
}

/// Decodes a request body as JSON, YAML or protobuf (by `Content-Type`), naming the line
/// on failure, and applies the request's `fieldValidation` to it: repeated keys and fields
/// the kind's schema does not have fail the request under `Strict` (400, Kubernetes'
/// `strict decoding error`), become `Warning` headers under `Warn`, and are dropped either
/// way. Protobuf bodies carry only known fields (Kubernetes' protobuf decoding is not strict).
pub fn decode_body(ctx: &Ctx) -> Result<Value, ApiError> {
    let directive = ctx.field_validation()?;
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
    let (mut value, duplicates, textual) = match ct.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let (v, d) = openapi::decode_yaml_strict(&ctx.body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid yaml: {e}"))
            })?;
            (v, d, true)
        }
        "" | "application/json" | "*/*" => {
            let (v, d) = openapi::decode_json_strict(&ctx.body).map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid json: {e}"))
            })?;
            (v, d, true)
        }
        // kubectl >= 1.32 sends typed creates and updates as Kubernetes protobuf.
        protobuf::MEDIA_TYPE => (
            protobuf::decode(&ctx.body).map_err(|e| ApiError::bad_request(e.to_string()))?,
            Vec::new(),
            false,
        ),
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
    if textual {
        let mut problems = duplicates;
        if let Some(def) = ctx.body_definition() {
            problems.extend(openapi::prune_unknown_fields(def, &mut value));
        }
        if !problems.is_empty() {
            match directive {
                FieldValidation::Strict => return Err(strict_body_error(ctx, &value, &problems)),
                FieldValidation::Warn => ctx.warn(problems),
                FieldValidation::Ignore => {}
            }
        }
    }
    Ok(value)
}

/// Kubernetes' 400 for a body that fails strict decoding (`transformDecodeError`):
/// `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: …`.
fn strict_body_error(ctx: &Ctx, obj: &Value, problems: &[String]) -> ApiError {
    let (default_version, default_kind) = match ctx.req.subresource.as_str() {
        "scale" => ("v1", "Scale"),
        "binding" => ("v1", "Binding"),
        "token" => ("v1", "TokenRequest"),
        _ => (ctx.res().version, ctx.res().kind),
    };
    let (api_version, kind) = meta::type_meta(obj);
    let version = match api_version.rsplit_once('/') {
        Some((_, v)) => v,
        None if !api_version.is_empty() => api_version,
        None => default_version,
    };
    let body_kind = if kind.is_empty() { default_kind } else { kind };
    ApiError::bad_request(format!(
        "{body_kind} in version {version:?} cannot be handled as a {default_kind}: {}",
        openapi::strict_decoding_error(problems)
    ))
}

/// Field validation of a patched object (`patched`, in the client's form), as Kubernetes
/// does it after applying a patch: unknown fields (and keys the patch body repeats) fail
/// the request under `Strict` with a 422 on `patch`, become warnings under `Warn`, and are
/// dropped either way.
pub fn validate_patched(ctx: &Ctx, ty: PatchType, patched: &mut Value) -> Result<(), ApiError> {
    let directive = ctx.field_validation()?;
    let mut problems = Vec::new();
    if directive != FieldValidation::Ignore && ty != PatchType::Apply {
        // A body that is not JSON failed in the patch step already.
        if let Ok((_, dups)) = openapi::decode_json_strict(&ctx.body) {
            problems = dups;
        }
    }
    let shown = match ty {
        PatchType::StrategicMerge => serde_json::from_slice::<Value>(&ctx.body)
            .map(|p| go_value(&p))
            .unwrap_or_default(),
        _ => serde_json::to_string(patched).unwrap_or_default(),
    };
    if let Some(def) = ctx.body_definition() {
        problems.extend(openapi::prune_unknown_fields(def, patched));
    }
    if problems.is_empty() {
        return Ok(());
    }
    match directive {
        FieldValidation::Strict => {
            let cause = Cause::invalid(
                "patch",
                &Value::String(shown),
                openapi::strict_decoding_error(&problems),
            );
            let mut e = ApiError::new(
                422,
                Reason::Invalid,
                format!(" \"\" is invalid: {}", cause.to_error_string()),
            );
            e.causes = vec![cause];
            Err(e)
        }
        FieldValidation::Warn => {
            ctx.warn(problems);
            Ok(())
        }
        FieldValidation::Ignore => Ok(()),
    }
}

/// Go's `%+v` of decoded JSON (`map[a:1 b:[x y]]`, keys sorted), as Kubernetes prints a
/// strategic merge patch in its errors.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_value(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
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
/// `obj` is in its stored form: events.k8s.io Events are checked as the core Events they
/// are stored as.
pub fn validate(res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    let res = match res.group {
        "events.k8s.io" => kadm_apimachinery::registry::lookup("", "v1", "events").unwrap_or(res),
        _ => res,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_folded_into_data_and_not_stored() {
        let secrets = kadm_apimachinery::registry::lookup("", "v1", "secrets").expect("secrets");
        let obj = serde_json::json!({
            "metadata": {"name": "s"},
            "data": {"a": "b2xk", "keep": "eA=="},
            "stringData": {"a": "new", "c": "plain"},
        });
        let stored = to_storage(secrets, obj);
        assert!(stored.get("stringData").is_none());
        assert_eq!(
            stored["data"],
            serde_json::json!({"a": "bmV3", "keep": "eA==", "c": "cGxhaW4="})
        );
        let cms = kadm_apimachinery::registry::lookup("", "v1", "configmaps").expect("cm");
        let cm = serde_json::json!({"metadata": {"name": "c"}, "stringData": {"x": "y"}});
        assert_eq!(to_storage(cms, cm.clone()), cm);
    }
}
