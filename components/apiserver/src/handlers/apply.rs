//! Server-side apply (`PATCH` with `Content-Type: application/apply-patch+yaml`) and the
//! managed-fields bookkeeping of every other write. The field logic lives in
//! [`kadm_apimachinery::managedfields`]; this module reads the request's options, loads
//! and stores the object.
//!
//! Order of an apply, as kube-apiserver's: PatchOptions (`fieldManager` required, 422),
//! decode the YAML or JSON body (400), the object's `apiVersion`/`kind` (400 `invalid
//! object type`), no `managedFields` in it (400), schema (undeclared fields, list items
//! without keys: 500, as Kubernetes answers), conflicts (409), `fieldValidation` of
//! repeated keys (`Strict` 400, `Warn` warnings), then the usual name/namespace checks,
//! strategy, validation and the guarded write. A missing object is created (201).

use http::{Response, StatusCode};
use kadm_apimachinery::managedfields::{self, ApplyError, Context, Type, schema};
use kadm_apimachinery::openapi::{self, FieldValidation};
use kadm_apimachinery::patch::PatchType;
use kadm_apimachinery::{ApiError, Cause, Reason, ResourceInfo, meta};
use serde_json::{Map, Value, json};

use super::write::{check_name, reconcile_namespace, store_create, store_update};
use super::{Ctx, check_type, respond_object, to_storage, to_wire, validate};
use crate::response::Body;
use crate::storage::WriteOutcome;
use crate::strategy;

/// Whether the request is a server-side apply.
pub fn is_apply(ctx: &Ctx) -> bool {
    PatchType::from_content_type(&ctx.content_type) == Some(PatchType::Apply)
}

/// The schema type of `res`'s objects (`None` for a kind without an OpenAPI definition:
/// such objects get no managed fields).
pub fn object_type(res: &ResourceInfo) -> Option<&'static Type> {
    openapi::resource_definition(res).and_then(schema::root)
}

fn context<'a>(
    ty: &'static Type,
    api_version: &'a str,
    subresource: &'a str,
    ignored: &'a managedfields::Set,
    now: &'a str,
) -> Context<'a> {
    Context {
        ty,
        api_version,
        subresource,
        ignored,
        now,
    }
}

/// The `managedFields` of an object created by `manager` (`obj` in the client's form,
/// defaults not yet applied): compared against Go's empty object, after defaulting, as
/// kube-apiserver decodes, defaults, then records.
pub fn managed_for_create(ctx: &Ctx, obj: &Value, manager: &str) -> Option<Value> {
    let res = ctx.res();
    let Some(ty) = object_type(res) else {
        return obj.pointer("/metadata/managedFields").cloned();
    };
    let mut defaulted = obj.clone();
    kadm_apimachinery::defaults::apply(res, &mut defaulted);
    let ignored = managedfields::reset_fields(res.has_status, "");
    let now = meta::now();
    let api_version = res.api_version();
    let cx = context(ty, &api_version, "", &ignored, &now);
    managedfields::update(&cx, &managedfields::zero_object(ty), &defaulted, manager)
}

/// The `managedFields` after a non-apply write of `new` over `live` (both stored form,
/// `new` after the endpoint's strategy) through endpoint `subresource`.
pub fn managed_for_update(
    ctx: &Ctx,
    live: &Value,
    new: &Value,
    subresource: &str,
    manager: &str,
) -> Option<Value> {
    let res = ctx.res();
    let Some(ty) = object_type(res) else {
        return live.pointer("/metadata/managedFields").cloned();
    };
    let live = to_wire(res, live.clone());
    let new = to_wire(res, new.clone());
    let ignored = managedfields::reset_fields(res.has_status, subresource);
    let now = meta::now();
    let api_version = res.api_version();
    let cx = context(ty, &api_version, subresource, &ignored, &now);
    managedfields::update(&cx, &live, &new, manager)
}

/// `PatchOptions.meta.k8s.io "" is invalid: …` (422).
fn patch_options_error(causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("meta.k8s.io", "PatchOptions", "", causes)
}

/// Refuses `force` on a patch that is not an apply, as Kubernetes does.
pub fn check_no_force(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.query.get("force").is_some() {
        return Err(patch_options_error(vec![Cause::forbidden(
            "force",
            "may not be specified for non-apply patch",
        )]));
    }
    Ok(())
}

