//! The audit policy (`--audit-policy-file`, an `audit.k8s.io/v1` `Policy`): which requests
//! are recorded and how much of each. Rules are tried in order and the first that matches
//! decides the level; a request no rule matches is not recorded (Kubernetes' default
//! level `None`). Matching, validation and the error texts follow Kubernetes'
//! `audit/policy` checker and `apis/audit/validation`.
//!
//! One thing is not up to the policy: requests for Secrets, ConfigMaps, TokenReviews and
//! TokenRequests (`serviceaccounts/token`) are never recorded beyond `Metadata`, so their
//! contents — credentials — cannot reach the audit log whatever a policy says.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::info::RequestInfo;
use crate::error::{Error, Result};
use crate::tls::UserInfo;

/// How much of a request is recorded. Ordered: each level records what the previous does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Level {
    /// Not recorded.
    None,
    /// Who, what, when, and the response code; no bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, the request body and the response body.
    RequestResponse,
}

impl Level {
    const NAMES: [&'static str; 4] = ["None", "Metadata", "Request", "RequestResponse"];

    fn parse(s: &str) -> Option<Level> {
        match s {
            "None" => Some(Level::None),
            "Metadata" => Some(Level::Metadata),
            "Request" => Some(Level::Request),
            "RequestResponse" => Some(Level::RequestResponse),
            _ => None,
        }
    }
}

/// When in a request's life an event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Stage {
    /// As soon as the request is received, before it is handled.
    RequestReceived,
    /// When the response headers are sent (long-running requests such as watches only).
    ResponseStarted,
    /// When the response is complete.
    ResponseComplete,
    /// When handling the request panicked.
    Panic,
}

impl Stage {
    const NAMES: [&'static str; 4] = [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
        "Panic",
    ];

    fn parse(s: &str) -> Option<Stage> {
        match s {
            "RequestReceived" => Some(Stage::RequestReceived),
            "ResponseStarted" => Some(Stage::ResponseStarted),
            "ResponseComplete" => Some(Stage::ResponseComplete),
            "Panic" => Some(Stage::Panic),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of stages (a rule's `omitStages` united with the policy's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stages(u8);

impl Stages {
    pub fn contains(self, s: Stage) -> bool {
        self.0 & s.bit() != 0
    }
    fn with(self, s: Stage) -> Stages {
        Stages(self.0 | s.bit())
    }
}

/// What the policy decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    pub omit_stages: Stages,
    pub omit_managed_fields: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupResources {
    group: String,
    resources: Vec<String>,
    resource_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    level: Level,
    users: Vec<String>,
    user_groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<GroupResources>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
    /// Already united with the policy's `omitStages`.
    omit_stages: Stages,
    omit_managed_fields: Option<bool>,
}

/// A loaded, validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Stages,
    omit_managed_fields: bool,
}

/// `null` in YAML reads as the empty value, as Go's decoder reads it.
fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default, deserialize_with = "nullable")]
    api_version: String,
    #[serde(default, deserialize_with = "nullable")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    rules: Vec<RawRule>,
    #[serde(default, deserialize_with = "nullable")]
    omit_stages: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    omit_managed_fields: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(default, deserialize_with = "nullable")]
    level: String,
    #[serde(default, deserialize_with = "nullable")]
    users: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    user_groups: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    verbs: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    resources: Vec<RawGroupResources>,
    #[serde(default, deserialize_with = "nullable")]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs", deserialize_with = "nullable")]
    non_resource_urls: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    omit_stages: Vec<String>,
    #[serde(default)]
    omit_managed_fields: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawGroupResources {
    #[serde(default, deserialize_with = "nullable")]
    group: String,
    #[serde(default, deserialize_with = "nullable")]
    resources: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    resource_names: Vec<String>,
}

pub const API_VERSION: &str = "audit.k8s.io/v1";

