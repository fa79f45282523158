//! Turning a URL into "which resource, which object, which verb" — Kubernetes'
//! RequestInfo — and reading the query parameters every verb shares.

use std::collections::HashMap;

use kadm_apimachinery::{ApiError, ResourceInfo, registry};

/// The API verb of a resource request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

/// A request aimed at a resource (as opposed to `/version`, `/readyz`, …).
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub resource: &'static ResourceInfo,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
    pub verb: Verb,
}

/// What a path asks for.
#[derive(Debug)]
pub enum Target {
    Resource(ResourceRequest),
    /// `/api`, `/api/v1`, `/apis`, `/apis/g`, `/apis/g/v`
    Discovery(Vec<String>),
    /// `/version`, `/livez`, `/readyz`, `/healthz`, `/openapi/...`
    NonResource(String),
}

/// Query parameters, decoded; repeated keys keep the first value, like Go's `Get`.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        Query(map)
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }
    /// Go's `strconv.ParseBool` set: `1`, `t`, `true`, … ; anything else is false.
    pub fn bool(&self, key: &str) -> bool {
        matches!(self.str(key), "1" | "t" | "T" | "true" | "TRUE" | "True")
    }
    /// An integer parameter; a malformed one is a 400 naming it.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {key}: {v:?} is not an integer"))
            }),
        }
    }
}

