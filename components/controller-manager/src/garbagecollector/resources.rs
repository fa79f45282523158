//! Which resources the garbage collector watches, and how an owner reference's
//! `apiVersion` + `kind` maps to a resource (Kubernetes' REST mapping, from discovery).

use std::collections::HashMap;

use kube::discovery::ApiResource;

use crate::discovery::Resource;

/// Resources Kubernetes' garbage collector never watches (`--gc-ignored-resources`' default):
/// events come in floods, and nothing owns them.
pub const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// The resources to watch: every discovered one that can be listed, watched and deleted,
/// except the ignored ones (Kubernetes' `GetDeletableResources`).
pub fn monitorable(resources: &[Resource]) -> Vec<ApiResource> {
    resources
        .iter()
        .filter(|r| ["delete", "list", "watch"].iter().all(|v| r.has(v)))
        .filter(|r| {
            !IGNORED
                .iter()
                .any(|(g, p)| r.api.group == *g && r.api.plural == *p)
        })
        .map(|r| r.api.clone())
        .collect()
}

/// A monitor's key: `group/version/plural` (`/v1/pods` for the core group).
pub fn key(r: &ApiResource) -> String {
    format!("{}/{}/{}", r.group, r.version, r.plural)
}

/// Group + kind → the resource serving it, as discovery last reported.
#[derive(Debug, Default)]
pub struct RestMapper {
    by_kind: HashMap<(String, String), Resource>,
}

impl RestMapper {
    pub fn new(resources: &[Resource]) -> Self {
        let mut by_kind = HashMap::new();
        for r in resources.iter().filter(|r| r.has("get")) {
            // The first (preferred) resource for a kind wins.
            by_kind
                .entry((r.api.group.clone(), r.api.kind.clone()))
                .or_insert_with(|| r.clone());
        }
        Self { by_kind }
    }

    /// The resource serving `kind` in `group`, whatever version the reference names (owner
    /// references may carry an older version of the same kind).
    pub fn find(&self, group: &str, kind: &str) -> Option<&Resource> {
        self.by_kind.get(&(group.to_string(), kind.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, kind: &str, plural: &str, namespaced: bool, verbs: &[&str]) -> Resource {
        let version = "v1".to_string();
        Resource {
            api: ApiResource {
                api_version: if group.is_empty() {
                    version.clone()
                } else {
                    format!("{group}/{version}")
                },
                group: group.into(),
                version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
        }
    }

    const ALL: &[&str] = &[
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];

    #[test]
    fn monitors_cover_deletable_watchable_resources_but_events() {
        let found = [
            res("", "Pod", "pods", true, ALL),
            res("", "Event", "events", true, ALL),
            res("events.k8s.io", "Event", "events", true, ALL),
            res("", "Binding", "bindings", true, &["create"]),
            res(
                "authentication.k8s.io",
                "TokenReview",
                "tokenreviews",
                false,
                &["create"],
            ),
            res("", "Node", "nodes", false, ALL),
            res(
                "x.io",
                "Unwatchable",
                "unwatchables",
                true,
                &["delete", "get", "list"],
            ),
        ];
        let keys: Vec<String> = monitorable(&found).iter().map(key).collect();
        assert_eq!(keys, vec!["/v1/pods", "/v1/nodes"]);
    }

    #[test]
    fn the_mapper_finds_a_kind_by_group_whatever_the_version() {
        let m = RestMapper::new(&[
            res("apps", "ReplicaSet", "replicasets", true, ALL),
            res("", "Namespace", "namespaces", false, ALL),
            res("", "Binding", "bindings", true, &["create"]),
        ]);
        let rs = m.find("apps", "ReplicaSet").expect("replicaset");
        assert_eq!(rs.api.plural, "replicasets");
        assert!(rs.namespaced);
        assert!(!m.find("", "Namespace").expect("namespace").namespaced);
        assert!(m.find("", "ReplicaSet").is_none(), "group matters");
        assert!(
            m.find("", "Binding").is_none(),
            "kinds that cannot be read are not mapped"
        );
        assert!(!m.is_empty());
    }
}
