//! Authorization: who may do what. Every request is described by Kubernetes' authorizer
//! attributes (user, verb, namespace, API group, resource, subresource, name, or a
//! non-resource path) and asked of the configured modes in order (`--authorization-mode`);
//! the first mode with an opinion decides. Members of `system:masters` are always allowed,
//! as Kubernetes' privileged-group authorizer allows them before any mode is asked.
//!
//! - [`node`]: the Node authorizer, over the [`graph`] of what each node's pods reference.
//! - [`rbac`]: RBAC from an in-memory index of roles and bindings fed by the watch cache.
//! - [`policy`]: the default roles and bindings, created and reconciled at start.
//! - [`aggregation`]: keeps aggregated ClusterRoles' rules current.
//! - [`escalation`]: role and binding writes cannot grant what the writer does not hold.
//! - [`impersonation`]: `Impersonate-*` headers for those allowed to `impersonate`.
//! - [`review`]: SubjectAccessReview and friends, SelfSubjectReview.

pub mod aggregation;
pub mod escalation;
pub mod graph;
pub mod impersonation;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod review;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use kadm_apimachinery::{ApiError, Reason};

use crate::cache::WatchCache;
use crate::request::{Query, ResourceRequest, Verb};
use crate::tls::UserInfo;

/// Kubernetes' superuser group: always allowed.
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// What is being asked (Kubernetes' `authorizer.Attributes`).
#[derive(Debug, Clone)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub resource_request: bool,
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The request path, for non-resource requests.
    pub path: String,
    /// A list's or watch's `fieldSelector` (the Node authorizer lets kubelets list the pods
    /// of `spec.nodeName=<self>`).
    pub field_selector: String,
}

impl Attributes {
    /// A resource request, as Kubernetes' RequestInfo describes it: a list or watch narrowed
    /// to one name by `fieldSelector=metadata.name=<n>` carries that name, and a request
    /// for a Namespace object is in that namespace.
    pub fn resource(user: &UserInfo, r: &ResourceRequest, query: &Query) -> Attributes {
        let mut name = r.name.clone();
        if name.is_empty() && matches!(r.verb, Verb::List | Verb::Watch) {
            name = selected_name(query.str("fieldSelector")).unwrap_or_default();
        }
        let namespace = if r.resource.plural == "namespaces" && r.resource.group.is_empty() {
            r.name.clone()
        } else {
            r.namespace.clone()
        };
        Attributes {
            user: user.clone(),
            verb: verb_name(r.verb).to_string(),
            resource_request: true,
            namespace,
            api_group: r.resource.group.to_string(),
            resource: r.resource.plural.to_string(),
            subresource: r.subresource.clone(),
            name,
            path: String::new(),
            field_selector: if matches!(r.verb, Verb::List | Verb::Watch) {
                query.str("fieldSelector").to_string()
            } else {
                String::new()
            },
        }
    }

    /// A request for a path outside the resource API (`/healthz`, `/apis`, `/openapi/v2`):
    /// the verb is the lower-case HTTP method.
    pub fn non_resource(user: &UserInfo, method: &http::Method, path: &str) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: method.as_str().to_ascii_lowercase(),
            resource_request: false,
            namespace: String::new(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            name: String::new(),
            path: path.to_string(),
            field_selector: String::new(),
        }
    }

    /// A resource request built by hand (impersonation, reviews, escalation checks).
    pub fn of(
        user: &UserInfo,
        verb: &str,
        api_group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            user: user.clone(),
            verb: verb.to_string(),
            resource_request: true,
            namespace: namespace.to_string(),
            api_group: api_group.to_string(),
            resource: resource.to_string(),
            subresource: String::new(),
            name: name.to_string(),
            path: String::new(),
            field_selector: String::new(),
        }
    }
}

pub fn verb_name(v: Verb) -> &'static str {
    match v {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
    }
}

/// The value a field selector requires `field` to equal (`field=v` or `field==v`).
pub fn field_equals<'a>(selector: &'a str, field: &str) -> Option<&'a str> {
    selector.split(',').find_map(|term| {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, _)| !k.ends_with('!'))?;
        (k.trim() == field).then_some(v)
    })
}

/// The name an exact `metadata.name` field selector requires, if it is a valid path segment.
fn selected_name(selector: &str) -> Option<String> {
    field_equals(selector, "metadata.name")
        .filter(|v| {
            !v.is_empty() && *v != "." && *v != ".." && !v.contains('/') && !v.contains('%')
        })
        .map(str::to_string)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

/// One `--authorization-mode` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    AlwaysDeny,
    Node,
    Rbac,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            "AlwaysDeny" => Ok(Mode::AlwaysDeny),
            "RBAC" => Ok(Mode::Rbac),
            "Node" => Ok(Mode::Node),
            other => Err(format!(
                "unknown authorization mode {other:?}; supported modes are AlwaysAllow, AlwaysDeny, Node and RBAC"
            )),
        }
    }
}

/// The configured modes, in order.
pub struct Authorizer {
    modes: Vec<Mode>,
    cache: Arc<WatchCache>,
    pub rbac: rbac::Rbac,
    /// Present when `Node` is one of the modes.
    pub node: Option<node::NodeAuthorizer>,
}

