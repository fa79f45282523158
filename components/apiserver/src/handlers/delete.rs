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
        // Checked as Kubernetes' BeforeDelete does, whose Conflict names the Kind.
        if let Some(uid) = &opts.uid
            && uid != meta::uid(&current.object)
        {
            return Err(ApiError::conflict(
                res.group,
                res.kind,
                name,
                &format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    meta::uid(&current.object)
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && *rv != current.mod_revision.to_string()
        {
            return Err(ApiError::conflict(
                res.group,
                res.kind,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    current.mod_revision
                ),
            ));
        }
        ctx.admit_validate(
            crate::admission::Operation::Delete,
            name,
            Some(&current.object),
            None,
        )
        .await?;
        let mut obj = current.object.clone();
        let is_namespace = res.group.is_empty() && res.plural == "namespaces";
        let spec_finalizers = is_namespace
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        let already = meta::deletion_timestamp(&obj).is_some();
        let grace = strategy::grace_period(res, &obj, opts.grace);
        let old_grace = meta::metadata(&obj)
            .and_then(|m| m.get("deletionGracePeriodSeconds"))
            .and_then(Value::as_i64);
        // A pod waiting for its kubelet and a terminating namespace keep their finalizers;
        // every other delete recomputes the garbage collector's, so a second delete with
        // another policy swaps them as in Kubernetes.
        let graceful_pending = already && old_grace.unwrap_or(0) > 0;
        let current_finalizers = meta::finalizers(&obj);
        let finalizers = if graceful_pending || (already && is_namespace) {
            current_finalizers.clone()
        } else {
            gc_finalizers(res, &current_finalizers, opts.propagation.as_deref())
        };
        let immediate = finalizers.is_empty() && !spec_finalizers && grace == 0;
        if immediate {
            if dry_run {
                return Ok(Deleted {
                    object: obj,
                    gone: true,
                });
            }
            match super::write::store_delete(ctx, &key, &current).await? {
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
        if already && old_grace.is_some_and(|g| g <= grace) && finalizers == current_finalizers {
            // Already terminating with an equal or shorter period: nothing to change.
            return Ok(Deleted {
                object: obj,
                gone: false,
            });
        }
        if !already {
            // Controllers must see the deletion as a change of intent: Kubernetes bumps
            // the generation when it first marks an object (markAsDeleting, BeforeDelete).
            let generation = meta::generation(&obj);
            if generation > 0 {
                meta::set(&mut obj, "generation", json!(generation + 1));
            }
        }
        // An object held only by finalizers keeps the deletionTimestamp of its first
        // delete; a graceful one moves it to the new, shorter deadline.
        if !already || grace > 0 || old_grace.unwrap_or(0) > 0 {
            let when = chrono::Utc::now() + chrono::Duration::seconds(grace);
            meta::set(
                &mut obj,
                "deletionTimestamp",
                json!(meta::format_time(when)),
            );
        }
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

/// The garbage collector's finalizers.
const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// The finalizers an object has after a delete, as Kubernetes'
/// `deletionFinalizersForGarbageCollection` computes them: `orphan` and
/// `foregroundDeletion` follow the request's propagationPolicy, else the one the object
/// already carries, else the resource's default (batch/v1 Jobs orphan their pods, for
/// backward compatibility); every other finalizer stays. An unchanged set keeps its order.
fn gc_finalizers(
    res: &kadm_apimachinery::ResourceInfo,
    current: &[String],
    propagation: Option<&str>,
) -> Vec<String> {
    let carried = current
        .iter()
        .map(String::as_str)
        .find(|f| *f == ORPHAN || *f == FOREGROUND);
    let (orphan, foreground) = match (propagation, carried) {
        (Some("Orphan"), _) => (true, false),
        (Some("Foreground"), _) => (false, true),
        (Some(_), _) => (false, false),
        (None, Some(f)) => (f == ORPHAN, f == FOREGROUND),
        (None, None) => (
            res.group == "batch" && res.version == "v1" && res.plural == "jobs",
            false,
        ),
    };
    let mut next: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        next.push(ORPHAN.into());
    }
    if foreground {
        next.push(FOREGROUND.into());
    }
    let as_set = |l: &[String]| l.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    if as_set(&next) == as_set(current) {
        current.to_vec()
    } else {
        next
    }
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
    let list_meta = json!({"resourceVersion": listed.revision.to_string()});
    let body = match ctx.format {
        // Checked once the deletes are done, as Kubernetes transforms the answer only.
        Format::Partial(p) => {
            p.check(res, true)?;
            p.list_of(list_meta, &items)
        }
        _ => json!({
            "kind": res.list_kind(),
            "apiVersion": res.api_version(),
            "metadata": list_meta,
            "items": items,
        }),
    };
    Ok(response::object(
        StatusCode::OK,
        &body,
        ctx.format.encoding(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, plural: &str) -> &'static kadm_apimachinery::ResourceInfo {
        kadm_apimachinery::registry::lookup(group, "v1", plural).expect("served resource")
    }

    fn strings(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gc_finalizers_follow_the_policy_then_the_object_then_the_default() {
        let deploy = res("apps", "deployments");
        let cases: &[(&[&str], Option<&str>, &[&str])] = &[
            (&[], None, &[]),
            (&[], Some("Background"), &[]),
            (&[], Some("Orphan"), &["orphan"]),
            (&[], Some("Foreground"), &["foregroundDeletion"]),
            (&["foregroundDeletion"], Some("Orphan"), &["orphan"]),
            (&["orphan"], Some("Foreground"), &["foregroundDeletion"]),
            (&["orphan"], Some("Background"), &[]),
            (&["orphan"], None, &["orphan"]),
            (&["foregroundDeletion"], None, &["foregroundDeletion"]),
            (
                &["example.com/x", "orphan"],
                Some("Foreground"),
                &["example.com/x", "foregroundDeletion"],
            ),
            // An unchanged set keeps its order.
            (
                &["orphan", "example.com/x"],
                Some("Orphan"),
                &["orphan", "example.com/x"],
            ),
        ];
        for (current, policy, want) in cases {
            assert_eq!(
                gc_finalizers(deploy, &strings(current), *policy),
                strings(want),
                "{current:?} with {policy:?}"
            );
        }
    }

    #[test]
    fn batch_v1_jobs_orphan_by_default() {
        let jobs = res("batch", "jobs");
        assert_eq!(gc_finalizers(jobs, &[], None), strings(&["orphan"]));
        assert!(gc_finalizers(jobs, &[], Some("Background")).is_empty());
        assert!(gc_finalizers(res("", "configmaps"), &[], None).is_empty());
    }
}
