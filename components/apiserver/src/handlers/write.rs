//! CREATE, UPDATE and PATCH. All three end in one guarded etcd write; nothing is
//! stored unless the object decoded, defaulted and validated.

use http::{Response, StatusCode};
use kadm_apimachinery::managedfields;
use kadm_apimachinery::patch::{self, PatchType, strategic};
use kadm_apimachinery::{ApiError, ResourceInfo, meta};
use rand::Rng;
use serde_json::{Value, json};

use super::{
    Ctx, check_type, decode_body, respond_object, to_storage, to_wire, validate, validate_patched,
};
use crate::admission::Operation;
use crate::response::Body;
use crate::storage::{Stored, WriteOutcome};
use crate::strategy;

/// Characters Kubernetes uses for `generateName` suffixes (no vowels, no confusables).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect()
}

/// Puts the URL's namespace into the object, refusing a different one in the body.
pub(super) fn reconcile_namespace(ctx: &Ctx, obj: &mut Value) -> Result<(), ApiError> {
    let res = ctx.res();
    if !res.namespaced() {
        return Ok(());
    }
    let body_ns = meta::namespace(obj).to_string();
    if !body_ns.is_empty() && body_ns != ctx.req.namespace {
        return Err(ApiError::bad_request(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({})",
            ctx.req.namespace
        )));
    }
    meta::set(obj, "namespace", json!(ctx.req.namespace));
    Ok(())
}

pub async fn create(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let res = ctx.res();
    let dry_run = ctx.dry_run()?;
    let manager = ctx.update_manager()?;
    let mut obj = decode_body(ctx)?;
    check_type(res, &mut obj)?;
    reconcile_namespace(ctx, &mut obj)?;
    let generate = meta::name(&obj).is_empty() && !meta::generate_name(&obj).is_empty();
    // Kubernetes records who set what on the decoded, defaulted object, before the
    // create strategy resets what it resets.
    let managed = super::apply::managed_for_create(ctx, &obj, &manager);
    let mut obj = to_storage(res, obj);
    managedfields::set_managed_fields(&mut obj, managed);
    strategy::prepare_create(res, &mut obj);
    let name = meta::name(&obj).to_string();
    ctx.admit(Operation::Create, &name, None, &mut obj).await?;
    strategy::set_requester(res, &mut obj, &ctx.user.name, &ctx.user.groups);
    // Validate with the generateName prefix standing in for the name, as Kubernetes does.
    validate(res, &obj)?;
    ctx.admit_validate(Operation::Create, &name, None, Some(&obj))
        .await?;
    crate::authz::escalation::check_request(ctx, None, &obj).await?;
    for attempt in 0..8 {
        if generate {
            let name = format!("{}{}", meta::generate_name(&obj), random_suffix());
            meta::set(&mut obj, "name", json!(name));
            if attempt == 0 {
                validate(res, &obj)?;
            }
        }
        let name = meta::name(&obj).to_string();
        let outcome = store_create(ctx, &ctx.key(&name), &mut obj, dry_run).await?;
        if dry_run {
            return Ok(respond_object(ctx, StatusCode::CREATED, to_wire(res, obj)));
        }
        match outcome {
            WriteOutcome::Written(rev) => {
                meta::set(&mut obj, "resourceVersion", json!(rev.to_string()));
                tracing::debug!(resource = res.plural, namespace = %ctx.req.namespace, name = %name, user = %ctx.user.name, "created");
                return Ok(respond_object(ctx, StatusCode::CREATED, to_wire(res, obj)));
            }
            WriteOutcome::Conflict if generate => continue,
            WriteOutcome::Conflict => {
                return Err(ApiError::already_exists(res.group, res.plural, &name));
            }
        }
    }
    Err(
        ApiError::already_exists(res.group, res.plural, meta::generate_name(&obj))
            .with_retry("generateName ran out of unique names; retry"),
    )
}

