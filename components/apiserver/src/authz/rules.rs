//! RBAC policy rules: whether a rule allows a request (Kubernetes' `RuleAllows`) and whether
//! one set of rules covers another (the escalation check's `Covers`).

use serde_json::Value;

use super::Attributes;

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

/// The strings of the array at `key` (missing or not an array: none; non-strings skipped).
pub(crate) fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    pub fn from_json(v: &Value) -> Rule {
        Rule {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The `rules` of a Role or ClusterRole object.
    pub fn list_from(obj: &Value) -> Vec<Rule> {
        obj.get("rules")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(Rule::from_json).collect())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: &Vec<String>| {
            if !v.is_empty() {
                m.insert(k.into(), Value::from(v.clone()));
            }
        };
        put("verbs", &self.verbs);
        put("apiGroups", &self.api_groups);
        put("resources", &self.resources);
        put("resourceNames", &self.resource_names);
        put("nonResourceURLs", &self.non_resource_urls);
        if !m.contains_key("verbs") {
            m.insert("verbs".into(), Value::Array(Vec::new()));
        }
        Value::Object(m)
    }

    /// Kubernetes' `CompactString`: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let q = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:[{}]", q(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:[{}]", q(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!("NonResourceURLs:[{}]", q(&self.non_resource_urls)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:[{}]", q(&self.resource_names)));
        }
        if !self.verbs.is_empty() {
            parts.push(format!("Verbs:[{}]", q(&self.verbs)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

fn has(set: &[String], v: &str) -> bool {
    set.iter().any(|s| s == v)
}

fn verb_matches(rule: &Rule, verb: &str) -> bool {
    has(&rule.verbs, "*") || has(&rule.verbs, verb)
}

fn api_group_matches(rule: &Rule, group: &str) -> bool {
    has(&rule.api_groups, "*") || has(&rule.api_groups, group)
}

/// `*` matches every resource and subresource; `*/scale` matches the scale subresource of
/// every resource; otherwise `resource` or `resource/subresource` must be listed exactly.
fn resource_matches(rule: &Rule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

fn resource_name_matches(rule: &Rule, name: &str) -> bool {
    rule.resource_names.is_empty() || has(&rule.resource_names, name)
}

/// `*` matches every path; `/prefix/*` every path under it; anything else exactly.
fn non_resource_url_matches(rule: &Rule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
    })
}

/// Whether `rule` allows the request (Kubernetes' `RuleAllows`).
pub fn allows(a: &Attributes, rule: &Rule) -> bool {
    if a.resource_request {
        let combined = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &combined, &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// Splits rules into ones of a single verb, group, resource and name (or URL), so that
/// coverage is checked piece by piece (Kubernetes' `BreakdownRule`).
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                if rule.resource_names.is_empty() {
                    out.push(Rule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        ..Rule::default()
                    });
                }
                for name in &rule.resource_names {
                    out.push(Rule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names: vec![name.clone()],
                        ..Rule::default()
                    });
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Rule::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

fn resources_cover_all(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, "*") || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(owner, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
    })
}

fn url_covers(owner: &str, wanted: &str) -> bool {
    owner == wanted || (owner.ends_with('*') && wanted.starts_with(owner.trim_end_matches('*')))
}

fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover_all(&owner.resources, &sub.resources);
    let urls = sub
        .non_resource_urls
        .iter()
        .all(|u| owner.non_resource_urls.iter().any(|o| url_covers(o, u)));
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    verbs && groups && resources && names && urls
}

