//! The RBAC authorizer: roles and bindings indexed in memory from the watch cache, so a
//! decision reads no etcd. The index is rebuilt when one of the four RBAC prefixes has
//! changed since it was built (roles and bindings change rarely; requests are many).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kadm_apimachinery::registry;
use serde_json::Value;

use super::rules::{self, Rule};
use super::{Attributes, Decision};
use crate::cache::WatchCache;
use crate::tls::UserInfo;

pub const GROUP: &str = "rbac.authorization.k8s.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRef {
    Role(String),
    ClusterRole(String),
}

#[derive(Debug, Clone)]
pub struct Subject {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl Subject {
    /// Kubernetes' `appliesTo`: users by name, groups by membership, service accounts by
    /// their user name (`system:serviceaccount:<ns>:<name>`, ns defaulting to the binding's).
    fn applies_to(&self, user: &UserInfo, binding_namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_namespace
                } else {
                    &self.namespace
                };
                user.name == format!("system:serviceaccount:{ns}:{}", self.name)
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub name: String,
    pub namespace: String,
    pub role: RoleRef,
    pub subjects: Vec<Subject>,
}

impl Binding {
    pub fn from_json(obj: &Value) -> Binding {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
        let role_name = s(&role_ref, "name");
        Binding {
            name: kadm_apimachinery::meta::name(obj).to_string(),
            namespace: kadm_apimachinery::meta::namespace(obj).to_string(),
            role: if s(&role_ref, "kind") == "Role" {
                RoleRef::Role(role_name)
            } else {
                RoleRef::ClusterRole(role_name)
            },
            subjects: obj
                .get("subjects")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| Subject {
                            kind: s(v, "kind"),
                            name: s(v, "name"),
                            namespace: s(v, "namespace"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn applies_to(&self, user: &UserInfo) -> bool {
        self.subjects
            .iter()
            .any(|s| s.applies_to(user, &self.namespace))
    }

    /// Kubernetes' description of the binding that allowed a request (the
    /// `authorization.k8s.io/reason` audit annotation, SubjectAccessReview's reason):
    /// `ClusterRoleBinding "b" of ClusterRole "r" to User "u"`, `RoleBinding "b/ns" …`.
    fn describe(&self, user: &UserInfo) -> String {
        let (role_kind, role) = match &self.role {
            RoleRef::Role(n) => ("Role", n),
            RoleRef::ClusterRole(n) => ("ClusterRole", n),
        };
        let subject = self
            .subjects
            .iter()
            .find(|s| s.applies_to(user, &self.namespace))
            .map(|s| match s.kind.as_str() {
                "ServiceAccount" => {
                    let ns = if s.namespace.is_empty() {
                        &self.namespace
                    } else {
                        &s.namespace
                    };
                    format!("{} {:?}", s.kind, format!("{}/{ns}", s.name))
                }
                _ => format!("{} {:?}", s.kind, s.name),
            })
            .unwrap_or_default();
        if self.namespace.is_empty() {
            format!(
                "ClusterRoleBinding {:?} of {role_kind} {role:?} to {subject}",
                self.name
            )
        } else {
            format!(
                "RoleBinding {:?} of {role_kind} {role:?} to {subject}",
                format!("{}/{}", self.name, self.namespace)
            )
        }
    }
}

/// Every role and binding, as of one state of the cache.
#[derive(Debug, Default)]
pub struct Index {
    pub cluster_roles: HashMap<String, Vec<Rule>>,
    pub roles: HashMap<(String, String), Vec<Rule>>,
    pub cluster_bindings: Vec<Binding>,
    pub role_bindings: HashMap<String, Vec<Binding>>,
}

/// Why a binding contributed no rules (Kubernetes reports these as the denial's reason).
fn missing(role: &RoleRef) -> String {
    match role {
        RoleRef::Role(n) => format!("role.rbac.authorization.k8s.io {n:?} not found"),
        RoleRef::ClusterRole(n) => format!("clusterrole.rbac.authorization.k8s.io {n:?} not found"),
    }
}

/// Go's `utilerrors.Aggregate` text: one error as is, several as `[a, b]`.
pub fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl Index {
    fn role_rules(&self, role: &RoleRef, namespace: &str) -> Option<&Vec<Rule>> {
        match role {
            RoleRef::Role(n) => self.roles.get(&(namespace.to_string(), n.clone())),
            RoleRef::ClusterRole(n) => self.cluster_roles.get(n),
        }
    }

    /// Visits the rules that apply to `user` in `namespace` (cluster bindings first, then
    /// the namespace's bindings), stopping when `visit` returns true. Returns the binding
    /// it stopped at (described as Kubernetes does) and the resolution errors met on the way.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Rule) -> bool,
    ) -> (Option<String>, Vec<String>) {
        let mut errors = Vec::new();
        for b in &self.cluster_bindings {
            if !b.applies_to(user) {
                continue;
            }
            match self.role_rules(&b.role, "") {
                Some(rules) => {
                    if rules.iter().any(&mut visit) {
                        return (Some(b.describe(user)), errors);
                    }
                }
                None => errors.push(missing(&b.role)),
            }
        }
        if !namespace.is_empty() {
            for b in self.role_bindings.get(namespace).into_iter().flatten() {
                if !b.applies_to(user) {
                    continue;
                }
                match self.role_rules(&b.role, namespace) {
                    Some(rules) => {
                        if rules.iter().any(&mut visit) {
                            return (Some(b.describe(user)), errors);
                        }
                    }
                    None => errors.push(missing(&b.role)),
                }
            }
        }
        (None, errors)
    }

    pub fn authorize(&self, a: &Attributes) -> (Decision, String) {
        let (allowed_by, errors) = self.visit(&a.user, &a.namespace, |r| rules::allows(a, r));
        if let Some(binding) = allowed_by {
            return (Decision::Allow, format!("RBAC: allowed by {binding}"));
        }
        let reason = if errors.is_empty() {
            String::new()
        } else {
            format!("RBAC: {}", aggregate(&errors))
        };
        (Decision::NoOpinion, reason)
    }

    /// Every rule `user` holds in `namespace` (what the escalation check and
    /// SelfSubjectRulesReview read), with the resolution errors.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        let mut out = Vec::new();
        let (_, errors) = self.visit(user, namespace, |r| {
            out.push(r.clone());
            false
        });
        (out, errors)
    }

    fn build(cache: &WatchCache) -> Index {
        let mut idx = Index::default();
        let each = |plural: &str, f: &mut dyn FnMut(Value)| {
            let Some(res) = registry::lookup(GROUP, "v1", plural) else {
                return;
            };
            let Some(c) = cache.cacher(res) else { return };
            for e in c.list(&c.prefix, 0, |_| true).items {
                f(e.value());
            }
        };
        each("clusterroles", &mut |o| {
            idx.cluster_roles.insert(
                kadm_apimachinery::meta::name(&o).to_string(),
                Rule::list_from(&o),
            );
        });
        each("roles", &mut |o| {
            idx.roles.insert(
                (
                    kadm_apimachinery::meta::namespace(&o).to_string(),
                    kadm_apimachinery::meta::name(&o).to_string(),
                ),
                Rule::list_from(&o),
            );
        });
        each("clusterrolebindings", &mut |o| {
            idx.cluster_bindings.push(Binding::from_json(&o));
        });
        each("rolebindings", &mut |o| {
            let b = Binding::from_json(&o);
            idx.role_bindings
                .entry(b.namespace.clone())
                .or_default()
                .push(b);
        });
        idx
    }
}

/// The index, rebuilt lazily when the RBAC part of the cache moved.
pub struct Rbac {
    cache: Arc<WatchCache>,
    current: Mutex<(Vec<i64>, Arc<Index>)>,
}

impl Rbac {
    pub fn new(cache: Arc<WatchCache>) -> Rbac {
        Rbac {
            cache,
            current: Mutex::new((Vec::new(), Arc::new(Index::default()))),
        }
    }

    /// The revision of the last change of each RBAC prefix: equal means nothing changed.
    fn generation(&self) -> Vec<i64> {
        [
            "roles",
            "clusterroles",
            "rolebindings",
            "clusterrolebindings",
        ]
        .iter()
        .map(|p| {
            registry::lookup(GROUP, "v1", p)
                .and_then(|r| self.cache.cacher(r))
                .map(|c| c.last_change())
                .unwrap_or(0)
        })
        .collect()
    }

    pub fn index(&self) -> Arc<Index> {
        let generation = self.generation();
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.0 != generation || cur.0.is_empty() {
            let idx = Arc::new(Index::build(&self.cache));
            tracing::debug!(
                cluster_roles = idx.cluster_roles.len(),
                roles = idx.roles.len(),
                cluster_bindings = idx.cluster_bindings.len(),
                "rbac index rebuilt"
            );
            *cur = (generation, idx);
        }
        cur.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_allowed_request_names_the_binding_as_kubernetes_does() {
        let mut idx = Index::default();
        idx.cluster_roles.insert(
            "view".into(),
            Rule::list_from(
                &json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
            ),
        );
        idx.role_bindings.insert(
            "team".into(),
            vec![Binding::from_json(&json!({
                "metadata": {"name": "b", "namespace": "team"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "x"}, {"kind": "ServiceAccount", "name": "sa"}],
            }))],
        );
        idx.cluster_bindings.push(Binding::from_json(&json!({
            "metadata": {"name": "all"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "Group", "name": "readers"}],
        })));
        let sa = UserInfo {
            name: "system:serviceaccount:team:sa".into(),
            ..UserInfo::default()
        };
        let get = |u: &UserInfo| idx.authorize(&Attributes::of(u, "get", "", "pods", "team", "p"));
        assert_eq!(
            get(&sa),
            (
                Decision::Allow,
                r#"RBAC: allowed by RoleBinding "b/team" of ClusterRole "view" to ServiceAccount "sa/team""#
                    .to_string()
            )
        );
        let reader = UserInfo {
            name: "r".into(),
            groups: vec!["readers".into()],
            ..UserInfo::default()
        };
        assert_eq!(
            get(&reader).1,
            r#"RBAC: allowed by ClusterRoleBinding "all" of ClusterRole "view" to Group "readers""#
        );
        let nobody = UserInfo {
            name: "n".into(),
            ..UserInfo::default()
        };
        assert_eq!(get(&nobody), (Decision::NoOpinion, String::new()));
    }
}
