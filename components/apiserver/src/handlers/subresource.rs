//! Subresources with a shape of their own: `/scale` (autoscaling/v1 Scale) and
//! `pods/binding` (the scheduler's write).

use http::{Response, StatusCode};
use kadm_apimachinery::patch::{PatchType, strategic};
use kadm_apimachinery::{ApiError, meta};
use serde_json::{Value, json};

use super::write::apply_patch_to;
use super::{Ctx, decode_body, validate_patched};
use crate::response::{self, Body};
use crate::storage::WriteOutcome;
use crate::strategy;

/// The Scale view of a scalable object.
fn scale_of(obj: &Value) -> Value {
    let selector = obj.pointer("/spec/selector").map(|s| {
        let mut parts: Vec<String> = s
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
            .collect();
        parts.sort();
        parts.join(",")
    });
    let mut status =
        json!({"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0)});
    if let Some(sel) = selector {
        status["selector"] = json!(sel);
    }
    let m = meta::metadata(obj).cloned().unwrap_or_default();
    let pick = |k: &str| m.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": status,
    })
}

pub async fn get_scale(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let stored = ctx
        .state
        .store
        .get(&ctx.key(&ctx.req.name))
        .await?
        .ok_or_else(|| ctx.not_found(&ctx.req.name))?;
    let scale = scale_of(&stored.object);
    if ctx.format == crate::response::Format::Table {
        // `kubectl get <kind> <name> --subresource=scale` asks for Kubernetes' Scale table.
        let include =
            kadm_apimachinery::table::IncludeObject::parse(ctx.query.str("includeObject"))
                .unwrap_or_default();
        return Ok(response::json(
            StatusCode::OK,
            &kadm_apimachinery::table::scale_to_table(&scale, include),
        ));
    }
    if let crate::response::Format::Partial(p) = ctx.format {
        p.check_type(false, "*autoscaling.Scale")?;
        return Ok(response::object(
            StatusCode::OK,
            &p.object(&scale),
            ctx.format,
        ));
    }
    Ok(response::json(StatusCode::OK, &scale))
}

pub async fn write_scale(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let res = ctx.res();
    let is_patch = ctx.req.verb == crate::request::Verb::Patch;
    let server_side_apply = is_patch && super::apply::is_apply(ctx);
    let manager = if server_side_apply {
        String::new()
    } else {
        if is_patch {
            super::apply::check_no_force(ctx)?;
        }
        ctx.update_manager()?
    };
    for _ in 0..16 {
        let current = ctx
            .state
            .store
            .get(&ctx.key(&ctx.req.name))
            .await?
            .ok_or_else(|| ctx.not_found(&ctx.req.name))?;
        let scale = scale_of(&current.object);
        let mut applied_fields = None;
        let wanted = if server_side_apply {
            let (replicas, managed) = super::apply::apply_scale(ctx, &current.object)?;
            applied_fields = Some(managed);
            let mut s = scale.clone();
            if let Some(r) = replicas {
                s["spec"]["replicas"] = json!(r);
            }
            s["metadata"]["resourceVersion"] = json!("");
            s
        } else if is_patch {
            let ty = PatchType::from_content_type(&ctx.content_type).ok_or_else(|| {
                ApiError::unsupported_media_type(&ctx.content_type, PatchType::MEDIA_TYPES)
            })?;
            // The patch applies to the autoscaling/v1 Scale, with Scale's patch metadata.
            let definition = strategic::kind_definition("autoscaling", "v1", "Scale");
            let mut patched = apply_patch_to(res, definition, ty, &scale, &ctx.body)?;
            validate_patched(ctx, ty, &mut patched)?;
            patched
        } else {
            decode_body(ctx)?
        };
        let rv = meta::resource_version(&wanted);
        if !rv.is_empty() && rv != current.mod_revision.to_string() {
            return Err(ApiError::stale_resource_version(
                res.group,
                res.plural,
                &ctx.req.name,
            ));
        }
        let replicas = wanted
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                &ctx.req.name,
                vec![kadm_apimachinery::Cause::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut obj = current.object.clone();
        obj["spec"]["replicas"] = json!(replicas);
        strategy::prepare_update(res, &current.object, &mut obj, "")?;
        // Kubernetes records scale writes on the parent, as `subresource: scale` entries.
        let managed = match applied_fields {
            Some(m) => m,
            None => super::apply::managed_for_update(ctx, &current.object, &obj, "scale", &manager),
        };
        kadm_apimachinery::managedfields::set_managed_fields(&mut obj, managed);
        if ctx.dry_run()? {
            return Ok(response::json(StatusCode::OK, &scale_of(&obj)));
        }
        match ctx
            .state
            .store
            .update(&ctx.key(&ctx.req.name), &obj, current.mod_revision)
            .await?
        {
            WriteOutcome::Written(rev) => {
                meta::set(&mut obj, "resourceVersion", json!(rev.to_string()));
                return Ok(response::json(StatusCode::OK, &scale_of(&obj)));
            }
            WriteOutcome::Conflict => continue,
        }
    }
    Err(ApiError::stale_resource_version(
        res.group,
        res.plural,
        &ctx.req.name,
    ))
}

/// `POST pods/<name>/binding`: sets `spec.nodeName` once and marks the pod scheduled.
pub async fn bind(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let binding = decode_body(ctx)?;
    let target = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if target.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &ctx.req.name,
            vec![kadm_apimachinery::Cause::required("target.name", "")],
        ));
    }
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("Node");
    if !kind.is_empty() && kind != "Node" {
        return Err(ApiError::invalid(
            "",
            "Binding",
            &ctx.req.name,
            vec![kadm_apimachinery::Cause::not_supported(
                "target.kind",
                &json!(kind),
                &["Node"],
            )],
        ));
    }
    let key = ctx.key(&ctx.req.name);
    for _ in 0..16 {
        let current = ctx
            .state
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found("", "pods", &ctx.req.name))?;
        let mut pod = current.object.clone();
        if meta::deletion_timestamp(&pod).is_some() {
            return Err(ApiError::conflict(
                "",
                "pods",
                &ctx.req.name,
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    ctx.req.name
                ),
            ));
        }
        if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str)
            && uid != meta::uid(&pod)
        {
            return Err(ApiError::conflict(
                "",
                "pods",
                &ctx.req.name,
                "the UID in the binding does not match the pod",
            ));
        }
        let existing = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !existing.is_empty() {
            return Err(ApiError::conflict(
                "",
                "pods",
                &ctx.req.name,
                &format!(
                    "pod {} is already assigned to node \"{existing}\"",
                    ctx.req.name
                ),
            ));
        }
        pod["spec"]["nodeName"] = json!(target);
        let now = meta::now();
        let mut conditions: Vec<Value> = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.get("type") != Some(&json!("PodScheduled")))
            .collect();
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        pod["status"]["conditions"] = json!(conditions);
        if let Some(ann) = binding
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
        {
            for (k, v) in ann {
                pod["metadata"]["annotations"][k] = v.clone();
            }
        }
        if ctx.dry_run()? {
            break;
        }
        match ctx
            .state
            .store
            .update(&key, &pod, current.mod_revision)
            .await?
        {
            WriteOutcome::Written(_) => break,
            WriteOutcome::Conflict => continue,
        }
    }
    Ok(response::json(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reflects_spec_status_and_selector() {
        let d = json!({"metadata": {"name": "d", "namespace": "n", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"b": "2", "a": "1"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "a=1,b=2");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
    }
}
