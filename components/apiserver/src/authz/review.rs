//! The review APIs, answered from the authorizer and never stored:
//! authorization.k8s.io/v1 SelfSubjectAccessReview (`kubectl auth can-i`),
//! SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview
//! (`kubectl auth can-i --list`), and authentication.k8s.io SelfSubjectReview
//! (`kubectl auth whoami`).

use http::{Method, StatusCode};
use kadm_apimachinery::{ApiError, Cause, protobuf};
use serde_json::{Value, json};

use super::rules::Rule;
use super::{Attributes, Authorizer, Decision};
use crate::response::{self, Body};
use crate::tls::UserInfo;

const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";

/// Which review a path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    SelfSubjectAccess,
    SubjectAccess,
    LocalSubjectAccess(String),
    SelfSubjectRules,
    /// The version the client used (v1, v1beta1 or v1alpha1).
    SelfSubject(String),
}

impl Review {
    /// The review a path names, if any.
    pub fn from_path(path: &str) -> Option<Review> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match parts.as_slice() {
            ["apis", AUTHORIZATION, "v1", "selfsubjectaccessreviews"] => {
                Some(Review::SelfSubjectAccess)
            }
            ["apis", AUTHORIZATION, "v1", "subjectaccessreviews"] => Some(Review::SubjectAccess),
            ["apis", AUTHORIZATION, "v1", "selfsubjectrulesreviews"] => {
                Some(Review::SelfSubjectRules)
            }
            [
                "apis",
                AUTHORIZATION,
                "v1",
                "namespaces",
                ns,
                "localsubjectaccessreviews",
            ] => Some(Review::LocalSubjectAccess(ns.to_string())),
            [
                "apis",
                AUTHENTICATION,
                v @ ("v1" | "v1beta1" | "v1alpha1"),
                "selfsubjectreviews",
            ] => Some(Review::SelfSubject(v.to_string())),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Review::SelfSubjectAccess => "SelfSubjectAccessReview",
            Review::SubjectAccess => "SubjectAccessReview",
            Review::LocalSubjectAccess(_) => "LocalSubjectAccessReview",
            Review::SelfSubjectRules => "SelfSubjectRulesReview",
            Review::SelfSubject(_) => "SelfSubjectReview",
        }
    }

    fn resource(&self) -> &'static str {
        match self {
            Review::SelfSubjectAccess => "selfsubjectaccessreviews",
            Review::SubjectAccess => "subjectaccessreviews",
            Review::LocalSubjectAccess(_) => "localsubjectaccessreviews",
            Review::SelfSubjectRules => "selfsubjectrulesreviews",
            Review::SelfSubject(_) => "selfsubjectreviews",
        }
    }

    fn api_version(&self) -> String {
        match self {
            Review::SelfSubject(v) => format!("{AUTHENTICATION}/{v}"),
            _ => format!("{AUTHORIZATION}/v1"),
        }
    }

    fn group(&self) -> &'static str {
        match self {
            Review::SelfSubject(_) => AUTHENTICATION,
            _ => AUTHORIZATION,
        }
    }
}