/// The pieces of `wanted` that no rule of `owner` covers (empty: `owner` covers `wanted`).
pub fn uncovered(owner: &[Rule], wanted: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for rule in wanted {
        for piece in breakdown(rule) {
            if !owner.iter().any(|o| rule_covers(o, &piece)) && !missing.contains(&piece) {
                missing.push(piece);
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::UserInfo;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        Rule::from_json(&v)
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo {
                name: "jane".into(),
                groups: vec![],
                ..Default::default()
            },
            verb: verb.into(),
            resource_request: true,
            namespace: "default".into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            path: String::new(),
            field_selector: String::new(),
        }
    }

    fn path(verb: &str, p: &str) -> Attributes {
        Attributes {
            resource_request: false,
            path: p.into(),
            ..res(verb, "", "", "", "")
        }
    }

    #[test]
    fn resource_rules_match_verb_group_resource_and_name() {
        let r = rule(json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}));
        assert!(allows(&res("list", "", "pods", "", ""), &r));
        assert!(allows(&res("get", "", "pods", "", "p"), &r));
        assert!(!allows(&res("delete", "", "pods", "", "p"), &r));
        assert!(!allows(&res("get", "apps", "pods", "", "p"), &r));
        assert!(
            !allows(&res("get", "", "pods", "log", "p"), &r),
            "a resource does not grant its subresources"
        );
        let named = rule(
            json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["l"], "verbs": ["get"]}),
        );
        assert!(allows(
            &res("get", "coordination.k8s.io", "leases", "", "l"),
            &named
        ));
        assert!(!allows(
            &res("get", "coordination.k8s.io", "leases", "", "m"),
            &named
        ));
        assert!(
            !allows(&res("get", "coordination.k8s.io", "leases", "", ""), &named),
            "resourceNames never match a request without a name"
        );
    }

    #[test]
    fn wildcards_and_subresources() {
        let all = rule(json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        assert!(allows(
            &res("escalate", "rbac.authorization.k8s.io", "roles", "", "r"),
            &all
        ));
        assert!(allows(&res("get", "", "pods", "log", "p"), &all));
        let scale =
            rule(json!({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]}));
        assert!(allows(
            &res("update", "apps", "deployments", "scale", "d"),
            &scale
        ));
        assert!(!allows(
            &res("update", "apps", "deployments", "", "d"),
            &scale
        ));
        assert!(!allows(
            &res("update", "apps", "deployments", "status", "d"),
            &scale
        ));
        let log = rule(json!({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}));
        assert!(allows(&res("get", "", "pods", "log", "p"), &log));
        assert!(!allows(&res("get", "", "pods", "", "p"), &log));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_trailing_star() {
        let r = rule(json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}));
        assert!(allows(&path("get", "/healthz"), &r));
        assert!(!allows(&path("get", "/healthz/etcd"), &r));
        assert!(allows(&path("get", "/apis/apps/v1"), &r));
        assert!(!allows(&path("get", "/apis"), &r));
        assert!(!allows(&path("post", "/healthz"), &r));
        assert!(
            !allows(&res("get", "", "pods", "", ""), &r),
            "URL rules grant no resources"
        );
    }

    #[test]
    fn coverage_breaks_rules_down() {
        let owner = vec![
            rule(
                json!({"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}),
            ),
            rule(json!({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["*"]})),
            rule(json!({"nonResourceURLs": ["/logs/*"], "verbs": ["get"]})),
        ];
        let wanted = vec![rule(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}),
        )];
        assert!(uncovered(&owner, &wanted).is_empty());
        let wanted = vec![rule(
            json!({"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "delete"]}),
        )];
        let missing = uncovered(&owner, &wanted);
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert_eq!(
            missing[0].compact_string(),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}"#
        );
        let wanted = vec![rule(
            json!({"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["update"]}),
        )];
        assert!(uncovered(&owner, &wanted).is_empty());
        let wanted = vec![rule(
            json!({"nonResourceURLs": ["/logs/kubelet"], "verbs": ["get"]}),
        )];
        assert!(uncovered(&owner, &wanted).is_empty());
        let named_owner = vec![rule(
            json!({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]}),
        )];
        let unnamed = vec![rule(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}),
        )];
        assert_eq!(
            uncovered(&named_owner, &unnamed).len(),
            1,
            "a named grant does not cover all names"
        );
    }
}