/// The `force` parameter as Kubernetes reads a bool option: anything but ``, `0`,
/// `false` is true.
fn force(ctx: &Ctx) -> bool {
    match ctx.query.get("force") {
        None => false,
        Some(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
    }
}

/// `apps/v1, Kind=Deployment` (Go's `GroupVersionKind.String()`).
fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// The applied configuration: YAML or JSON, with the keys it repeats.
fn decode_config(body: &[u8]) -> Result<(Value, Vec<String>), ApiError> {
    let decoded = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        openapi::decode_json_strict(body).map_err(|e| e.to_string())
    } else {
        openapi::decode_yaml_strict(body).map_err(|e| e.to_string())
    };
    let (value, duplicates) =
        decoded.map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    match value {
        Value::Object(_) => Ok((value, duplicates)),
        Value::Null => Ok((Value::Object(Map::new()), duplicates)),
        other => Err(ApiError::bad_request(format!(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            }
        ))),
    }
}

fn apply_error(res: &ResourceInfo, config: &Value, e: ApplyError) -> ApiError {
    match e {
        ApplyError::Conflicts(c) => managedfields::conflict_error(&c),
        // Kubernetes answers a configuration its schema rejects with a plain error: 500,
        // no reason.
        ApplyError::Schema(errors) => {
            let (api_version, _) = meta::type_meta(config);
            ApiError::new(
                500,
                Reason::Unknown,
                format!(
                    "failed to create typed patch object ({}/{}; {}): {errors}",
                    meta::namespace(config),
                    meta::name(config),
                    gvk_string(api_version, res.kind)
                ),
            )
        }
    }
}

/// `PATCH …` with `application/apply-patch+yaml`.
pub async fn apply(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let res = ctx.res();
    let (manager, force) = apply_options(ctx)?;
    let dry_run = ctx.dry_run()?;
    let directive = ctx.field_validation()?;
    let sub = ctx.req.subresource.as_str();
    let Some(ty) = object_type(res) else {
        return Err(ApiError::unsupported_media_type(
            &ctx.content_type,
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
            ],
        ));
    };
    let (config, duplicates) = decode_config(&ctx.body)?;
    let (api_version, kind) = meta::type_meta(&config);
    if api_version != res.api_version() || kind != res.kind {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {}",
            gvk_string(api_version, kind)
        )));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    let key = ctx.key(&ctx.req.name);
    let api_version = res.api_version();
    let ignored = managedfields::reset_fields(res.has_status, sub);
    for _ in 0..16 {
        let current = ctx.state.store.get(&key).await?;
        let live = match &current {
            Some(c) => to_wire(res, c.object.clone()),
            None if !sub.is_empty() => return Err(ctx.not_found(&ctx.req.name)),
            None => {
                let mut metadata = Map::new();
                metadata.insert("name".into(), json!(ctx.req.name));
                if res.namespaced() {
                    metadata.insert("namespace".into(), json!(ctx.req.namespace));
                }
                json!({"apiVersion": api_version, "kind": res.kind, "metadata": metadata})
            }
        };
        let now = meta::now();
        let cx = context(ty, &api_version, sub, &ignored, &now);
        let applied = managedfields::apply(&cx, &live, &config, &manager, force)
            .map_err(|e| apply_error(res, &config, e))?;
        if !duplicates.is_empty() {
            match directive {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "error strict decoding YAML: {}",
                        duplicates.join(", ")
                    )));
                }
                FieldValidation::Warn => ctx.warn(duplicates.clone()),
                FieldValidation::Ignore => {}
            }
        }
        let mut obj = applied.object;
        check_type(res, &mut obj)?;
        check_name(ctx, &obj)?;
        reconcile_namespace(ctx, &mut obj)?;
        let rv = meta::resource_version(&obj).to_string();
        let Some(current) = current else {
            if !rv.is_empty() {
                return Err(ctx.not_found(&ctx.req.name));
            }
            match create(ctx, obj, dry_run).await? {
                Some(resp) => return Ok(resp),
                None => continue,
            }
        };
        if !rv.is_empty() && rv != current.mod_revision.to_string() {
            return Err(ApiError::stale_resource_version(
                res.group,
                res.plural,
                &ctx.req.name,
            ));
        }
        if let Some(saved) = store_update(ctx, &current, to_storage(res, obj), sub, None).await? {
            return Ok(respond_object(ctx, StatusCode::OK, to_wire(res, saved)));
        }
    }
    Err(ApiError::stale_resource_version(
        res.group,
        res.plural,
        &ctx.req.name,
    ))
}

/// The manager and `force` of an apply, after Kubernetes' PatchOptions checks.
fn apply_options(ctx: &Ctx) -> Result<(String, bool), ApiError> {
    let manager = ctx.query.str("fieldManager").to_string();
    let mut causes = Vec::new();
    if manager.is_empty() {
        causes.push(Cause::required(
            "fieldManager",
            "is required for apply patch",
        ));
    }
    causes.extend(managedfields::validate_field_manager(&manager));
    if !causes.is_empty() {
        return Err(patch_options_error(causes));
    }
    Ok((manager, force(ctx)))
}

