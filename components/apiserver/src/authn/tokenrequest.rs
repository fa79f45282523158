//! The TokenRequest API: `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`
//! with an authentication.k8s.io/v1 TokenRequest (`kubectl create token`). The answer is
//! the request with `status.token` (a signed service-account JWT) and
//! `status.expirationTimestamp`; nothing is stored. As in Kubernetes: audiences default to
//! `--api-audiences`, `expirationSeconds` to 3600 (at least 600, shortened to
//! `--service-account-max-token-expiration` with a warning), and a `boundObjectRef` to a
//! Pod, Secret or Node must exist (with its uid, when given) and ties the token to it.

use http::{Response, StatusCode};
use kadm_apimachinery::registry::split_api_version;
use kadm_apimachinery::{ApiError, Cause, meta, registry};
use serde_json::{Value, json};

use super::serviceaccount::{
    self, Bound, EXPIRATION_EXTENSION_SECONDS, ObjectRef, WARN_ONLY_EXPIRATION_SECONDS,
};
use crate::authz::rules::strings;
use crate::handlers::{Ctx, decode_body};
use crate::response::{self, Body, Format};

pub const GROUP: &str = "authentication.k8s.io";
pub const KIND: &str = "TokenRequest";
/// The shortest token Kubernetes issues (`MinTokenAgeSec`).
pub const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
/// What `expirationSeconds` defaults to.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;

fn invalid(name: &str, field: &str, value: Value, detail: &str) -> ApiError {
    ApiError::invalid(
        GROUP,
        KIND,
        name,
        vec![Cause::invalid(field, &value, detail)],
    )
}

/// A core/v1 object from etcd, 404 when missing (Kubernetes reads them from storage).
async fn get(ctx: &Ctx, plural: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let res = registry::lookup("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    ctx.state
        .store
        .get(&res.etcd_key(namespace, name))
        .await?
        .map(|s| s.object)
        .ok_or_else(|| ApiError::not_found("", plural, name))
}

pub async fn create(ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let Some(tokens) = ctx
        .state
        .authn
        .tokens
        .as_ref()
        .filter(|t| t.signing.is_some())
    else {
        let mut e = ApiError::not_found("", "serviceaccounts/token", "");
        e.message = "the server could not find the requested resource: this apiserver issues no service-account tokens; start it with --service-account-signing-key-file".into();
        return Err(e);
    };
    let (namespace, name) = (ctx.req.namespace.as_str(), ctx.req.name.as_str());
    let mut req = decode_body(ctx)?;
    let (api_version, kind) = meta::type_meta(&req);
    if (!api_version.is_empty() && api_version != "authentication.k8s.io/v1")
        || (!kind.is_empty() && kind != KIND)
    {
        return Err(ApiError::bad_request(format!(
            "the body of serviceaccounts/token must be an authentication.k8s.io/v1 TokenRequest, not {api_version} {kind}"
        )));
    }
    let body_name = meta::name(&req).to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(invalid(
            name,
            "metadata.name",
            json!(body_name),
            "must match the service account name if specified",
        ));
    }
    let body_ns = meta::namespace(&req).to_string();
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(invalid(
            name,
            "metadata.namespace",
            json!(body_ns),
            "must match the service account namespace if specified",
        ));
    }
    let account = get(ctx, "serviceaccounts", namespace, name).await?;

    let spec = req.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut audiences = strings(&spec, "audiences");
    if audiences.is_empty() {
        audiences = tokens.api_audiences.clone();
    }
    let mut expiration = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            "",
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            "",
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let now = chrono::Utc::now();
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!(KIND);
    if !req.get("metadata").is_some_and(Value::is_object) {
        req["metadata"] = json!({});
    }
    req["metadata"]["name"] = json!(name);
    req["metadata"]["namespace"] = json!(namespace);
    req["metadata"]["creationTimestamp"] = json!(meta::format_time(now));
    ctx.admit_validate(crate::admission::Operation::Create, name, None, Some(&req))
        .await?;

    let bound_ref = spec.get("boundObjectRef").filter(|v| v.is_object());
    let bound = match bound_ref {
        None => Bound::None,
        Some(r) => bind(ctx, namespace, name, r).await?,
    };

    let max = tokens.max_expiration_seconds;
    if max > 0 && expiration > max {
        if let Ok(mut w) = ctx.warnings.lock() {
            w.push(format!(
                "requested expiration of {expiration} seconds shortened to {max} seconds"
            ));
        }
        expiration = max;
    }
    // Projected tokens kubelets ask for with the marker expiration live a year, with a
    // warning after the hour, unless they are for someone other than the apiserver.
    let (mut token_expiration, mut warn_after) = (expiration, 0);
    if tokens.extend_expiration
        && matches!(bound, Bound::Pod { .. })
        && expiration == WARN_ONLY_EXPIRATION_SECONDS
        && audiences.iter().all(|a| tokens.api_audiences.contains(a))
    {
        warn_after = expiration;
        token_expiration = EXPIRATION_EXTENSION_SECONDS;
    }
    let claims = serviceaccount::claims(serviceaccount::Request {
        issuer: &tokens.issuers[0],
        namespace,
        service_account: ObjectRef::of(&account),
        bound,
        audiences: audiences.clone(),
        expiration_seconds: token_expiration,
        warn_after_seconds: warn_after,
        now: now.timestamp(),
        jti: uuid::Uuid::new_v4().to_string(),
    });
    let token = tokens
        .issue(&claims)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    tracing::debug!(namespace, service_account = name, jti = %claims.jti, "issued service-account token");
    req["spec"] = json!({
        "audiences": audiences,
        "expirationSeconds": expiration,
        "boundObjectRef": bound_ref.cloned().unwrap_or(Value::Null),
    });
    req["status"] = json!({
        "token": token,
        "expirationTimestamp": meta::format_time(now + chrono::Duration::seconds(expiration)),
    });
    let format = match ctx.format {
        Format::Yaml => Format::Yaml,
        _ => Format::Json,
    };
    Ok(response::object(StatusCode::CREATED, &req, format))
}