/// Creates `obj` at `key` (a dry run writes nothing). Services get their cluster IP and
/// node ports in the same transaction; a dry run only fills them in.
pub(super) async fn store_create(
    ctx: &Ctx,
    key: &str,
    obj: &mut Value,
    dry_run: bool,
) -> Result<WriteOutcome, ApiError> {
    if crate::services::applies(ctx.res()) {
        let svc = &ctx.state.services;
        svc.write(&ctx.state.store, key, None, obj, dry_run).await
    } else if dry_run {
        Ok(WriteOutcome::Written(0))
    } else {
        Ok(ctx.state.store.create(key, obj).await?)
    }
}

/// Deletes `current` at `key`, guarded by its revision; a Service's cluster IP and node
/// ports are released in the same transaction.
pub(super) async fn store_delete(
    ctx: &Ctx,
    key: &str,
    current: &Stored,
) -> Result<WriteOutcome, ApiError> {
    if crate::services::applies(ctx.res()) {
        let svc = &ctx.state.services;
        svc.delete(&ctx.state.store, key, &current.object, current.mod_revision)
            .await
    } else {
        Ok(ctx.state.store.delete(key, current.mod_revision).await?)
    }
}

trait Retry {
    fn with_retry(self, msg: &str) -> Self;
}
impl Retry for ApiError {
    fn with_retry(mut self, msg: &str) -> Self {
        self.message = format!("{}: {msg}", self.message);
        self.retry_after = Some(1);
        self
    }
}

/// Stores `new` over `current` for endpoint `sub`; the shared tail of update, patch and
/// apply. With `manager`, the write is recorded in `managedFields` as that manager's
/// update (apply computes them itself). Returns `Ok(None)` when etcd moved on meanwhile
/// (caller may retry).
pub(super) async fn store_update(
    ctx: &Ctx,
    current: &Stored,
    mut new: Value,
    sub: &str,
    manager: Option<&str>,
) -> Result<Option<Value>, ApiError> {
    let res = ctx.res();
    let name = ctx.req.name.as_str();
    ctx.admit(Operation::Update, name, Some(&current.object), &mut new)
        .await?;
    strategy::prepare_update(res, &current.object, &mut new, sub)?;
    if crate::services::applies(res) {
        crate::services::prepare_update(&current.object, &mut new)?;
    }
    if let Some(manager) = manager {
        let managed = super::apply::managed_for_update(ctx, &current.object, &new, sub, manager);
        managedfields::set_managed_fields(&mut new, managed);
    }
    validate(res, &new)?;
    ctx.admit_validate(Operation::Update, name, Some(&current.object), Some(&new))
        .await?;
    crate::authz::escalation::check_request(ctx, Some(&current.object), &new).await?;
    let key = ctx.key(&ctx.req.name);
    let dry_run = ctx.dry_run()?;
    if strategy::should_delete_during_update(res, &new) {
        if dry_run {
            return Ok(Some(new));
        }
        return match store_delete(ctx, &key, current).await? {
            WriteOutcome::Written(rev) => {
                meta::set(&mut new, "resourceVersion", json!(rev.to_string()));
                Ok(Some(new))
            }
            WriteOutcome::Conflict => Ok(None),
        };
    }
    // An update that changes nothing writes nothing, as Kubernetes does — unless the
    // stored value is stale (encrypted with an old key, or not encrypted): then the write
    // re-encrypts it with the current key.
    let mut unchanged = current.object.clone();
    meta::remove(&mut unchanged, "resourceVersion");
    let mut candidate = new.clone();
    meta::remove(&mut candidate, "resourceVersion");
    if (unchanged == candidate && !current.stale) || dry_run {
        meta::set(
            &mut new,
            "resourceVersion",
            json!(current.mod_revision.to_string()),
        );
        return Ok(Some(new));
    }
    let outcome = if crate::services::applies(res) {
        let svc = &ctx.state.services;
        let old = Some((&current.object, current.mod_revision));
        svc.write(&ctx.state.store, &key, old, &mut new, false)
            .await?
    } else {
        ctx.state
            .store
            .update(&key, &new, current.mod_revision)
            .await?
    };
    match outcome {
        WriteOutcome::Written(rev) => {
            meta::set(&mut new, "resourceVersion", json!(rev.to_string()));
            Ok(Some(new))
        }
        WriteOutcome::Conflict => Ok(None),
    }
}