/// Server-side apply of an autoscaling/v1 Scale to `live` (stored form): the replicas it
/// asks for (`None`: unchanged) and the parent's new `managedFields`, where the applier
/// owns the parent's `.spec.replicas` through the `scale` subresource, as Kubernetes maps
/// Scale ownership onto the parent.
pub fn apply_scale(ctx: &Ctx, live: &Value) -> Result<(Option<i64>, Option<Value>), ApiError> {
    let res = ctx.res();
    let (manager, force) = apply_options(ctx)?;
    let (config, _) = decode_config(&ctx.body)?;
    let (api_version, kind) = meta::type_meta(&config);
    if api_version != "autoscaling/v1" || kind != "Scale" {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {}",
            gvk_string(api_version, kind)
        )));
    }
    if let Some(scale_ty) =
        openapi::gvk_definition("autoscaling", "v1", "Scale").and_then(schema::root)
    {
        managedfields::field_set_strict(&config, scale_ty)
            .map_err(|e| apply_error(res, &config, ApplyError::Schema(e)))?;
    }
    let replicas = config.pointer("/spec/replicas").and_then(Value::as_i64);
    let Some(ty) = object_type(res) else {
        return Ok((replicas, live.pointer("/metadata/managedFields").cloned()));
    };
    let api_version = res.api_version();
    let mut parent =
        json!({"apiVersion": api_version, "kind": res.kind, "metadata": {"name": ctx.req.name}});
    if let Some(r) = replicas {
        parent["spec"] = json!({"replicas": r});
    }
    let ignored = managedfields::Set::new();
    let now = meta::now();
    let cx = context(ty, &api_version, "scale", &ignored, &now);
    let applied = managedfields::apply(&cx, &to_wire(res, live.clone()), &parent, &manager, force)
        .map_err(|e| apply_error(res, &config, e))?;
    Ok((
        replicas,
        applied.object.pointer("/metadata/managedFields").cloned(),
    ))
}

/// An apply to a missing object creates it; `None` when it appeared meanwhile.
async fn create(ctx: &Ctx, obj: Value, dry_run: bool) -> Result<Option<Response<Body>>, ApiError> {
    let res = ctx.res();
    let mut obj = to_storage(res, obj);
    strategy::prepare_create(res, &mut obj);
    let name = ctx.req.name.as_str();
    ctx.admit(crate::admission::Operation::Create, name, None, &mut obj)
        .await?;
    strategy::set_requester(res, &mut obj, &ctx.user.name, &ctx.user.groups);
    validate(res, &obj)?;
    ctx.admit_validate(crate::admission::Operation::Create, name, None, Some(&obj))
        .await?;
    crate::authz::escalation::check_request(ctx, None, &obj).await?;
    let outcome = store_create(ctx, &ctx.key(name), &mut obj, dry_run).await?;
    if dry_run {
        return Ok(Some(respond_object(
            ctx,
            StatusCode::CREATED,
            to_wire(res, obj),
        )));
    }
    match outcome {
        WriteOutcome::Written(rev) => {
            meta::set(&mut obj, "resourceVersion", json!(rev.to_string()));
            tracing::debug!(resource = res.plural, namespace = %ctx.req.namespace, name = %ctx.req.name, user = %ctx.user.name, "created by apply");
            Ok(Some(respond_object(
                ctx,
                StatusCode::CREATED,
                to_wire(res, obj),
            )))
        }
        WriteOutcome::Conflict => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gvk_strings_are_go_s() {
        assert_eq!(
            gvk_string("apps/v1", "Deployment"),
            "apps/v1, Kind=Deployment"
        );
        assert_eq!(gvk_string("v1", "Pod"), "/v1, Kind=Pod");
        assert_eq!(gvk_string("", ""), "/, Kind=");
    }

    #[test]
    fn configurations_decode_from_yaml_and_json() {
        let (v, d) = decode_config(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: '1'\n  a: '2'\n")
            .expect("yaml");
        assert_eq!(v["data"]["a"], "2");
        assert_eq!(d, vec!["duplicate field \"data.a\"".to_string()]);
        let (v, _) = decode_config(br#" {"kind":"ConfigMap"}"#).expect("json");
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(decode_config(b"").expect("empty").0, json!({}));
        let e = decode_config(b"- a\n").expect_err("list");
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("cannot unmarshal array"),
            "{}",
            e.message
        );
    }
}
