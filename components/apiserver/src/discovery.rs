//! Discovery documents (`/api`, `/apis`, group-version resource lists), `/version`
//! and the health endpoints, all derived from the resource registry.

use kadm_apimachinery::{ApiError, ResourceInfo, registry};
use serde_json::{Value, json};

fn subresource_kind(res: &ResourceInfo, sub: &str) -> (&'static str, &'static str, &'static str) {
    // (group, version, kind) of what the subresource serves
    match sub {
        "scale" => ("autoscaling", "v1", "Scale"),
        "binding" => ("", "v1", "Binding"),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest"),
        _ => ("", "", res.kind),
    }
}

fn subresource_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "binding" | "token" => vec!["create"],
        "finalize" => vec!["update"],
        _ => vec!["get", "patch", "update"],
    }
}

/// `APIResourceList` of one group-version.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in registry::resources_in(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced(),
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, kind) = subresource_kind(r, sub);
            let mut e = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": kind,
                "verbs": subresource_verbs(sub),
            });
            if !g.is_empty() {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn group_doc(group: &str) -> Option<Value> {
    let versions: Vec<Value> = registry::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": versions, "preferredVersion": preferred}),
    )
}

/// Answers a discovery path (`/api`, `/api/v1`, `/apis`, `/apis/g`, `/apis/g/v`).
pub fn discover(parts: &[String], advertise: &str) -> Result<Value, ApiError> {
    let not_found = || {
        ApiError::not_found("", "", "")
            .with_text("the server could not find the requested resource")
    };
    match parts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["api"] => Ok(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": advertise}],
        })),
        ["api", v] => resource_list("", v).ok_or_else(not_found),
        ["apis"] => {
            let mut groups = Vec::new();
            let mut seen = Vec::new();
            for (g, _) in registry::group_versions() {
                if !seen.contains(&g) {
                    seen.push(g);
                    groups.extend(group_doc(g));
                }
            }
            Ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        ["apis", g] => group_doc(g).ok_or_else(not_found),
        ["apis", g, v] => resource_list(g, v).ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

trait WithText {
    fn with_text(self, t: &str) -> Self;
}
impl WithText for ApiError {
    fn with_text(mut self, t: &str) -> Self {
        self.message = t.to_string();
        self.kind = None;
        self
    }
}

/// `/version`, with the Kubernetes version kadm serves and kadm's own suffix.
pub fn version() -> Value {
    let git = kadm_base::git_version();
    let minor = kadm_base::KUBERNETES_VERSION
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("0")
        .to_string();
    json!({
        "major": "1",
        "minor": minor,
        "emulationMajor": "1",
        "emulationMinor": minor,
        "gitVersion": git,
        "gitCommit": option_env!("KADM_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("KADM_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else if std::env::consts::ARCH == "aarch64" { "arm64" } else { std::env::consts::ARCH }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_subresources_and_short_names() {
        let l = resource_list("", "v1").expect("v1");
        let rs = l["resources"].as_array().expect("array");
        let pods = rs.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let binding = rs
            .iter()
            .find(|r| r["name"] == "pods/binding")
            .expect("binding");
        assert_eq!(binding["verbs"], json!(["create"]));
        assert!(rs.iter().any(|r| r["name"] == "namespaces/finalize"));
    }

    #[test]
    fn apis_lists_each_group_once() {
        let l = discover(&["apis".to_string()], "127.0.0.1:6443").expect("apis");
        let names: Vec<&str> = l["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .filter_map(|g| g["name"].as_str())
            .collect();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        assert!(names.contains(&"apps"));
    }

    #[test]
    fn version_reports_kubernetes_minor() {
        let v = version();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "33");
    }
}