pub(super) fn check_name(ctx: &Ctx, obj: &Value) -> Result<(), ApiError> {
    let body_name = meta::name(obj);
    if !body_name.is_empty() && body_name != ctx.req.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.req.name
        )));
    }
    Ok(())
}

pub async fn update(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let res = ctx.res();
    let manager = ctx.update_manager()?;
    let mut obj = decode_body(ctx)?;
    check_type(res, &mut obj)?;
    check_name(ctx, &obj)?;
    reconcile_namespace(ctx, &mut obj)?;
    let obj = to_storage(res, obj);
    let wanted_rv = meta::resource_version(&obj).to_string();
    for _ in 0..16 {
        let current = ctx
            .state
            .store
            .get(&ctx.key(&ctx.req.name))
            .await?
            .ok_or_else(|| ctx.not_found(&ctx.req.name))?;
        if !wanted_rv.is_empty() && wanted_rv != current.mod_revision.to_string() {
            return Err(ApiError::stale_resource_version(
                res.group,
                res.plural,
                &ctx.req.name,
            ));
        }
        if let Some(saved) = store_update(
            ctx,
            &current,
            obj.clone(),
            &ctx.req.subresource,
            Some(&manager),
        )
        .await?
        {
            return Ok(respond_object(ctx, StatusCode::OK, to_wire(res, saved)));
        }
        if !wanted_rv.is_empty() {
            return Err(ApiError::stale_resource_version(
                res.group,
                res.plural,
                &ctx.req.name,
            ));
        }
    }
    Err(ApiError::stale_resource_version(
        res.group,
        res.plural,
        &ctx.req.name,
    ))
}

/// Applies a patch body of `ty` to `target` (both in the client's form of `res`).
pub fn apply_patch(
    res: &ResourceInfo,
    ty: PatchType,
    target: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let definition = strategic::kind_definition(res.group, res.version, res.kind);
    apply_patch_to(res, definition, ty, target, body)
}

/// Applies a patch body of `ty` to `target`, an object of OpenAPI definition
/// `definition` (the strategic merge patch needs its patch metadata; `None`: the type has
/// none and a strategic merge patch is refused with 415, as Kubernetes refuses it).
pub fn apply_patch_to(
    res: &ResourceInfo,
    definition: Option<&str>,
    ty: PatchType,
    target: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not valid json: {e}")))?;
    match ty {
        PatchType::Json => patch::apply_json_patch(target, &patch).map_err(|e| {
            ApiError::invalid(
                res.group,
                res.kind,
                meta::name(target),
                vec![kadm_apimachinery::Cause {
                    reason: "FieldValueInvalid",
                    message: e.to_string(),
                    field: String::new(),
                }],
            )
        }),
        PatchType::Merge => patch::apply_merge_patch(target, &patch)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        PatchType::StrategicMerge => match definition {
            Some(def) => strategic::apply_strategic(target, &patch, strategic::builtin_meta(), def)
                .map_err(strategic_error),
            None => Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                &[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                ],
            )),
        },
        PatchType::Apply => Err(ApiError::unsupported_media_type(
            "application/apply-patch+yaml",
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
            ],
        )
        .with_message_suffix("server-side apply to this subresource is not supported by kadm yet")),
    }
}

/// A failed strategic merge patch as Kubernetes' apiserver answers it: malformed
/// directives 400, lists of lists 422 (a generic "Invalid" with the text as its cause),
/// anything else 500 with the bare error text and no reason.
fn strategic_error(e: strategic::StrategicError) -> ApiError {
    match e {
        strategic::StrategicError::BadRequest(m) => ApiError::bad_request(m),
        strategic::StrategicError::Unprocessable(m) => {
            let mut err = ApiError::new(
                422,
                kadm_apimachinery::Reason::Invalid,
                "the server rejected our request due to an error in our request",
            );
            err.causes = vec![kadm_apimachinery::Cause {
                reason: "UnexpectedServerResponse",
                message: m,
                field: String::new(),
            }];
            err
        }
        strategic::StrategicError::Failed(m) => {
            ApiError::new(500, kadm_apimachinery::Reason::Unknown, m)
        }
    }
}