impl Policy {
    /// Reads and validates a policy file; errors name the file, as Kubernetes' do.
    pub fn load(path: &Path) -> Result<Policy> {
        let text = std::fs::read(path).map_err(|source| Error::Io {
            action: "read audit policy",
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text)
            .map_err(|e| Error::Config(format!("audit policy: {e}: from file {}", path.display())))
    }

    /// Parses a policy document (YAML or JSON). The error says what to fix.
    pub fn parse(text: &[u8]) -> std::result::Result<Policy, String> {
        let raw: RawPolicy =
            serde_yaml::from_slice(text).map_err(|e| format!("failed decoding: {e}"))?;
        if raw.api_version != API_VERSION || raw.kind != "Policy" {
            return Err(format!(
                "unknown group version field {:?} kind {:?} in policy; an audit policy starts with apiVersion: {API_VERSION} and kind: Policy",
                raw.api_version, raw.kind
            ));
        }
        let mut errors = Vec::new();
        let policy_omit = stages(&raw.omit_stages, "omitStages", &mut errors);
        let mut rules = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = format!("rules[{i}]");
            let level = match Level::parse(&r.level) {
                Some(l) => l,
                None if r.level.is_empty() => {
                    errors.push(format!("{at}.level: Required value"));
                    Level::None
                }
                None => {
                    errors.push(format!(
                        "{at}.level: Unsupported value: {:?}: supported values: {}",
                        r.level,
                        quoted(&Level::NAMES)
                    ));
                    Level::None
                }
            };
            for (j, url) in r.non_resource_urls.iter().enumerate() {
                if url == "*" {
                    continue;
                }
                if !url.starts_with('/') {
                    errors.push(format!(
                        "{at}.nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character"
                    ));
                }
                if !url.is_empty() && url[..url.len() - 1].contains('*') {
                    errors.push(format!(
                        "{at}.nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule"
                    ));
                }
            }
            for gr in &r.resources {
                if !gr.group.is_empty() && !is_dns_subdomain(&gr.group) {
                    errors.push(format!(
                        "{at}.resources.group: Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                        gr.group
                    ));
                }
                if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                    errors.push(format!(
                        "{at}.resources.resourceNames: Invalid value: {}: using resourceNames requires at least one resource",
                        go_strings(&gr.resource_names)
                    ));
                }
            }
            let rule_omit = stages(&r.omit_stages, &format!("{at}.omitStages"), &mut errors);
            if !r.non_resource_urls.is_empty()
                && (!r.resources.is_empty() || !r.namespaces.is_empty())
            {
                errors.push(format!(
                    "{at}.nonResourceURLs: Invalid value: {}: rules cannot apply to both regular resources and non-resource URLs",
                    go_strings(&r.non_resource_urls)
                ));
            }
            rules.push(Rule {
                level,
                users: r.users,
                user_groups: r.user_groups,
                verbs: r.verbs,
                resources: r
                    .resources
                    .into_iter()
                    .map(|g| GroupResources {
                        group: g.group,
                        resources: g.resources,
                        resource_names: g.resource_names,
                    })
                    .collect(),
                namespaces: r.namespaces,
                non_resource_urls: r.non_resource_urls,
                omit_stages: Stages(rule_omit.0 | policy_omit.0),
                omit_managed_fields: r.omit_managed_fields,
            });
        }
        match errors.as_slice() {
            [] => {}
            [one] => return Err(one.clone()),
            many => return Err(format!("[{}]", many.join(", "))),
        }
        if rules.is_empty() {
            return Err("loaded illegal policy with 0 rules".into());
        }
        Ok(Policy {
            rules,
            omit_stages: policy_omit,
            omit_managed_fields: raw.omit_managed_fields,
        })
    }

    /// The first matching rule's level and stages, else `None` with the policy's stages;
    /// then capped for the resources whose contents are never recorded.
    pub fn evaluate(&self, user: Option<&UserInfo>, info: &RequestInfo) -> Decision {
        let mut d = self
            .rules
            .iter()
            .find(|r| r.matches(user, info))
            .map(|r| Decision {
                level: r.level,
                omit_stages: r.omit_stages,
                omit_managed_fields: r.omit_managed_fields.unwrap_or(self.omit_managed_fields),
            })
            .unwrap_or(Decision {
                level: Level::None,
                omit_stages: self.omit_stages,
                omit_managed_fields: self.omit_managed_fields,
            });
        if is_sensitive(info) {
            d.level = d.level.min(Level::Metadata);
        }
        d
    }
}