/// Answers a review request by `user` (already impersonated if asked).
pub async fn handle(
    authz: &Authorizer,
    user: &UserInfo,
    review: Review,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> http::Response<Body> {
    match answer(authz, user, &review, method, content_type, body).await {
        Ok(v) => response::json(StatusCode::CREATED, &v),
        Err(e) => response::error(&e),
    }
}

async fn answer(
    authz: &Authorizer,
    user: &UserInfo,
    review: &Review,
    method: &Method,
    content_type: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if method != Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let namespace = match review {
        Review::LocalSubjectAccess(ns) => ns.as_str(),
        _ => "",
    };
    authz
        .allowed(&Attributes::of(
            user,
            "create",
            review.group(),
            review.resource(),
            namespace,
            "",
        ))
        .await?;
    let mut obj = decode(content_type, body)?;
    obj["apiVersion"] = json!(review.api_version());
    obj["kind"] = json!(review.kind());
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]["creationTimestamp"] = Value::Null;
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let invalid = |causes: Vec<Cause>| ApiError::invalid(review.group(), review.kind(), "", causes);
    match review {
        Review::SelfSubject(_) => {
            obj["status"] = json!({"userInfo": crate::authn::tokenreview::user_info_json(user)});
        }
        Review::SelfSubjectRules => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            let (rules, errors) = authz.rules_for(user, ns);
            let (mut resource_rules, mut non_resource_rules) = (Vec::new(), Vec::new());
            for r in &rules {
                if r.non_resource_urls.is_empty() {
                    resource_rules.push(resource_rule(r));
                } else {
                    non_resource_rules
                        .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
                }
            }
            let mut status = json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": !errors.is_empty(),
            });
            if !errors.is_empty() {
                status["evaluationError"] = json!(super::rbac::aggregate(&errors));
            }
            obj["status"] = status;
        }
        Review::SelfSubjectAccess | Review::SubjectAccess | Review::LocalSubjectAccess(_) => {
            let subject = match review {
                Review::SelfSubjectAccess => user.clone(),
                _ => {
                    let name = spec.get("user").and_then(Value::as_str).unwrap_or("");
                    let groups: Vec<String> = spec
                        .get("groups")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|g| g.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if name.is_empty() && groups.is_empty() {
                        return Err(invalid(vec![Cause::invalid(
                            "spec.user",
                            &json!(""),
                            "at least one of user or group must be specified",
                        )]));
                    }
                    UserInfo {
                        name: name.to_string(),
                        groups,
                        ..Default::default()
                    }
                }
            };
            let ra = spec.get("resourceAttributes").filter(|v| v.is_object());
            let na = spec.get("nonResourceAttributes").filter(|v| v.is_object());
            let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let attrs = match (ra, na) {
                (Some(ra), None) => {
                    let mut ns = s(ra, "namespace");
                    if let Review::LocalSubjectAccess(local) = review {
                        if !ns.is_empty() && ns != *local {
                            return Err(invalid(vec![Cause::invalid(
                                "spec.resourceAttributes.namespace",
                                &json!(ns),
                                "must match metadata.namespace",
                            )]));
                        }
                        ns = local.clone();
                    }
                    let mut a = Attributes::of(
                        &subject,
                        &s(ra, "verb"),
                        &s(ra, "group"),
                        &s(ra, "resource"),
                        &ns,
                        &s(ra, "name"),
                    );
                    a.subresource = s(ra, "subresource");
                    a
                }
                (None, Some(na)) => {
                    let mut a = Attributes::non_resource(&subject, &Method::GET, &s(na, "path"));
                    a.verb = s(na, "verb");
                    a
                }
                _ => {
                    return Err(invalid(vec![Cause::invalid(
                        "spec.resourceAttributes",
                        &Value::Null,
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    )]));
                }
            };
            let (decision, reason) = authz.authorize(&attrs).await;
            let mut status = json!({"allowed": decision == Decision::Allow});
            if decision == Decision::Deny {
                status["denied"] = json!(true);
            }
            if !reason.is_empty() {
                status["reason"] = json!(reason);
            }
            obj["status"] = status;
        }
    }
    Ok(obj)
}

fn resource_rule(r: &Rule) -> Value {
    let mut v = json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
    if !r.resource_names.is_empty() {
        v["resourceNames"] = json!(r.resource_names);
    }
    v
}

/// A review body as JSON (JSON, YAML or Kubernetes protobuf).
pub(crate) fn decode(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let v: Value = match ct.as_str() {
        protobuf::MEDIA_TYPE => {
            protobuf::decode(body).map_err(|e| ApiError::bad_request(e.to_string()))?
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| {
                ApiError::bad_request(format!("the request body is not valid yaml: {e}"))
            })?,
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid json: {e}"))
        })?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths() {
        assert_eq!(
            Review::from_path("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
            Some(Review::SelfSubjectAccess)
        );
        assert_eq!(
            Review::from_path(
                "/apis/authorization.k8s.io/v1/namespaces/x/localsubjectaccessreviews"
            ),
            Some(Review::LocalSubjectAccess("x".into()))
        );
        assert_eq!(
            Review::from_path("/apis/authentication.k8s.io/v1beta1/selfsubjectreviews"),
            Some(Review::SelfSubject("v1beta1".into()))
        );
        assert_eq!(Review::from_path("/api/v1/pods"), None);
    }
}
