//! DELETE and DELETECOLLECTION with Kubernetes' semantics: preconditions,
//! graceful deletion for pods on a node, finalizers (including the ones that
//! `propagationPolicy` adds), and the namespace lifecycle.

use http::{Response, StatusCode};
use kadm_apimachinery::{ApiError, meta, protobuf, status::success_status};
use serde_json::{Value, json};

use super::read::{Filter, list_objects};
use super::{Ctx, respond_object, to_wire};
use crate::response::{self, Body, Format};
use crate::storage::WriteOutcome;
use crate::strategy;

/// Namespaces the cluster cannot work without.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

#[derive(Debug, Default)]
pub struct DeleteOptions {
    grace: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    /// `dryRun=All` from the query or the body (kubectl sends it in the DeleteOptions body).
    dry_run: bool,
}

impl DeleteOptions {
    /// From the query and/or a `DeleteOptions` body (the body wins, as in Kubernetes).
    pub fn parse(ctx: &Ctx) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            grace: ctx.query.int("gracePeriodSeconds")?,
            dry_run: ctx.dry_run()?,
            ..Default::default()
        };
        if let Some(p) = ctx.query.get("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if ctx.query.get("orphanDependents").is_some() {
            o.propagation = Some(
                if ctx.query.bool("orphanDependents") {
                    "Orphan"
                } else {
                    "Background"
                }
                .into(),
            );
        }
        if !ctx.body.is_empty() {
            let media = ctx.content_type.split(';').next().unwrap_or("").trim();
            let body: Value = if media.eq_ignore_ascii_case(protobuf::MEDIA_TYPE) {
                protobuf::decode(&ctx.body).map_err(|e| {
                    ApiError::bad_request(format!("the DeleteOptions body cannot be decoded: {e}"))
                })?
            } else {
                serde_json::from_slice(&ctx.body).map_err(|e| {
                    ApiError::bad_request(format!("the DeleteOptions body is not valid json: {e}"))
                })?
            };
            if let Some(g) = body.get("gracePeriodSeconds").filter(|v| !v.is_null()) {
                o.grace = Some(g.as_i64().ok_or_else(|| {
                    ApiError::bad_request("gracePeriodSeconds must be an integer")
                })?);
            }
            if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
                o.propagation = Some(p.to_string());
            }
            if let Some(b) = body.get("orphanDependents").and_then(Value::as_bool) {
                o.propagation = Some(if b { "Orphan" } else { "Background" }.into());
            }
            if let Some(modes) = body.get("dryRun").filter(|v| !v.is_null()) {
                o.dry_run |= body_dry_run(modes)?;
            }
            o.uid = body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.resource_version = body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(p) = &o.propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![kadm_apimachinery::Cause::not_supported(
                    "propagationPolicy",
                    &json!(p),
                    &["Background", "Foreground", "Orphan"],
                )],
            ));
        }
        Ok(o)
    }
}

/// `DeleteOptions.dryRun` from a body: empty, or `["All"]` (Kubernetes' only mode); any
/// other value is a 422 on the DeleteOptions.
fn body_dry_run(modes: &Value) -> Result<bool, ApiError> {
    let invalid = |value: &Value| {
        ApiError::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            vec![kadm_apimachinery::Cause::not_supported(
                "dryRun",
                value,
                &["All"],
            )],
        )
    };
    let Some(list) = modes.as_array() else {
        return Err(invalid(modes));
    };
    for m in list {
        if m.as_str() != Some("All") {
            return Err(invalid(m));
        }
    }
    Ok(!list.is_empty())
}

/// What a delete did: removed now, or marked for deletion and waiting.
pub struct Deleted {
    pub object: Value,
    pub gone: bool,
}

