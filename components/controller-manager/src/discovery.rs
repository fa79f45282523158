//! Discovery shared by the controllers: the preferred version of every API group the
//! apiserver serves and the resources in it, tolerating groups that fail (as client-go's
//! `ServerPreferredResources` does: what could be read is used, the failures are reported).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use kube::discovery::ApiResource;

use crate::error::api_message;

/// One top-level resource (not a subresource) as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    /// Whether discovery lists `verb` for it.
    pub fn has(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// The top-level resources of one discovery list, with their group and version filled in
/// from the list where a resource does not name its own.
pub fn resources(list: &APIResourceList) -> Vec<Resource> {
    let (list_group, list_version) = match list.group_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", list.group_version.as_str()),
    };
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| {
            let group = r.group.clone().unwrap_or_else(|| list_group.to_string());
            let version = r
                .version
                .clone()
                .unwrap_or_else(|| list_version.to_string());
            let api_version = if group.is_empty() {
                version.clone()
            } else {
                format!("{group}/{version}")
            };
            Resource {
                api: ApiResource {
                    group,
                    version,
                    api_version,
                    kind: r.kind.clone(),
                    plural: r.name.clone(),
                },
                namespaced: r.namespaced,
                verbs: r.verbs.clone(),
            }
        })
        .collect()
}

/// The discovery-failure message Kubernetes writes when some groups could not be read
/// (`failed`: group-version → error).
pub fn discovery_message(failed: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = failed.iter().map(|(gv, e)| format!("{gv}: {e}")).collect();
    format!(
        "Discovery failed for some groups, {} failing: unable to retrieve the complete list of server APIs: {}",
        failed.len(),
        parts.join(", ")
    )
}

/// What one discovery pass found.
#[derive(Debug, Default)]
pub struct ServerResources {
    /// One list per group-version that could be read.
    pub lists: Vec<APIResourceList>,
    /// Group-versions whose resources could not be read, with the error.
    pub failed: BTreeMap<String, String>,
    /// `/api` or `/apis` themselves failed (that whole side is missing).
    pub fatal: Vec<String>,
}

impl ServerResources {
    /// Why discovery is incomplete, if it is.
    pub fn error(&self) -> Option<String> {
        if !self.fatal.is_empty() {
            Some(self.fatal.join(", "))
        } else if !self.failed.is_empty() {
            Some(discovery_message(&self.failed))
        } else {
            None
        }
    }

    /// Every top-level resource found.
    pub fn resources(&self) -> Vec<Resource> {
        self.lists.iter().flat_map(resources).collect()
    }
}

/// Discovers the preferred version of every group (core `/api` and `/apis`). A failing
/// group is reported and skipped; a failing `/api` or `/apis` leaves that side empty.
pub async fn preferred(client: &Client) -> ServerResources {
    let mut found = ServerResources::default();
    match client.list_core_api_versions().await {
        Ok(v) => {
            if let Some(version) = v.versions.first() {
                match client.list_core_api_resources(version).await {
                    Ok(l) => found.lists.push(l),
                    Err(e) => {
                        found.failed.insert(version.clone(), api_message(&e));
                    }
                }
            }
        }
        Err(e) => found.fatal.push(api_message(&e)),
    }
    match client.list_api_groups().await {
        Ok(groups) => {
            for g in groups.groups {
                let Some(gv) = g
                    .preferred_version
                    .as_ref()
                    .or(g.versions.first())
                    .map(|v| v.group_version.clone())
                else {
                    continue;
                };
                match client.list_api_group_resources(&gv).await {
                    Ok(l) => found.lists.push(l),
                    Err(e) => {
                        found.failed.insert(gv, api_message(&e));
                    }
                }
            }
        }
        Err(e) => found.fatal.push(api_message(&e)),
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    #[test]
    fn resources_skip_subresources_and_inherit_the_list_group_version() {
        let list = APIResourceList {
            group_version: "apps/v1".into(),
            resources: vec![
                APIResource {
                    name: "deployments".into(),
                    namespaced: true,
                    kind: "Deployment".into(),
                    verbs: vec!["get".into(), "watch".into()],
                    ..APIResource::default()
                },
                APIResource {
                    name: "deployments/scale".into(),
                    namespaced: true,
                    kind: "Scale".into(),
                    group: Some("autoscaling".into()),
                    version: Some("v1".into()),
                    ..APIResource::default()
                },
            ],
        };
        let r = resources(&list);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].api.api_version, "apps/v1");
        assert_eq!(r[0].api.group, "apps");
        assert!(r[0].namespaced && r[0].has("watch") && !r[0].has("delete"));
    }

    #[test]
    fn error_prefers_fatal_over_group_failures() {
        let mut s = ServerResources::default();
        assert_eq!(s.error(), None);
        s.failed.insert("apps/v1".into(), "timeout".into());
        assert!(
            s.error()
                .expect("error")
                .starts_with("Discovery failed for some groups, 1 failing")
        );
        s.fatal.push("connection refused".into());
        assert_eq!(s.error().as_deref(), Some("connection refused"));
    }
}
