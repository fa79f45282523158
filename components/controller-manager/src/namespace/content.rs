//! Finding and deleting everything in a namespace, the way Kubernetes' namespaced-resources
//! deleter does: discover the namespaced resources the apiserver serves, delete each kind
//! (one `deletecollection`, or list and delete one by one), then list again to see what is
//! left and which finalizers hold it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::ApiResource;

use crate::discovery;
use crate::error::{api_code, api_message};

/// How long Kubernetes assumes an object with finalizers needs before it goes, in seconds.
pub const FINALIZER_ESTIMATE_SECS: i64 = 15;

/// One namespaced resource to empty, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: ApiResource,
    /// The resource serves `deletecollection`; otherwise objects are listed and deleted one by one.
    pub delete_collection: bool,
    /// The resource serves `list`, so what is left can be counted.
    pub list: bool,
}

/// The resources of one discovery list that can be emptied in a namespace: namespaced, not a
/// subresource, deletable, and either collection-deletable or listable.
pub fn deletable(list: &APIResourceList) -> Vec<Target> {
    discovery::resources(list)
        .into_iter()
        .filter(|r| r.namespaced && r.has("delete"))
        .filter_map(|r| {
            let delete_collection = r.has("deletecollection");
            let list = r.has("list");
            (delete_collection || list).then_some(Target {
                resource: r.api,
                delete_collection,
                list,
            })
        })
        .collect()
}

/// `<resource>.<group>` as Kubernetes' conditions name a resource (`configmaps.` for core).
pub fn resource_key(r: &ApiResource) -> String {
    format!("{}.{}", r.plural, r.group)
}

/// A GroupVersionResource as Go prints it: `apps/v1, Resource=deployments`, `/v1, Resource=pods`.
pub fn gvr_string(r: &ApiResource) -> String {
    format!("{}/{}, Resource={}", r.group, r.version, r.plural)
}

pub use crate::discovery::discovery_message;

/// What discovery found.
#[derive(Debug, Default)]
pub struct Discovered {
    pub targets: Vec<Target>,
    /// Why discovery is incomplete, as the condition message; the targets found are still used.
    pub error: Option<String>,
}

/// Discovers the preferred version of every group (core `/api` and `/apis`) and what in it can
/// be deleted. A failing group is reported and skipped; a failing `/api` or `/apis` leaves
/// that side empty.
pub async fn discover(client: &Client) -> Discovered {
    let found = discovery::preferred(client).await;
    Discovered {
        targets: found.lists.iter().flat_map(deletable).collect(),
        error: found.error(),
    }
}

/// What one pass over a namespace's content found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Discovery was incomplete (condition message).
    pub discovery_error: Option<String>,
    /// One message per resource whose content could not be deleted.
    pub content_errors: Vec<String>,
    /// Objects left, per [`resource_key`].
    pub remaining: BTreeMap<String, usize>,
    /// Objects left, per finalizer they carry.
    pub finalizers: BTreeMap<String, usize>,
    /// Seconds Kubernetes would expect the rest to take (finalizers, pods' grace periods).
    pub estimate_secs: i64,
}

impl Report {
    /// Whether the namespace is empty and nothing failed: it may be finalized.
    pub fn done(&self) -> bool {
        self.discovery_error.is_none()
            && self.content_errors.is_empty()
            && self.estimate_secs == 0
            && self.remaining.values().all(|n| *n == 0)
    }

    fn add(&mut self, key: String, left: Left) {
        if left.count > 0 {
            *self.remaining.entry(key).or_default() += left.count;
            for (f, n) in left.finalizers {
                *self.finalizers.entry(f).or_default() += n;
            }
        }
        self.estimate_secs = self.estimate_secs.max(left.estimate);
    }
}

/// What is left of one resource after deleting it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Left {
    pub count: usize,
    pub finalizers: BTreeMap<String, usize>,
    pub estimate: i64,
}