pub async fn delete_one(ctx: &Ctx, name: &str, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
    let res = ctx.res();
    let key = ctx.key(name);
    let dry_run = opts.dry_run;
    if res.group.is_empty() && res.plural == "namespaces" && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            "",
            "namespaces",
            name,
            "this namespace may not be deleted",
        ));
    }
    for _ in 0..16 {
        let current = ctx
            .state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ctx.not_found(name))?;
        if let Some(uid) = &opts.uid
            && uid != meta::uid(&current.object)
        {
            return Err(ApiError::conflict(
                res.group,
                res.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&current.object)
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && *rv != current.mod_revision.to_string()
        {
            return Err(ApiError::conflict(
                res.group,
                res.plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    current.mod_revision
                ),
            ));
        }
        let mut obj = current.object.clone();
        let mut finalizers = meta::finalizers(&obj);
        match opts.propagation.as_deref() {
            Some("Orphan") => {
                finalizers.retain(|f| f != "foregroundDeletion");
                if !finalizers.iter().any(|f| f == "orphan") {
                    finalizers.push("orphan".into());
                }
            }
            Some("Foreground") => {
                finalizers.retain(|f| f != "orphan");
                if !finalizers.iter().any(|f| f == "foregroundDeletion") {
                    finalizers.push("foregroundDeletion".into());
                }
            }
            _ => {}
        }
        let is_namespace = res.group.is_empty() && res.plural == "namespaces";
        let spec_finalizers = is_namespace
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        let already = meta::deletion_timestamp(&obj).is_some();
        // Finalizers already being processed are not re-added by a repeated delete.
        if already {
            finalizers = meta::finalizers(&obj);
        }
        let grace = strategy::grace_period(res, &obj, opts.grace);
        let old_grace = meta::metadata(&obj)
            .and_then(|m| m.get("deletionGracePeriodSeconds"))
            .and_then(Value::as_i64);
        let immediate = finalizers.is_empty() && !spec_finalizers && grace == 0;
        if immediate {
            if dry_run {
                return Ok(Deleted {
                    object: obj,
                    gone: true,
                });
            }
            match ctx.state.store.delete(&key, current.mod_revision).await? {
                WriteOutcome::Written(rev) => {
                    meta::set(&mut obj, "resourceVersion", json!(rev.to_string()));
                    tracing::debug!(resource = res.plural, namespace = %ctx.req.namespace, name, user = %ctx.user.name, "deleted");
                    return Ok(Deleted {
                        object: obj,
                        gone: true,
                    });
                }
                WriteOutcome::Conflict => continue,
            }
        }
        if already
            && old_grace.is_some_and(|g| g <= grace)
            && finalizers == meta::finalizers(&current.object)
        {
            // Already terminating with an equal or shorter period: nothing to change.
            return Ok(Deleted {
                object: obj,
                gone: false,
            });
        }
        let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
        meta::set(
            &mut obj,
            "deletionTimestamp",
            json!(meta::format_time(when)),
        );
        meta::set(&mut obj, "deletionGracePeriodSeconds", json!(grace));
        meta::set_finalizers(&mut obj, &finalizers);
        if is_namespace {
            obj["status"]["phase"] = json!("Terminating");
        }
        if dry_run {
            return Ok(Deleted {
                object: obj,
                gone: false,
            });
        }
        match ctx
            .state
            .store
            .update(&key, &obj, current.mod_revision)
            .await?
        {
            WriteOutcome::Written(rev) => {
                meta::set(&mut obj, "resourceVersion", json!(rev.to_string()));
                return Ok(Deleted {
                    object: obj,
                    gone: false,
                });
            }
            WriteOutcome::Conflict => continue,
        }
    }
    Err(ApiError::stale_resource_version(
        res.group, res.plural, name,
    ))
}

pub async fn delete(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let opts = DeleteOptions::parse(ctx)?;
    let res = ctx.res();
    let d = delete_one(ctx, &ctx.req.name, &opts).await?;
    if d.gone && !strategy::returns_deleted_object(res) {
        return Ok(response::json(
            StatusCode::OK,
            &success_status(res.group, res.plural, &ctx.req.name, meta::uid(&d.object)),
        ));
    }
    Ok(respond_object(ctx, StatusCode::OK, to_wire(res, d.object)))
}

pub async fn delete_collection(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let opts = DeleteOptions::parse(ctx)?;
    let filter = Filter::from_query(ctx)?;
    let listed = list_objects(ctx, &filter).await?;
    let res = ctx.res();
    let mut items = Vec::new();
    for obj in listed.items {
        let name = meta::name(&obj).to_string();
        match delete_one(ctx, &name, &opts).await {
            Ok(d) => items.push(to_wire(res, d.object)),
            // Deleted by someone else meanwhile: that is what we wanted.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": items,
    });
    let format = if ctx.format == Format::Yaml {
        Format::Yaml
    } else {
        Format::Json
    };
    Ok(response::object(StatusCode::OK, &body, format))
}