/// Resources whose bodies hold credentials or arbitrary data: recorded at `Metadata` at
/// most, whatever the policy says.
pub fn is_sensitive(info: &RequestInfo) -> bool {
    if !info.resource_request {
        return false;
    }
    match (info.api_group.as_str(), info.resource.as_str()) {
        ("", "secrets" | "configmaps") => true,
        ("", "serviceaccounts") => info.subresource == "token",
        ("authentication.k8s.io", "tokenreviews") => true,
        _ => false,
    }
}

fn stages(names: &[String], field: &str, errors: &mut Vec<String>) -> Stages {
    let mut set = Stages::default();
    for (i, s) in names.iter().enumerate() {
        match Stage::parse(s) {
            Some(st) => set = set.with(st),
            None => errors.push(format!(
                "{field}[{i}]: Invalid value: {s:?}: allowed stages are {}",
                Stage::NAMES.join(",")
            )),
        }
    }
    set
}

/// Go's `%#v` of a `[]string`, as field errors print invalid lists.
fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Rule {
    fn matches(&self, user: Option<&UserInfo>, info: &RequestInfo) -> bool {
        if !self.users.is_empty() && !user.is_some_and(|u| self.users.contains(&u.name)) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !user.is_some_and(|u| u.groups.iter().any(|g| self.user_groups.contains(g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&info.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(info);
        }
        if !self.non_resource_urls.is_empty() {
            return !info.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&info.path, spec));
        }
        true
    }

    fn matches_resource(&self, info: &RequestInfo) -> bool {
        if !info.resource_request {
            return false;
        }
        // Cluster-scoped resources have the empty namespace.
        if !self.namespaces.is_empty() && !self.namespaces.contains(&info.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let (resource, sub) = (info.resource.as_str(), info.subresource.as_str());
        let combined = if sub.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{sub}")
        };
        self.resources
            .iter()
            .filter(|gr| gr.group == info.api_group)
            .any(|gr| {
                if gr.resources.is_empty() {
                    return true;
                }
                if !gr.resource_names.is_empty() && !gr.resource_names.contains(&info.name) {
                    return false;
                }
                gr.resources.iter().any(|res| {
                    res == "*"
                        || *res == combined
                        || (!sub.is_empty() && res.strip_prefix("*/") == Some(sub))
                        || res.strip_suffix("/*") == Some(resource)
                })
            })
    }
}