/// Judges the objects still listed after a delete (their finalizers, one list per object),
/// given the grace-period estimate: an empty list is done; leftovers are expected while an
/// estimate runs or while finalizers hold them; anything else should not be there.
pub fn judge_leftovers(
    namespace: &str,
    target: &ApiResource,
    finalizers_per_object: &[Vec<String>],
    estimate: i64,
) -> (Left, Option<String>) {
    let mut left = Left {
        count: finalizers_per_object.len(),
        finalizers: BTreeMap::new(),
        estimate,
    };
    if left.count == 0 {
        return (Left::default(), None);
    }
    for f in finalizers_per_object.iter().flatten() {
        *left.finalizers.entry(f.clone()).or_default() += 1;
    }
    if estimate != 0 {
        return (left, None);
    }
    if !left.finalizers.is_empty() {
        left.estimate = FINALIZER_ESTIMATE_SECS;
        return (left, None);
    }
    let error = format!(
        "unexpected items still remain in namespace: {namespace} for gvr: {}",
        gvr_string(target)
    );
    (left, Some(error))
}

/// How long the pods of a namespace may still need (the longest grace period of a pod that
/// has not finished), or 0 once that long has passed since the namespace was deleted.
pub fn pod_estimate(pods: &[Pod], since_deletion: Duration) -> i64 {
    let estimate = pods
        .iter()
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .filter_map(|p| p.spec.as_ref()?.termination_grace_period_seconds)
        .max()
        .unwrap_or(0)
        .max(0);
    if since_deletion >= Duration::from_secs(u64::try_from(estimate).unwrap_or(0)) {
        0
    } else {
        estimate
    }
}

/// Deletes every discovered resource in `namespace` and reports what is left.
pub async fn delete_all(client: &Client, namespace: &str, deleted_at: Timestamp) -> Report {
    let discovered = discover(client).await;
    let mut report = Report {
        discovery_error: discovered.error,
        ..Report::default()
    };
    let since_deletion = Timestamp::now().duration_since(deleted_at).unsigned_abs();
    for target in &discovered.targets {
        let (left, error) = delete_resource(client, namespace, target, since_deletion).await;
        report.add(resource_key(&target.resource), left);
        if let Some(e) = error {
            report.content_errors.push(e);
        }
    }
    report
}