impl Authorizer {
    pub fn new(modes: Vec<Mode>, cache: Arc<WatchCache>) -> Authorizer {
        Authorizer {
            node: modes
                .contains(&Mode::Node)
                .then(|| node::NodeAuthorizer::new(cache.clone())),
            modes,
            rbac: rbac::Rbac::new(cache.clone()),
            cache,
        }
    }

    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// Decides a request: the privileged group first, then each mode until one has an
    /// opinion. The reason is the denying mode's (RBAC's resolution errors), or why allowed.
    pub async fn authorize(&self, a: &Attributes) -> (Decision, String) {
        if a.user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
            return (Decision::Allow, String::new());
        }
        let mut reasons = Vec::new();
        for mode in &self.modes {
            match mode {
                Mode::AlwaysAllow => return (Decision::Allow, String::new()),
                Mode::AlwaysDeny => return (Decision::Deny, String::new()),
                Mode::Node => {
                    let Some(node) = &self.node else { continue };
                    let mut v = node.authorize(a);
                    if v.from_graph && v.decision != Decision::Allow {
                        // The graph may not have applied the newest pods yet: deny only
                        // once it has caught up with the cache.
                        if node.graph.catch_up(graph::CATCH_UP_TIMEOUT).await {
                            v = node.authorize(a);
                        } else {
                            tracing::warn!(user = %a.user.name, "node authorizer graph did not catch up with the watch cache in time");
                        }
                    }
                    if v.decision == Decision::Allow {
                        return (Decision::Allow, String::new());
                    }
                    if !v.reason.is_empty() {
                        reasons.push(v.reason);
                    }
                }
                Mode::Rbac => {
                    if !self.cache.is_ready() {
                        // The index is empty until the cache is loaded (at most moments
                        // after start): wait for it rather than deny.
                        self.cache.wait_ready(Duration::from_secs(5)).await;
                    }
                    let (d, reason) = self.rbac.index().authorize(a);
                    if d == Decision::Allow {
                        return (d, reason);
                    }
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
            }
        }
        (Decision::NoOpinion, reasons.join("\n"))
    }

    pub async fn allowed(&self, a: &Attributes) -> Result<(), ApiError> {
        match self.authorize(a).await {
            (Decision::Allow, _) => Ok(()),
            (_, reason) => Err(forbidden(a, &reason)),
        }
    }

    /// Every rule `user` holds in `namespace`, and whether the list is incomplete.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<rules::Rule>, Vec<String>) {
        let all = || rules::Rule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for mode in &self.modes {
            match mode {
                Mode::AlwaysAllow => {
                    out.push(all());
                    out.push(rules::Rule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Default::default()
                    });
                }
                Mode::AlwaysDeny => {}
                // Kubernetes' Node authorizer does not enumerate a node's rules.
                Mode::Node => {
                    if node::node_identity(user).is_some() {
                        errors.push(
                            "node authorizer does not support user rule resolution".to_string(),
                        );
                    }
                }
                Mode::Rbac => {
                    let (r, e) = self.rbac.index().rules_for(user, namespace);
                    out.extend(r);
                    errors.extend(e);
                }
            }
        }
        (out, errors)
    }
}

/// Kubernetes' 403 for a denied request: `pods is forbidden: User "jane" cannot list
/// resource "pods" in API group "" in the namespace "default"`, details {kind, group, name}.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let user = &a.user.name;
    let mut msg = if !a.resource_request {
        format!("User {user:?} cannot {} path {:?}", a.verb, a.path)
    } else {
        let resource = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        if a.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                a.verb, a.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                a.verb, a.api_group, a.namespace
            )
        }
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    if !a.resource_request || a.resource.is_empty() {
        return ApiError::new(403, Reason::Forbidden, format!("forbidden: {msg}"));
    }
    ApiError::forbidden(&a.api_group, &a.resource, &a.name, &msg)
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> UserInfo {
        UserInfo {
            name: "jane".into(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        }
    }

    #[test]
    fn forbidden_messages_are_kubernetes() {
        let a = Attributes::of(&jane(), "list", "", "pods", "default", "");
        let e = forbidden(&a, "");
        assert_eq!(
            e.message,
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.kind.as_deref(), Some("pods"));
        let mut a = Attributes::of(&jane(), "get", "apps", "deployments", "", "web");
        a.subresource = "scale".into();
        assert_eq!(
            forbidden(&a, "").message,
            r#"deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#
        );
        let a = Attributes::non_resource(&jane(), &http::Method::GET, "/metrics");
        assert_eq!(
            forbidden(&a, "").message,
            r#"forbidden: User "jane" cannot get path "/metrics""#
        );
        let a = Attributes::of(&jane(), "get", "", "secrets", "x", "s");
        assert_eq!(
            forbidden(&a, r#"RBAC: role.rbac.authorization.k8s.io "r" not found"#).message,
            r#"secrets "s" is forbidden: User "jane" cannot get resource "secrets" in API group "" in the namespace "x": RBAC: role.rbac.authorization.k8s.io "r" not found"#
        );
    }

    #[test]
    fn field_selector_names_the_object() {
        assert_eq!(selected_name("metadata.name=web").as_deref(), Some("web"));
        assert_eq!(
            selected_name("spec.nodeName=n,metadata.name==web").as_deref(),
            Some("web")
        );
        assert_eq!(selected_name("metadata.name!=web"), None);
        assert_eq!(selected_name(""), None);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("RBAC"), Ok(Mode::Rbac));
        assert_eq!(Mode::parse("AlwaysAllow"), Ok(Mode::AlwaysAllow));
        assert_eq!(Mode::parse("Node"), Ok(Mode::Node));
        assert!(Mode::parse("rbac").is_err());
    }

    #[test]
    fn field_equals_finds_exact_requirements() {
        assert_eq!(
            field_equals("spec.nodeName=n1", "spec.nodeName"),
            Some("n1")
        );
        assert_eq!(
            field_equals("status.phase!=x,spec.nodeName==n1", "spec.nodeName"),
            Some("n1")
        );
        assert_eq!(field_equals("spec.nodeName!=n1", "spec.nodeName"), None);
    }
}