/// `*` matches everything, `/healthz*` every path starting with `/healthz`, else exact.
fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tls::test_user as user;

    fn res(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> RequestInfo {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        RequestInfo {
            resource_request: true,
            verb: verb.into(),
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    fn path(verb: &str, p: &str) -> RequestInfo {
        RequestInfo {
            verb: verb.into(),
            path: p.into(),
            ..RequestInfo::default()
        }
    }

    fn policy(yaml: &str) -> Policy {
        Policy::parse(yaml.as_bytes()).expect("valid policy")
    }

    fn level(p: &Policy, u: &UserInfo, i: &RequestInfo) -> Level {
        p.evaluate(Some(u), i).level
    }

    /// The example policy of Kubernetes' "Auditing" page, trimmed.
    const EXAMPLE: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: RequestResponse
    resources:
    - group: ""
      resources: ["pods"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]
  - level: None
    resources:
    - group: ""
      resources: ["endpoints"]
      resourceNames: ["controller-leader"]
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: ""
      resources: ["endpoints", "services"]
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs: ["/api*", "/version"]
  - level: Request
    resources:
    - group: ""
      resources: ["configmaps"]
    namespaces: ["kube-system"]
  - level: Request
    resources:
    - group: ""
    - group: "extensions"
  - level: Metadata
    omitStages: ["RequestReceived"]
"#;

    #[test]
    fn first_matching_rule_wins() {
        let p = policy(EXAMPLE);
        let jane = user("jane", &["system:authenticated"]);
        // pods → RequestResponse (rule 0) though rule 6 (all core) would say Request.
        assert_eq!(
            level(&p, &jane, &res("get", "", "pods", "default", "p")),
            Level::RequestResponse
        );
        // A pod subresource is not "pods": rule 1.
        assert_eq!(
            level(&p, &jane, &res("get", "", "pods/log", "default", "p")),
            Level::Metadata
        );
        // pods/exec matches none of the pod rules: the core-group rule.
        assert_eq!(
            level(&p, &jane, &res("create", "", "pods/exec", "default", "p")),
            Level::Request
        );
        assert_eq!(
            level(&p, &jane, &res("get", "", "services", "default", "s")),
            Level::Request
        );
        assert_eq!(
            level(
                &p,
                &jane,
                &res("get", "apps", "deployments", "default", "d")
            ),
            Level::Metadata
        );
    }

    #[test]
    fn users_groups_verbs_names_and_namespaces_narrow_a_rule() {
        let p = policy(EXAMPLE);
        let proxy = user("system:kube-proxy", &["system:authenticated"]);
        let jane = user("jane", &["system:authenticated"]);
        let watch = res("watch", "", "endpoints", "default", "");
        assert_eq!(level(&p, &proxy, &watch), Level::None);
        assert_eq!(level(&p, &jane, &watch), Level::Request);
        assert_eq!(
            level(&p, &proxy, &res("list", "", "endpoints", "default", "")),
            Level::Request
        );
        assert_eq!(
            level(
                &p,
                &jane,
                &res("get", "", "endpoints", "default", "controller-leader")
            ),
            Level::None
        );
        assert_eq!(
            level(&p, &jane, &res("get", "", "endpoints", "default", "other")),
            Level::Request
        );
        // A group-only rule without a user never matches an unauthenticated request.
        assert_eq!(
            p.evaluate(None, &path("get", "/api")).level,
            Level::Metadata
        );
        assert_eq!(level(&p, &jane, &path("get", "/api")), Level::None);
    }

    #[test]
    fn wildcards_in_resources_and_non_resource_urls() {
        let p = policy(
            r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    resources:
    - group: "apps"
      resources: ["*/scale"]
  - level: Request
    resources:
    - group: "apps"
      resources: ["deployments/*"]
  - level: Metadata
    resources:
    - group: "batch"
      resources: ["*"]
  - level: Metadata
    nonResourceURLs: ["*"]
"#,
        );
        let u = user("jane", &[]);
        assert_eq!(level(&p, &u, &path("get", "/healthz")), Level::None);
        assert_eq!(level(&p, &u, &path("get", "/healthz/etcd")), Level::None);
        assert_eq!(level(&p, &u, &path("get", "/version")), Level::None);
        assert_eq!(level(&p, &u, &path("get", "/version/x")), Level::Metadata);
        assert_eq!(level(&p, &u, &path("get", "/livez")), Level::Metadata);
        let scale = res("update", "apps", "statefulsets/scale", "d", "s");
        assert_eq!(level(&p, &u, &scale), Level::RequestResponse);
        // `deployments/*` covers the resource itself and each subresource.
        for r in ["deployments", "deployments/status"] {
            assert_eq!(
                level(&p, &u, &res("update", "apps", r, "d", "x")),
                Level::Request,
                "{r}"
            );
        }
        assert_eq!(
            level(&p, &u, &res("create", "batch", "jobs/status", "d", "j")),
            Level::Metadata
        );
        // Resource rules never match paths, path rules never match resources.
        assert_eq!(
            level(&p, &u, &res("get", "", "pods", "d", "p")),
            Level::None
        );
    }

    #[test]
    fn namespace_rules_use_the_empty_namespace_for_cluster_scope() {
        let p = policy(
            r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Request
    namespaces: [""]
  - level: Metadata
    namespaces: ["kube-system"]
"#,
        );
        let u = user("jane", &[]);
        assert_eq!(
            level(&p, &u, &res("get", "", "nodes", "", "n")),
            Level::Request
        );
        assert_eq!(
            level(&p, &u, &res("get", "", "pods", "kube-system", "p")),
            Level::Metadata
        );
        assert_eq!(
            level(&p, &u, &res("get", "", "pods", "other", "p")),
            Level::None
        );
        assert_eq!(level(&p, &u, &path("get", "/version")), Level::None);
    }

    #[test]
    fn secrets_configmaps_and_tokens_are_never_recorded_beyond_metadata() {
        let p = policy(
            r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: RequestResponse
"#,
        );
        let u = user("jane", &[]);
        for (group, r) in [
            ("", "secrets"),
            ("", "configmaps"),
            ("", "serviceaccounts/token"),
            ("authentication.k8s.io", "tokenreviews"),
        ] {
            assert_eq!(
                level(&p, &u, &res("create", group, r, "d", "x")),
                Level::Metadata,
                "{r}"
            );
        }
        assert_eq!(
            level(&p, &u, &res("create", "", "serviceaccounts", "d", "x")),
            Level::RequestResponse
        );
        // Lower levels are kept as they are.
        let none = policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None}]\n");
        assert_eq!(
            level(&none, &u, &res("get", "", "secrets", "d", "x")),
            Level::None
        );
    }

    #[test]
    fn omit_stages_and_managed_fields_combine_rule_and_policy() {
        let p = policy(
            r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
omitManagedFields: true
rules:
  - level: Request
    verbs: ["create"]
    omitStages: ["ResponseStarted"]
    omitManagedFields: false
  - level: Metadata
    verbs: ["get"]
"#,
        );
        let u = user("jane", &[]);
        let d = p.evaluate(Some(&u), &res("create", "", "pods", "d", ""));
        assert!(d.omit_stages.contains(Stage::RequestReceived));
        assert!(d.omit_stages.contains(Stage::ResponseStarted));
        assert!(!d.omit_stages.contains(Stage::ResponseComplete));
        assert!(!d.omit_managed_fields);
        let d = p.evaluate(Some(&u), &res("get", "", "pods", "d", "p"));
        assert!(d.omit_managed_fields);
        assert!(!d.omit_stages.contains(Stage::ResponseStarted));
        let d = p.evaluate(Some(&u), &res("delete", "", "pods", "d", "p"));
        assert_eq!(d.level, Level::None);
        assert!(d.omit_stages.contains(Stage::RequestReceived));
    }

    #[test]
    fn invalid_policies_are_refused_with_kubernetes_messages() {
        let err = |yaml: &str| Policy::parse(yaml.as_bytes()).expect_err(yaml);
        assert_eq!(
            err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"),
            "loaded illegal policy with 0 rules"
        );
        assert!(
            err("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]\n")
                .contains("apiVersion: audit.k8s.io/v1")
        );
        assert_eq!(
            err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{verbs: [get]}]\n"),
            "rules[0].level: Required value"
        );
        assert_eq!(
            err("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n"),
            r#"rules[0].level: Unsupported value: "Everything": supported values: "None", "Metadata", "Request", "RequestResponse""#
        );
        let e = err(r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["healthz", "/a*b"]
    namespaces: ["x"]
  - level: None
    omitStages: ["Sometime"]
    resources: [{group: "Apps", resourceNames: ["x"]}]
"#);
        for part in [
            "rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' character",
            "rules[0].nonResourceURLs[1]: Invalid value: \"/a*b\": non-resource URL wildcards '*' must be the final character of the rule",
            "rules[0].nonResourceURLs: Invalid value: []string{\"healthz\", \"/a*b\"}: rules cannot apply to both regular resources and non-resource URLs",
            "rules[1].omitStages[0]: Invalid value: \"Sometime\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic",
            "rules[1].resources.group: Invalid value: \"Apps\"",
            "using resourceNames requires at least one resource",
        ] {
            assert!(e.contains(part), "{part} not in {e}");
        }
        assert!(e.starts_with('[') && e.ends_with(']'), "{e}");
    }

    #[test]
    fn nulls_and_json_are_read_like_go_reads_them() {
        let p = Policy::parse(
            br#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","omitStages":null,"rules":[{"level":"Metadata","users":null,"resources":null}]}"#,
        )
        .expect("json policy");
        assert_eq!(
            level(&p, &user("x", &[]), &res("get", "", "pods", "d", "p")),
            Level::Metadata
        );
    }
}
