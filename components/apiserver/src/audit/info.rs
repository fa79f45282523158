//! What a request is about, as the audit policy matches it and the event's `objectRef`
//! names it: Kubernetes' RequestInfo (verb, API group and version, resource, subresource,
//! namespace, name) or, outside the resource API, the path and the lower-case method.
//!
//! kadm's router ([`crate::request::parse`]) answers for every resource it serves; paths it
//! refuses (unknown resources, the review APIs answered before routing) still get
//! Kubernetes' reading of the URL, so a 404 is audited with the objectRef Kubernetes
//! would give it.

use http::Method;

use crate::authz::Attributes;
use crate::request::{Query, Target};

/// Kubernetes' RequestInfo, as far as auditing reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub resource_request: bool,
    /// Kubernetes verb for resource requests, lower-case HTTP method otherwise.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
}

impl RequestInfo {
    /// Reads a request the way Kubernetes' RequestInfoFactory does.
    /// `parsed` is the router's reading of the path (`None` when it refused it).
    pub fn of(method: &Method, path: &str, query: &Query, parsed: Option<&Target>) -> RequestInfo {
        match parsed {
            Some(Target::Resource(rr)) => {
                // The authorizer's attributes already carry RequestInfo's quirks: the name a
                // `metadata.name` field selector pins, a Namespace in its own namespace.
                let anyone = crate::tls::UserInfo {
                    name: String::new(),
                    groups: Vec::new(),
                    ..Default::default()
                };
                let a = Attributes::resource(&anyone, rr, query);
                RequestInfo {
                    resource_request: true,
                    verb: a.verb,
                    api_group: a.api_group,
                    api_version: rr.resource.version.to_string(),
                    resource: a.resource,
                    subresource: a.subresource,
                    namespace: a.namespace,
                    name: a.name,
                    path: path.to_string(),
                }
            }
            Some(Target::Discovery(_) | Target::NonResource(_)) => non_resource(method, path),
            None => RequestInfo::from_url(method, path, query.bool("watch")),
        }
    }

    /// Whether the request streams until one side stops (see [`is_long_running`]). Those
    /// get a `ResponseStarted` event when their headers go out.
    pub fn long_running(&self) -> bool {
        is_long_running(&self.verb, self.resource_request, &self.subresource)
    }

    /// Kubernetes' RequestInfoFactory over the raw URL, for paths kadm's router refuses
    /// (the in-flight filter reads them so too). `watch` is the `watch` query flag.
    pub fn from_url(method: &Method, path: &str, watch: bool) -> RequestInfo {
        let parts: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let mut info = non_resource(method, path);
        if parts.len() < 3 {
            return info;
        }
        let mut rest: &[String] = match parts[0].as_str() {
            "api" => &parts[1..],
            "apis" if parts.len() >= 4 => {
                info.api_group = parts[1].clone();
                &parts[2..]
            }
            _ => return info,
        };
        info.resource_request = true;
        info.api_version = rest[0].clone();
        rest = &rest[1..];
        let special = rest[0].as_str();
        if special == "watch" || special == "proxy" {
            if rest.len() < 2 {
                return info;
            }
            info.verb = special.to_string();
            rest = &rest[1..];
        } else {
            info.verb = match *method {
                Method::POST => "create",
                Method::GET | Method::HEAD => "get",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            }
            .to_string();
        }
        if rest[0] == "namespaces" && rest.len() > 1 {
            info.namespace = rest[1].clone();
            if rest.len() > 2 && !matches!(rest[2].as_str(), "status" | "finalize") {
                rest = &rest[2..];
            }
        }
        if rest.len() >= 3 && info.verb != "proxy" {
            info.subresource = rest[2].clone();
        }
        if rest.len() >= 2 {
            info.name = rest[1].clone();
        }
        info.resource = rest[0].clone();
        if info.name.is_empty() && info.verb == "get" {
            info.verb = if watch { "watch" } else { "list" }.to_string();
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }
}

/// Kubernetes' long-running check (`BasicLongRunningRequestCheck` as kube-apiserver sets
/// it up): `watch` and `proxy` verbs; `attach`, `exec`, `proxy`, `log`, `portforward`
/// subresources. Audit stages and the in-flight filter both follow it.
pub fn is_long_running(verb: &str, resource_request: bool, subresource: &str) -> bool {
    matches!(verb, "watch" | "proxy")
        || (resource_request
            && matches!(
                subresource,
                "attach" | "exec" | "proxy" | "log" | "portforward"
            ))
}

fn non_resource(method: &Method, path: &str) -> RequestInfo {
    RequestInfo {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
        ..RequestInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request;

    fn info(method: Method, path_and_query: &str) -> RequestInfo {
        let (path, q) = path_and_query
            .split_once('?')
            .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
        let query = Query::parse(q);
        let parsed = request::parse(&method, path, query.bool("watch")).ok();
        RequestInfo::of(&method, path, &query, parsed.as_ref())
    }

    #[test]
    fn served_resources_read_as_the_router_reads_them() {
        let i = info(Method::POST, "/api/v1/namespaces/default/configmaps");
        assert_eq!(
            (
                i.resource_request,
                i.verb.as_str(),
                i.resource.as_str(),
                i.namespace.as_str(),
                i.api_version.as_str()
            ),
            (true, "create", "configmaps", "default", "v1")
        );
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/x/deployments?watch=1&fieldSelector=metadata.name%3Dweb",
        );
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.name.as_str(),
                i.long_running()
            ),
            ("watch", "apps", "web", true)
        );
        let i = info(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (i.resource.as_str(), i.namespace.as_str(), i.name.as_str()),
            ("namespaces", "kube-system", "kube-system")
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_with_the_http_method() {
        for p in [
            "/api",
            "/api/v1",
            "/apis/apps/v1",
            "/healthz",
            "/openapi/v2",
        ] {
            let i = info(Method::GET, p);
            assert!(!i.resource_request, "{p}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), ("get", p));
        }
        assert_eq!(info(Method::POST, "/version").verb, "post");
    }

    #[test]
    fn refused_paths_get_kubernetes_request_info() {
        let i = info(
            Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        );
        assert_eq!(
            (
                i.resource_request,
                i.verb.as_str(),
                i.api_group.as_str(),
                i.resource.as_str()
            ),
            (
                true,
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews"
            )
        );
        let i = info(Method::GET, "/api/v1/namespaces/default/widgets/w/things");
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("get", "widgets", "w", "things")
        );
        let i = info(Method::DELETE, "/api/v1/namespaces/default/widgets");
        assert_eq!(i.verb, "deletecollection");
        let i = info(Method::GET, "/api/v1/watch/namespaces/default/widgets");
        assert_eq!(
            (i.verb.as_str(), i.namespace.as_str()),
            ("watch", "default")
        );
    }
}