trait Suffix {
    fn with_message_suffix(self, s: &str) -> Self;
}
impl Suffix for ApiError {
    fn with_message_suffix(mut self, s: &str) -> Self {
        self.message = format!("{}; {s}", self.message);
        self
    }
}

pub async fn patch(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let res = ctx.res();
    super::apply::check_no_force(ctx)?;
    let manager = ctx.update_manager()?;
    let ty = PatchType::from_content_type(&ctx.content_type).ok_or_else(|| {
        ApiError::unsupported_media_type(&ctx.content_type, PatchType::MEDIA_TYPES)
    })?;
    if ctx.body.is_empty() {
        return Err(ApiError::bad_request("the patch body is empty"));
    }
    for _ in 0..16 {
        let current = ctx
            .state
            .store
            .get(&ctx.key(&ctx.req.name))
            .await?
            .ok_or_else(|| ctx.not_found(&ctx.req.name))?;
        let wire = to_wire(res, current.object.clone());
        let mut patched = apply_patch(res, ty, &wire, &ctx.body)?;
        validate_patched(ctx, ty, &mut patched)?;
        check_type(res, &mut patched)?;
        check_name(ctx, &patched)?;
        reconcile_namespace(ctx, &mut patched)?;
        let patched_rv = meta::resource_version(&patched).to_string();
        if !patched_rv.is_empty() && patched_rv != current.mod_revision.to_string() {
            // The patch itself carried a resourceVersion: it is a precondition.
            return Err(ApiError::stale_resource_version(
                res.group,
                res.plural,
                &ctx.req.name,
            ));
        }
        if let Some(saved) = store_update(
            ctx,
            &current,
            to_storage(res, patched),
            &ctx.req.subresource,
            Some(&manager),
        )
        .await?
        {
            return Ok(respond_object(ctx, StatusCode::OK, to_wire(res, saved)));
        }
    }
    Err(ApiError::stale_resource_version(
        res.group,
        res.plural,
        &ctx.req.name,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_suffixes_use_kubernetes_alphabet() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)), "{s}");
    }

    fn deployments() -> &'static ResourceInfo {
        kadm_apimachinery::registry::lookup("apps", "v1", "deployments").expect("deployments")
    }

    #[test]
    fn strategic_merge_patch_merges_containers_by_name() {
        let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}}}});
        let body = br#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"x:2"}]}}}}"#;
        let got =
            apply_patch(deployments(), PatchType::StrategicMerge, &target, body).expect("patch");
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "x:2"}, {"name": "b", "image": "y:1"}])
        );
    }

    #[test]
    fn strategic_merge_patch_errors_are_kubernetes_statuses() {
        let target = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}});
        let no_key = br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#;
        let e = apply_patch(deployments(), PatchType::StrategicMerge, &target, no_key)
            .expect_err("no merge key");
        assert_eq!(e.code, 500);
        assert_eq!(
            e.message,
            "map: map[image:x] does not contain declared merge key: name"
        );
        assert!(e.to_status().get("reason").is_none(), "{:?}", e.to_status());
        let bad = br#"{"spec":{"$retainKeys":"x"}}"#;
        let e = apply_patch(deployments(), PatchType::StrategicMerge, &target, bad)
            .expect_err("retainKeys");
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "invalid patch format of retainKeys")
        );
        let lists = br#"{"metadata":{"finalizers":[["a"]]}}"#;
        let e = apply_patch(
            deployments(),
            PatchType::StrategicMerge,
            &json!({"metadata": {"finalizers": [["b"]]}}),
            lists,
        )
        .expect_err("lists of lists");
        assert_eq!(e.code, 422);
        assert_eq!(e.causes[0].message, "lists of lists are not supported");
    }

    #[test]
    fn strategic_merge_patch_without_metadata_is_415() {
        let e = apply_patch_to(
            deployments(),
            None,
            PatchType::StrategicMerge,
            &json!({}),
            b"{}",
        )
        .expect_err("415");
        assert_eq!(e.code, 415);
        assert_eq!(
            e.message,
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json"
        );
    }
}