fn decode_segment(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a path and method into a [`Target`]. `is_watch_param` is the `watch` query flag.
pub fn parse(method: &http::Method, path: &str, is_watch_param: bool) -> Result<Target, ApiError> {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let (group, version, rest) = match parts.first().map(String::as_str) {
        Some("api") => {
            if parts.len() <= 2 {
                return Ok(Target::Discovery(parts));
            }
            (String::new(), parts[1].clone(), &parts[2..])
        }
        Some("apis") => {
            if parts.len() <= 3 {
                return Ok(Target::Discovery(parts));
            }
            (parts[1].clone(), parts[2].clone(), &parts[3..])
        }
        _ => return Ok(Target::NonResource(format!("/{}", parts.join("/")))),
    };
    let mut rest: Vec<String> = rest.to_vec();
    // The legacy `/watch/` path prefix means the same as `?watch=true`.
    let mut watch = is_watch_param;
    if rest.first().map(String::as_str) == Some("watch") {
        watch = true;
        rest.remove(0);
    }
    let mut namespace = String::new();
    // `namespaces/<ns>/<resource>/…` addresses namespaced resources; `namespaces/<name>[/status|/finalize]`
    // addresses the Namespace object itself.
    if rest.first().map(String::as_str) == Some("namespaces") && rest.len() > 1 {
        namespace = rest[1].clone();
        if rest.len() > 2 && !matches!(rest[2].as_str(), "status" | "finalize") {
            rest.drain(..2);
        }
    }
    let plural = rest.first().cloned().unwrap_or_default();
    let Some(resource) = registry::lookup(&group, &version, &plural) else {
        let gv = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let known_gv = registry::all()
            .iter()
            .any(|r| r.group == group && r.version == version);
        return Err(if known_gv {
            ApiError::not_found(&group, &plural, "").with_message(format!(
                "the server could not find the requested resource (resource {plural:?} is not served in {gv})"
            ))
        } else {
            ApiError::not_found(&group, &plural, "").with_message(format!(
                "the server could not find the requested resource (group version {gv} is not served)"
            ))
        });
    };
    let (name, subresource) = if plural == "namespaces" && !namespace.is_empty() && rest.len() <= 3
    {
        // `namespaces/<name>[/sub]`
        let name = std::mem::take(&mut namespace);
        (name, rest.get(2).cloned().unwrap_or_default())
    } else {
        (
            rest.get(1).cloned().unwrap_or_default(),
            rest.get(2).cloned().unwrap_or_default(),
        )
    };
    if rest.len() > 3 {
        return Err(ApiError::not_found(&group, &plural, &name)
            .with_message("the server could not find the requested resource".to_string()));
    }
    if !subresource.is_empty() && !resource.has_subresource(&subresource) {
        return Err(
            ApiError::not_found(&group, &format!("{plural}/{subresource}"), &name).with_message(
                format!(
                    "the server could not find the requested resource ({plural}/{subresource})"
                ),
            ),
        );
    }
    if resource.namespaced() && !name.is_empty() && namespace.is_empty() {
        return Err(ApiError::not_found(&group, &plural, &name).with_message(format!(
            "the server could not find the requested resource: {plural} are namespaced; use /namespaces/<namespace>/{plural}/{name}"
        )));
    }
    if !resource.namespaced() && !namespace.is_empty() && plural != "namespaces" {
        return Err(
            ApiError::not_found(&group, &plural, &name).with_message(format!(
                "the server could not find the requested resource: {plural} are not namespaced"
            )),
        );
    }
    let collection = name.is_empty();
    let verb = match (method.as_str(), collection) {
        ("GET" | "HEAD", true) if watch => Verb::Watch,
        ("GET" | "HEAD", false) if watch => Verb::Watch,
        ("GET" | "HEAD", true) => Verb::List,
        ("GET" | "HEAD", false) => Verb::Get,
        ("POST", true) => Verb::Create,
        ("POST", false) if !subresource.is_empty() => Verb::Create,
        ("PUT", false) => Verb::Update,
        ("PATCH", false) => Verb::Patch,
        ("DELETE", false) => Verb::Delete,
        ("DELETE", true) if plural != "namespaces" => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Target::Resource(ResourceRequest {
        resource,
        namespace,
        name,
        subresource,
        verb,
    }))
}

/// Message override for NotFound on routes (keeps reason and code).
trait WithMessage {
    fn with_message(self, m: String) -> Self;
}
impl WithMessage for ApiError {
    fn with_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn res(method: Method, path: &str) -> ResourceRequest {
        match parse(&method, path, false).expect("parse") {
            Target::Resource(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namespaced_object_paths() {
        let r = res(Method::GET, "/api/v1/namespaces/default/pods/web");
        assert_eq!(
            (
                r.resource.plural,
                r.namespace.as_str(),
                r.name.as_str(),
                r.verb
            ),
            ("pods", "default", "web", Verb::Get)
        );
        let r = res(Method::PUT, "/api/v1/namespaces/default/pods/web/status");
        assert_eq!((r.subresource.as_str(), r.verb), ("status", Verb::Update));
        let r = res(Method::GET, "/apis/apps/v1/deployments");
        assert_eq!(
            (r.resource.plural, r.namespace.as_str(), r.verb),
            ("deployments", "", Verb::List)
        );
    }

    #[test]
    fn namespace_object_and_its_subresources() {
        let r = res(Method::GET, "/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.resource.plural, r.name.as_str(), r.namespace.as_str()),
            ("namespaces", "kube-system", "")
        );
        let r = res(Method::PUT, "/api/v1/namespaces/x/finalize");
        assert_eq!(
            (r.resource.plural, r.name.as_str(), r.subresource.as_str()),
            ("namespaces", "x", "finalize")
        );
        let r = res(Method::GET, "/api/v1/namespaces");
        assert_eq!(r.verb, Verb::List);
    }

    #[test]
    fn watch_prefix_and_collection_verbs() {
        let r = res(Method::GET, "/api/v1/watch/namespaces/default/configmaps");
        assert_eq!((r.resource.plural, r.verb), ("configmaps", Verb::Watch));
        let r = res(Method::DELETE, "/api/v1/namespaces/default/configmaps");
        assert_eq!(r.verb, Verb::DeleteCollection);
        let r = res(Method::POST, "/api/v1/namespaces/default/pods/p/binding");
        assert_eq!((r.verb, r.subresource.as_str()), (Verb::Create, "binding"));
    }

    #[test]
    fn unknown_routes_are_404_and_wrong_methods_405() {
        let e = parse(&Method::GET, "/api/v1/widgets", false).expect_err("unknown");
        assert_eq!(e.code, 404);
        let e = parse(&Method::GET, "/apis/nope.io/v1/things", false).expect_err("unknown group");
        assert_eq!(e.code, 404);
        let e = parse(&Method::PUT, "/api/v1/namespaces/default/configmaps", false)
            .expect_err("put collection");
        assert_eq!(e.code, 405);
        let e = parse(
            &Method::GET,
            "/api/v1/namespaces/default/configmaps/c/scale",
            false,
        )
        .expect_err("no scale");
        assert_eq!(e.code, 404);
    }

    #[test]
    fn discovery_and_non_resource() {
        assert!(matches!(
            parse(&Method::GET, "/apis/apps", false),
            Ok(Target::Discovery(_))
        ));
        assert!(
            matches!(parse(&Method::GET, "/readyz", false), Ok(Target::NonResource(p)) if p == "/readyz")
        );
    }
}
