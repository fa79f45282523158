//! API errors as Kubernetes reports them: a `metav1.Status` with `reason` and `code`.
//!
//! Clients (kubectl, client-go, kube-rs) branch on `reason` — `IsNotFound`,
//! `IsConflict`, `IsAlreadyExists` — so the reason, code and message shape must be
//! exactly Kubernetes'. The message formats below follow `k8s.io/apimachinery/pkg/api/errors`.

use serde_json::{Value, json};

/// `metav1.StatusReason` values kadm returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Expired,
    Invalid,
    MethodNotAllowed,
    NotAcceptable,
    UnsupportedMediaType,
    RequestEntityTooLarge,
    TooManyRequests,
    Timeout,
    InternalError,
    ServiceUnavailable,
    /// `StatusReasonUnknown` (`""`, omitted from the Status): what Kubernetes reports for
    /// an error that is not an API status, such as a failed strategic merge patch.
    Unknown,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::Invalid => "Invalid",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::Timeout => "Timeout",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Unknown => "",
        }
    }
}

/// One `details.causes` entry: which field is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, …
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    /// `field.Invalid`: message `Invalid value: <json value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {}", value, detail.as_ref()),
            field: field.into(),
        }
    }
    /// `field.Required`: message `Required value` (plus detail when given).
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            message,
            field: field.into(),
        }
    }
    /// `field.Duplicate`: message `Duplicate value: <json value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            message: format!("Duplicate value: {value}"),
            field: field.into(),
        }
    }
    /// `field.Forbidden`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {}", detail.into()),
            field: field.into(),
        }
    }
    /// `field.NotSupported`: message `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
            field: field.into(),
        }
    }
    /// `field.TooLong` with Kubernetes' wording.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max} bytes"),
            field: field.into(),
        }
    }

    /// How the cause reads inside an aggregate message: `field: message`.
    pub fn to_error_string(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// An error answered to an API client as a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: Reason,
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind`: the resource (plural) for most errors, the Kind for Invalid.
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds`
    pub retry_after: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.reason.as_str(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// `resource.group` as Kubernetes' `GroupResource.String()` prints it.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after: None,
        }
    }

    fn with_details(mut self, group: &str, resource: &str, name: &str) -> Self {
        if !name.is_empty() {
            self.name = Some(name.to_string());
        }
        if !group.is_empty() {
            self.group = Some(group.to_string());
        }
        self.kind = Some(resource.to_string());
        self
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            404,
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError::new(
            409,
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// The optimistic-concurrency failure clients retry on.
    pub fn conflict(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        ApiError::new(
            409,
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    pub fn stale_resource_version(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per bad field; `kind` here is the Kind (`ConfigMap`), as Kubernetes does.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes.iter().map(Cause::to_error_string).collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = ApiError::new(
            422,
            Reason::Invalid,
            format!("{gk} \"{name}\" is invalid: {joined}"),
        )
        .with_details(group, kind, name);
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, Reason::BadRequest, message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, Reason::Unauthorized, "Unauthorized")
    }

    pub fn forbidden(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        let what = if name.is_empty() {
            qualified(group, resource)
        } else {
            format!("{} \"{name}\"", qualified(group, resource))
        };
        ApiError::new(
            403,
            Reason::Forbidden,
            format!("{what} is forbidden: {detail}"),
        )
        .with_details(group, resource, name)
    }

    /// Writes into a namespace that is being deleted are refused like Kubernetes' NamespaceLifecycle.
    pub fn namespace_terminating(group: &str, resource: &str, name: &str, namespace: &str) -> Self {
        let mut e = Self::forbidden(
            group,
            resource,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        );
        e.causes.push(Cause {
            reason: "NamespaceTerminating",
            message: format!("namespace {namespace} is being terminated"),
            field: "metadata.namespace".into(),
        });
        e
    }

    /// The watch/list resourceVersion is older than what storage still has.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, Reason::Expired, message)
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            Reason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unsupported_media_type(content_type: &str, accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                if accepted.is_empty() {
                    content_type.to_string()
                } else {
                    accepted.join(", ")
                }
            ),
        )
    }

    pub fn not_acceptable(accept: &str) -> Self {
        ApiError::new(
            406,
            Reason::NotAcceptable,
            format!(
                "only the following media types are accepted: application/json, application/yaml (asked for {accept})"
            ),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            413,
            Reason::RequestEntityTooLarge,
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            500,
            Reason::InternalError,
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, Reason::ServiceUnavailable, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, Reason::Timeout, message)
    }

    /// The `metav1.Status` object a client receives.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.code,
        });
        if self.reason == Reason::Unknown {
            // Kubernetes omits the empty reason.
            if let Some(m) = status.as_object_mut() {
                m.shift_remove("reason");
            }
        }
        let mut details = serde_json::Map::new();
        if let Some(n) = &self.name {
            details.insert("name".into(), json!(n));
        }
        if let Some(g) = &self.group {
            details.insert("group".into(), json!(g));
        }
        if let Some(k) = &self.kind {
            details.insert("kind".into(), json!(k));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(r) = self.retry_after {
            details.insert("retryAfterSeconds".into(), json!(r));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// The `Status` returned by a successful delete of an object that is gone at once
/// (for resources where Kubernetes returns Status rather than the object).
pub fn success_status(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource, "uid": uid});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_matches_kubernetes() {
        let e = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let s = e.to_status();
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["code"], 404);
        assert_eq!(s["details"]["kind"], "deployments");
        assert_eq!(s["details"]["group"], "apps");
        let core = ApiError::not_found("", "configmaps", "c");
        assert_eq!(core.message, "configmaps \"c\" not found");
        assert!(core.to_status()["details"].get("group").is_none());
    }

    #[test]
    fn invalid_aggregates_causes_like_kubernetes() {
        let one = ApiError::invalid(
            "",
            "ConfigMap",
            "X",
            vec![Cause::invalid("metadata.name", &json!("X"), "bad")],
        );
        assert_eq!(
            one.message,
            "ConfigMap \"X\" is invalid: metadata.name: Invalid value: \"X\": bad"
        );
        let two = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![
                Cause::required("spec.selector", ""),
                Cause::required("spec.template", ""),
            ],
        );
        assert_eq!(
            two.message,
            "Deployment.apps \"d\" is invalid: [spec.selector: Required value, spec.template: Required value]"
        );
        let s = two.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["causes"][1]["field"], "spec.template");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
    }

    #[test]
    fn conflict_message_has_kubernetes_retry_hint() {
        let e = ApiError::stale_resource_version("", "configmaps", "c");
        assert_eq!(e.code, 409);
        assert!(e.message.starts_with(
            "Operation cannot be fulfilled on configmaps \"c\": the object has been modified"
        ));
    }
}