/// The object a `boundObjectRef` names, checked as Kubernetes checks it.
async fn bind(ctx: &Ctx, namespace: &str, account: &str, r: &Value) -> Result<Bound, ApiError> {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (kind, api_version, name, want_uid) = (s("kind"), s("apiVersion"), s("name"), s("uid"));
    let (group, version) = split_api_version(&api_version);
    let (bound, uid) = match (group, kind.as_str()) {
        ("", "Pod") => {
            let pod = get(ctx, "pods", namespace, &name).await?;
            // The ServiceAccount admission defaults an unset serviceAccountName to "default".
            let pod_account = pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            if pod_account != account {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
                )));
            }
            let node_name = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let node = if node_name.is_empty() {
                None
            } else {
                // A missing Node still leaves its name in the token.
                match get(ctx, "nodes", "", node_name).await {
                    Ok(n) => Some(ObjectRef::of(&n)),
                    Err(e) if e.code == 404 => Some(ObjectRef {
                        name: node_name.to_string(),
                        uid: String::new(),
                    }),
                    Err(e) => return Err(e),
                }
            };
            let uid = meta::uid(&pod).to_string();
            (
                Bound::Pod {
                    pod: ObjectRef::of(&pod),
                    node,
                },
                uid,
            )
        }
        ("", "Node") => {
            let node = get(ctx, "nodes", "", &name).await?;
            (
                Bound::Node(ObjectRef::of(&node)),
                meta::uid(&node).to_string(),
            )
        }
        ("", "Secret") => {
            let secret = get(ctx, "secrets", namespace, &name).await?;
            (
                Bound::Secret(ObjectRef::of(&secret)),
                meta::uid(&secret).to_string(),
            )
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    if !want_uid.is_empty() && want_uid != uid {
        return Err(ApiError::conflict(
            group,
            &kind,
            &name,
            &format!(
                "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok(bound)
}
