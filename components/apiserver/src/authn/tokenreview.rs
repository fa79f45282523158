//! TokenReview (`POST /apis/authentication.k8s.io/v1/tokenreviews`): asks the apiserver
//! who a bearer token stands for, on behalf of the audiences in `spec.audiences` (default
//! the apiserver's). Components that receive tokens (a kubelet, a webhook) use it;
//! `system:auth-delegator` grants it. Answered, never stored.

use http::{Method, StatusCode};
use kadm_apimachinery::ApiError;
use serde_json::{Value, json};

use crate::authz::Attributes;
use crate::authz::rules::strings;
use crate::response::{self, Body};
use crate::server::State;
use crate::tls::UserInfo;

pub const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

pub fn is_path(path: &str) -> bool {
    path.trim_end_matches('/') == PATH
}

/// Answers a TokenReview posted by `user`.
pub async fn handle(
    state: &State,
    user: &UserInfo,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> http::Response<Body> {
    match review(state, user, method, content_type, body).await {
        Ok(v) => response::json(StatusCode::CREATED, &v),
        Err(e) => response::error(&e),
    }
}

/// Kubernetes' `authentication/v1.UserInfo` of a user.
pub fn user_info_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.name});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    v["groups"] = json!(u.groups);
    if !u.extra.is_empty() {
        v["extra"] = json!(u.extra);
    }
    v
}

async fn review(
    state: &State,
    user: &UserInfo,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    state
        .authz
        .allowed(&Attributes::of(
            user,
            "create",
            "authentication.k8s.io",
            "tokenreviews",
            "",
            "",
        ))
        .await?;
    let mut obj = crate::authz::review::decode(content_type, body)?;
    let token = obj
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let mut audiences = strings(&obj["spec"], "audiences");
    if audiences.is_empty() {
        audiences = state.authn.api_audiences().to_vec();
    }
    obj["apiVersion"] = json!("authentication.k8s.io/v1");
    obj["kind"] = json!("TokenReview");
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    let requested = (!audiences.is_empty()).then_some(audiences.as_slice());
    obj["status"] = match state.authn.authenticate_token(&token, requested).await {
        Ok((who, auds)) => {
            let mut status = json!({"authenticated": true, "user": user_info_json(&who)});
            if !auds.is_empty() {
                status["audiences"] = json!(auds);
            }
            status
        }
        Err(why) => json!({"user": {}, "error": why}),
    };
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_omits_empty_uid_and_extra() {
        let mut u = UserInfo {
            name: "system:bootstrap:abcdef".into(),
            groups: vec!["system:bootstrappers".into()],
            ..Default::default()
        };
        assert_eq!(
            user_info_json(&u),
            json!({"username": "system:bootstrap:abcdef", "groups": ["system:bootstrappers"]})
        );
        u.uid = "u1".into();
        u.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec!["web".into()],
        );
        let v = user_info_json(&u);
        assert_eq!(v["uid"], "u1");
        assert_eq!(
            v["extra"]["authentication.kubernetes.io/pod-name"],
            json!(["web"])
        );
        assert!(is_path("/apis/authentication.k8s.io/v1/tokenreviews"));
        assert!(!is_path(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        ));
    }
}