async fn delete_resource(
    client: &Client,
    namespace: &str,
    target: &Target,
    since_deletion: Duration,
) -> (Left, Option<String>) {
    let r = &target.resource;
    let estimate = if r.group.is_empty() && r.plural == "pods" {
        match Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
        {
            Ok(pods) => pod_estimate(&pods.items, since_deletion),
            Err(e) => return (Left::default(), Some(api_message(&e))),
        }
    } else {
        0
    };
    let fail = |e: String| {
        (
            Left {
                estimate,
                ..Left::default()
            },
            Some(e),
        )
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, r);
    // Background propagation: the garbage collector must not add the orphan finalizer to
    // content the namespace controller removes wholesale.
    let dp = DeleteParams::background();
    let mut collection_deleted = false;
    if target.delete_collection {
        match api.delete_collection(&dp, &ListParams::default()).await {
            Ok(_) => collection_deleted = true,
            // Served in discovery but not really: fall back to one by one, as Kubernetes does.
            Err(e) if matches!(api_code(&e), Some(404 | 405)) => {}
            Err(e) => return fail(api_message(&e)),
        }
    }
    if !collection_deleted && target.list {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for obj in list.items {
                    let name = obj.metadata.name.unwrap_or_default();
                    match api.delete(&name, &dp).await {
                        Ok(_) => {}
                        Err(e) if matches!(api_code(&e), Some(404 | 405)) => {}
                        Err(e) => return fail(api_message(&e)),
                    }
                }
            }
            Err(e) if matches!(api_code(&e), Some(404 | 405)) => {}
            Err(e) => return fail(api_message(&e)),
        }
    }
    if !target.list {
        return (
            Left {
                estimate,
                ..Left::default()
            },
            None,
        );
    }
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let finalizers: Vec<Vec<String>> = list
                .items
                .into_iter()
                .map(|o| o.metadata.finalizers.unwrap_or_default())
                .collect();
            if !finalizers.is_empty() {
                tracing::debug!(namespace, resource = %gvr_string(r), left = finalizers.len(), "content remains");
            }
            judge_leftovers(namespace, r, &finalizers, estimate)
        }
        Err(e) if matches!(api_code(&e), Some(404 | 405)) => (
            Left {
                estimate,
                ..Left::default()
            },
            None,
        ),
        Err(e) => fail(api_message(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    fn res(name: &str, namespaced: bool, verbs: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            namespaced,
            kind: "Thing".into(),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..APIResource::default()
        }
    }

    const ALL: &[&str] = &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];

    #[test]
    fn only_namespaced_deletable_top_level_resources_are_targets() {
        let list = APIResourceList {
            group_version: "v1".into(),
            resources: vec![
                res("configmaps", true, ALL),
                res("pods/status", true, &["get", "patch", "update"]),
                res("namespaces", false, &["create", "delete", "get", "list"]),
                res("bindings", true, &["create"]),
                res("onlylist", true, &["delete", "list"]),
                res("nodelete", true, &["deletecollection", "list"]),
                res("blind", true, &["delete", "get"]),
            ],
        };
        let t = deletable(&list);
        let names: Vec<(&str, bool, bool)> = t
            .iter()
            .map(|t| (t.resource.plural.as_str(), t.delete_collection, t.list))
            .collect();
        assert_eq!(
            names,
            vec![("configmaps", true, true), ("onlylist", false, true)]
        );
        assert_eq!(t[0].resource.api_version, "v1");
        assert_eq!(t[0].resource.group, "");
    }

    #[test]
    fn group_resources_get_their_api_version() {
        let list = APIResourceList {
            group_version: "apps/v1".into(),
            resources: vec![res("deployments", true, ALL)],
        };
        let t = deletable(&list);
        assert_eq!(t[0].resource.api_version, "apps/v1");
        assert_eq!(resource_key(&t[0].resource), "deployments.apps");
        assert_eq!(gvr_string(&t[0].resource), "apps/v1, Resource=deployments");
    }

    fn cm() -> ApiResource {
        ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn leftovers_with_finalizers_wait_and_others_are_errors() {
        let (left, err) = judge_leftovers("ns", &cm(), &[], 0);
        assert_eq!((left, err), (Left::default(), None));
        let (left, err) =
            judge_leftovers("ns", &cm(), &[vec!["example.com/hold".into()], vec![]], 0);
        assert_eq!(err, None);
        assert_eq!(left.count, 2);
        assert_eq!(left.estimate, FINALIZER_ESTIMATE_SECS);
        assert_eq!(left.finalizers.get("example.com/hold"), Some(&1));
        let (_, err) = judge_leftovers("ns", &cm(), &[vec![]], 0);
        assert_eq!(
            err.as_deref(),
            Some(
                "unexpected items still remain in namespace: ns for gvr: /v1, Resource=configmaps"
            )
        );
        let (left, err) = judge_leftovers("ns", &cm(), &[vec![]], 30);
        assert_eq!((left.estimate, err), (30, None));
    }

    fn pod(grace: Option<i64>, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "terminationGracePeriodSeconds": grace},
            "status": {"phase": phase},
        }))
        .expect("pod")
    }

    #[test]
    fn pod_estimate_is_the_longest_grace_period_until_it_has_passed() {
        let pods = [
            pod(Some(30), "Running"),
            pod(Some(90), "Succeeded"),
            pod(None, "Pending"),
        ];
        assert_eq!(pod_estimate(&pods, Duration::from_secs(5)), 30);
        assert_eq!(pod_estimate(&pods, Duration::from_secs(30)), 0);
        assert_eq!(pod_estimate(&[], Duration::ZERO), 0);
    }

    #[test]
    fn discovery_message_names_each_failed_group() {
        let mut failed = BTreeMap::new();
        failed.insert(
            "metrics.k8s.io/v1beta1".to_string(),
            "the server is currently unable to handle the request".to_string(),
        );
        failed.insert("apps/v1".to_string(), "timeout".to_string());
        assert_eq!(
            discovery_message(&failed),
            "Discovery failed for some groups, 2 failing: unable to retrieve the complete list of server APIs: apps/v1: timeout, metrics.k8s.io/v1beta1: the server is currently unable to handle the request"
        );
    }

    #[test]
    fn report_is_done_only_when_empty_and_clean() {
        let mut r = Report::default();
        assert!(r.done());
        r.add("configmaps.".into(), Left::default());
        assert!(r.done(), "a resource with nothing left does not count");
        r.add(
            "configmaps.".into(),
            Left {
                count: 1,
                finalizers: BTreeMap::from([("a/b".to_string(), 1)]),
                estimate: 15,
            },
        );
        assert!(!r.done());
        assert_eq!(r.remaining.get("configmaps."), Some(&1));
        assert_eq!(r.estimate_secs, 15);
    }
}
