//! NodeRestriction admission: the Node authorizer lets every kubelet write Node objects, pod
//! status, mirror pods, evictions and Leases; this plugin narrows those writes to the
//! kubelet's own node and the pods bound to it, and keeps a kubelet from labelling itself
//! into privileged workloads. Checks and messages are Kubernetes'
//! (`plugin/pkg/admission/noderestriction`).
//!
//! Kubernetes runs it as a mutating plugin (before PodSecurity); kadm calls it at the
//! start of the validating phase, the one every write (deletes and TokenRequests
//! included) passes, before PodSecurity. It only refuses, so the phase changes nothing
//! it decides. Lookups (the pod an eviction or token names,
//! the node a mirror pod's owner reference names) read the watch cache, as Kubernetes'
//! plugin reads its informers.

use kadm_apimachinery::{ApiError, meta, registry};
use serde_json::Value;

use super::{Operation, Request};
use crate::authz::graph::{MIRROR_POD_ANNOTATION, names_secrets_or_config_maps};
use crate::authz::node::{NODE_LEASE_NAMESPACE, node_identity};
use crate::cache::WatchCache;

pub const NAME: &str = "NodeRestriction";

/// Reads the plugin needs (Kubernetes' pod and node listers).
pub trait Lookup {
    fn node(&self, name: &str) -> Option<Value>;
    fn pod(&self, namespace: &str, name: &str) -> Option<Value>;
}

fn cached(cache: &WatchCache, plural: &str, namespace: &str, name: &str) -> Option<Value> {
    let res = registry::lookup("", "v1", plural)?;
    cache
        .cacher(res)?
        .get(&res.etcd_key(namespace, name))
        .map(|e| e.value())
}

impl Lookup for WatchCache {
    fn node(&self, name: &str) -> Option<Value> {
        cached(self, "nodes", "", name)
    }
    fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        cached(self, "pods", namespace, name)
    }
}

/// Kubernetes' `admission.NewForbidden`: the request's resource and name (else the object's
/// name or generateName, else `Unknown`).
fn forbidden(req: &Request<'_>, obj: Option<&Value>, detail: impl AsRef<str>) -> ApiError {
    let name = if !req.name.is_empty() {
        req.name.to_string()
    } else {
        obj.map(|o| {
            let n = meta::name(o);
            if n.is_empty() {
                meta::generate_name(o)
            } else {
                n
            }
            .to_string()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Unknown".into())
    };
    ApiError::forbidden(req.res.group, req.res.plural, &name, detail.as_ref())
}

/// What the listers answer for a missing object (`pod "x" not found`: listers name the
/// singular resource).
fn lister_not_found(kind: &str, name: &str) -> ApiError {
    ApiError::not_found("", kind, name)
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Admits (or refuses) one write. `obj` is the new object (`None` for deletes).
pub fn admit(lookup: &impl Lookup, req: &Request<'_>, obj: Option<&Value>) -> Result<(), ApiError> {
    let Some(node) = node_identity(req.user) else {
        return Ok(());
    };
    if node.is_empty() {
        return Err(forbidden(
            req,
            obj,
            format!("could not determine node from user {:?}", req.user.name),
        ));
    }
    match (req.res.group, req.res.plural) {
        ("", "pods") => match req.subresource {
            "" => admit_pod(lookup, node, req, obj),
            "status" => admit_pod_status(node, req, obj),
            "eviction" => admit_eviction(lookup, node, req, obj),
            other => Err(forbidden(
                req,
                obj,
                format!(
                    "unexpected pod subresource {other:?}, only 'status' and 'eviction' are allowed"
                ),
            )),
        },
        ("", "nodes") => admit_node(node, req, obj),
        ("", "persistentvolumeclaims") => match req.subresource {
            "status" => admit_pvc_status(node, req, obj),
            _ => Err(forbidden(req, obj, "may only update PVC status")),
        },
        ("", "serviceaccounts") => admit_service_account(lookup, node, req, obj),
        ("coordination.k8s.io", "leases") => admit_named_like_node(
            node,
            req,
            obj,
            Some(NODE_LEASE_NAMESPACE),
            "can only access node lease with the same name as the requesting node",
        ),
        ("storage.k8s.io", "csinodes") => admit_named_like_node(
            node,
            req,
            obj,
            None,
            "can only access CSINode with the same name as the requesting node",
        ),
        _ => Ok(()),
    }
}

fn admit_pod(
    lookup: &impl Lookup,
    node: &str,
    req: &Request<'_>,
    obj: Option<&Value>,
) -> Result<(), ApiError> {
    match req.operation {
        Operation::Create => admit_mirror_pod(lookup, node, req, obj),
        Operation::Delete => {
            let existing = req.old.ok_or_else(|| lister_not_found("pod", req.name))?;
            if s(existing, "/spec/nodeName") != node {
                return Err(forbidden(
                    req,
                    obj,
                    format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        Operation::Update => Err(forbidden(
            req,
            obj,
            format!(
                "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
                req.operation.as_str()
            ),
        )),
    }
}

fn admit_mirror_pod(
    lookup: &impl Lookup,
    node: &str,
    req: &Request<'_>,
    obj: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(pod) = obj else {
        return Err(forbidden(req, obj, "unexpected type <nil>"));
    };
    let f = |m: String| Err(forbidden(req, obj, m));
    let mirror = meta::metadata(pod)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
    if !mirror {
        return f(format!(
            "pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
        ));
    }
    if s(pod, "/spec/nodeName") != node {
        return f(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    match owners {
        [] => {
            return f(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ));
        }
        [owner] => {
            if s(owner, "/apiVersion") != "v1"
                || s(owner, "/kind") != "Node"
                || s(owner, "/name") != node
            {
                return f(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                ));
            }
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return f(format!(
                    "node {node:?} can only create pods with a controller owner reference set to itself"
                ));
            }
            if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                return f(format!(
                    "node {node:?} must not set blockOwnerDeletion on an owner reference"
                ));
            }
            let node_obj = lookup
                .node(node)
                .ok_or_else(|| lister_not_found("node", node))?;
            let uid = s(owner, "/uid");
            if uid != meta::uid(&node_obj) {
                return f(format!(
                    "node {node} UID mismatch: expected {uid} got {}",
                    meta::uid(&node_obj)
                ));
            }
        }
        _ => {
            return f(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ));
        }
    }
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    if !s(spec, "/serviceAccountName").is_empty() {
        return f(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    let (secrets, config_maps) = names_secrets_or_config_maps(spec);
    if secrets {
        return f(format!(
            "node {node:?} can not create pods that reference secrets"
        ));
    }
    if config_maps {
        return f(format!(
            "node {node:?} can not create pods that reference configmaps"
        ));
    }
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let trust_bundle = volumes.iter().any(|v| {
        v.pointer("/projected/sources")
            .and_then(Value::as_array)
            .is_some_and(|srcs| srcs.iter().any(|s| s.get("clusterTrustBundle").is_some()))
    });
    if trust_bundle {
        return f(format!(
            "node {node:?} can not create pods that reference clustertrustbundles"
        ));
    }
    if volumes
        .iter()
        .any(|v| v.get("persistentVolumeClaim").is_some())
    {
        return f(format!(
            "node {node:?} can not create pods that reference persistentvolumeclaims"
        ));
    }
    Ok(())
}

fn admit_pod_status(node: &str, req: &Request<'_>, obj: Option<&Value>) -> Result<(), ApiError> {
    if req.operation != Operation::Update {
        return Err(forbidden(
            req,
            obj,
            format!("unexpected operation {:?}", req.operation.as_str()),
        ));
    }
    let (Some(old), Some(new)) = (req.old, obj) else {
        return Err(forbidden(req, obj, "unexpected type <nil>"));
    };
    if s(old, "/spec/nodeName") != node {
        return Err(forbidden(
            req,
            obj,
            format!(
                "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
            ),
        ));
    }
    let labels = |p: &Value| meta::labels(p).cloned().unwrap_or_default();
    if labels(old) != labels(new) {
        return Err(forbidden(
            req,
            obj,
            format!("node {node:?} cannot update labels through pod status"),
        ));
    }
    let claims = |p: &Value| {
        p.pointer("/status/resourceClaimStatuses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            s(c, "/name").to_string(),
                            c.get("resourceClaimName").cloned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    if claims(old) != claims(new) {
        // Kubernetes' message, spelling included.
        return Err(forbidden(
            req,
            obj,
            format!("node {node:?} cannot update resource claim statues"),
        ));
    }
    Ok(())
}

fn admit_eviction(
    lookup: &impl Lookup,
    node: &str,
    req: &Request<'_>,
    obj: Option<&Value>,
) -> Result<(), ApiError> {
    if req.operation != Operation::Create {
        return Err(forbidden(
            req,
            obj,
            format!("unexpected operation {}", req.operation.as_str()),
        ));
    }
    let pod_name = if !req.name.is_empty() {
        req.name
    } else {
        obj.map(meta::name).unwrap_or("")
    };
    if pod_name.is_empty() {
        return Err(forbidden(
            req,
            obj,
            "could not determine pod from request data",
        ));
    }
    let pod = lookup
        .pod(req.namespace, pod_name)
        .ok_or_else(|| lister_not_found("pod", pod_name))?;
    if s(&pod, "/spec/nodeName") != node {
        return Err(forbidden(
            req,
            obj,
            format!("node {node} can only evict pods with spec.nodeName set to itself"),
        ));
    }
    Ok(())
}

/// A node may change only the status stanza's capacity and conditions (and, with volume
/// expansion recovery, the allocated resources) of its pods' claims.
fn admit_pvc_status(node: &str, req: &Request<'_>, obj: Option<&Value>) -> Result<(), ApiError> {
    if req.operation != Operation::Update {
        return Err(forbidden(
            req,
            obj,
            format!("unexpected operation {:?}", req.operation.as_str()),
        ));
    }
    let (Some(old), Some(new)) = (req.old, obj) else {
        return Err(forbidden(req, obj, "unexpected type <nil>"));
    };
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta::remove(&mut v, "resourceVersion");
        meta::remove(&mut v, "managedFields");
        if let Some(st) = v.get_mut("status").and_then(Value::as_object_mut) {
            for k in [
                "capacity",
                "conditions",
                "allocatedResourceStatuses",
                "allocatedResources",
            ] {
                st.remove(k);
            }
        }
        v
    };
    let (a, b) = (strip(old), strip(new));
    if a != b {
        let mut changed: Vec<String> = Vec::new();
        diff_paths("", &a, &b, &mut changed);
        return Err(forbidden(
            req,
            obj,
            format!(
                "node {node:?} is not allowed to update fields other than status.capacity and status.conditions: changed {}",
                changed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The JSON paths at which two values differ (Kubernetes prints a `cmp.Diff` here).
fn diff_paths(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_paths(&p, va, vb, out),
                    _ => out.push(p),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Label keys whose values differ between two label maps (Kubernetes' `getModifiedLabels`).
fn modified_labels(new: Option<&Value>, old: Option<&Value>) -> Vec<String> {
    let map = |v: Option<&Value>| v.and_then(|v| meta::labels(v)).cloned().unwrap_or_default();
    let (a, b) = (map(new), map(old));
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .chain(b.iter().filter(|(k, v)| a.get(*k) != Some(v)))
        .map(|(k, _)| k.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or("")
}

fn in_domain(ns: &str, domain: &str) -> bool {
    ns == domain || ns.strip_suffix(domain).is_some_and(|p| p.ends_with('.'))
}

/// Labels kubelets may set on their own Node (Kubernetes' `kubeletapis.IsKubeletLabel`).
fn is_kubelet_label(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    let ns = label_namespace(key);
    KUBELET_LABELS.contains(&key)
        || in_domain(ns, "kubelet.kubernetes.io")
        || in_domain(ns, "node.kubernetes.io")
}

/// Labels a node may not add, remove or change: `node-restriction.kubernetes.io/`, and
/// `kubernetes.io`/`k8s.io` ones beyond the kubelet's own.
fn forbidden_labels(modified: Vec<String>) -> Vec<String> {
    modified
        .into_iter()
        .filter(|k| {
            let ns = label_namespace(k);
            let restricted = in_domain(ns, "node-restriction.kubernetes.io");
            let kubernetes = in_domain(ns, "kubernetes.io") || in_domain(ns, "k8s.io");
            restricted || (kubernetes && !is_kubelet_label(k))
        })
        .collect()
}

fn admit_node(node: &str, req: &Request<'_>, obj: Option<&Value>) -> Result<(), ApiError> {
    if req.name != node {
        return Err(forbidden(
            req,
            obj,
            format!("node {node:?} is not allowed to modify node {:?}", req.name),
        ));
    }
    match req.operation {
        Operation::Create => {
            let Some(new) = obj else { return Ok(()) };
            if new
                .pointer("/spec/configSource")
                .is_some_and(|c| !c.is_null())
            {
                // Kubernetes' message, "pods" included.
                return Err(forbidden(
                    req,
                    obj,
                    format!(
                        "node {node:?} is not allowed to create pods with a non-nil configSource"
                    ),
                ));
            }
            let bad = forbidden_labels(modified_labels(Some(new), None));
            if !bad.is_empty() {
                return Err(forbidden(
                    req,
                    obj,
                    format!(
                        "node {node:?} is not allowed to set the following labels: {}",
                        bad.join(", ")
                    ),
                ));
            }
        }
        Operation::Update => {
            let (Some(new), Some(old)) = (obj, req.old) else {
                return Ok(());
            };
            fn config(v: &Value) -> Option<&Value> {
                v.pointer("/spec/configSource").filter(|c| !c.is_null())
            }
            if config(new).is_some() && config(new) != config(old) {
                return Err(forbidden(
                    req,
                    obj,
                    format!(
                        "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                    ),
                ));
            }
            // Empty and absent taints are the same (Kubernetes' semantic equality).
            fn taints(v: &Value) -> &[Value] {
                v.pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .map_or(&[], Vec::as_slice)
            }
            if taints(new) != taints(old) {
                return Err(forbidden(
                    req,
                    obj,
                    format!("node {node:?} is not allowed to modify taints"),
                ));
            }
            let bad = forbidden_labels(modified_labels(Some(new), Some(old)));
            if !bad.is_empty() {
                return Err(forbidden(
                    req,
                    obj,
                    format!("is not allowed to modify labels: {}", bad.join(", ")),
                ));
            }
        }
        Operation::Delete => {}
    }
    Ok(())
}

/// `serviceaccounts/token` requested by a node must be bound to a pod on that node.
fn admit_service_account(
    lookup: &impl Lookup,
    node: &str,
    req: &Request<'_>,
    obj: Option<&Value>,
) -> Result<(), ApiError> {
    if req.operation != Operation::Create || req.subresource != "token" {
        return Ok(());
    }
    let Some(tr) = obj else {
        return Err(forbidden(req, obj, "unexpected type <nil>"));
    };
    let r = tr.pointer("/spec/boundObjectRef").unwrap_or(&Value::Null);
    if r.is_null()
        || s(r, "/apiVersion") != "v1"
        || s(r, "/kind") != "Pod"
        || s(r, "/name").is_empty()
    {
        return Err(forbidden(
            req,
            obj,
            "node requested token not bound to a pod",
        ));
    }
    let uid = s(r, "/uid");
    if uid.is_empty() {
        return Err(forbidden(
            req,
            obj,
            "node requested token with a pod binding without a uid",
        ));
    }
    let pod_name = s(r, "/name");
    let pod = lookup
        .pod(req.namespace, pod_name)
        .ok_or_else(|| lister_not_found("pod", pod_name))?;
    if uid != meta::uid(&pod) {
        return Err(forbidden(
            req,
            obj,
            format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    if s(&pod, "/spec/nodeName") != node {
        return Err(forbidden(
            req,
            obj,
            "node requested token bound to a pod scheduled on a different node",
        ));
    }
    Ok(())
}

/// Leases (in `kube-node-lease`) and CSINodes: only the one named after the node. A create
/// is checked against the object's name, which the authorizer could not see.
fn admit_named_like_node(
    node: &str,
    req: &Request<'_>,
    obj: Option<&Value>,
    namespace: Option<&str>,
    message: &str,
) -> Result<(), ApiError> {
    if let Some(ns) = namespace
        && req.namespace != ns
    {
        return Err(forbidden(
            req,
            obj,
            format!("can only access leases in the {ns:?} system namespace"),
        ));
    }
    let name = if req.operation == Operation::Create {
        obj.map(meta::name).unwrap_or("")
    } else {
        req.name
    };
    if name != node {
        return Err(forbidden(req, obj, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::tls::UserInfo;

    #[derive(Default)]
    struct Fake {
        nodes: HashMap<String, Value>,
        pods: HashMap<(String, String), Value>,
    }

    impl Lookup for Fake {
        fn node(&self, name: &str) -> Option<Value> {
            self.nodes.get(name).cloned()
        }
        fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
            self.pods
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        }
    }

    fn n1() -> UserInfo {
        UserInfo {
            name: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            ..Default::default()
        }
    }

    /// The request: resource, subresource, operation, namespace, name.
    type Call<'a> = (&'a str, &'a str, Operation, &'a str, &'a str);

    fn run(
        fake: &Fake,
        user: &UserInfo,
        (plural, sub, op, ns, name): Call<'_>,
        old: Option<&Value>,
        obj: Option<&Value>,
    ) -> Result<(), ApiError> {
        let (group, version) = if plural == "leases" {
            ("coordination.k8s.io", "v1")
        } else {
            ("", "v1")
        };
        let req = Request {
            res: registry::lookup(group, version, plural).expect("registered"),
            subresource: sub,
            operation: op,
            namespace: ns,
            name,
            user,
            old,
            dry_run: false,
        };
        admit(fake, &req, obj)
    }

    fn message(r: Result<(), ApiError>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(e.code, 403, "{}", e.message);
        e.message
    }

    fn node(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels}, "spec": {}})
    }

    #[test]
    fn a_node_modifies_only_its_own_node_object() {
        let f = Fake::default();
        let old = node("n2", json!({}));
        let m = message(run(
            &f,
            &n1(),
            ("nodes", "", Operation::Update, "", "n2"),
            Some(&old),
            Some(&old),
        ));
        assert_eq!(
            m,
            r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#
        );
        let m = message(run(
            &f,
            &n1(),
            ("nodes", "status", Operation::Update, "", "n2"),
            Some(&old),
            Some(&old),
        ));
        assert!(m.ends_with(r#"node "n1" is not allowed to modify node "n2""#));
        let own = node("n1", json!({}));
        assert!(
            run(
                &f,
                &n1(),
                ("nodes", "", Operation::Update, "", "n1"),
                Some(&own),
                Some(&own)
            )
            .is_ok()
        );
        let jane = UserInfo {
            name: "jane".into(),
            groups: vec![],
            ..Default::default()
        };
        assert!(
            run(
                &f,
                &jane,
                ("nodes", "", Operation::Update, "", "n2"),
                Some(&old),
                Some(&old)
            )
            .is_ok()
        );
    }

    #[test]
    fn node_labels_are_restricted_on_create_and_update() {
        let f = Fake::default();
        let ok = node(
            "n1",
            json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/exclude-from-external-load-balancers": "",
                   "example.com/team": "a", "topology.kubernetes.io/zone": "z"}),
        );
        assert!(
            run(
                &f,
                &n1(),
                ("nodes", "", Operation::Create, "", "n1"),
                None,
                Some(&ok)
            )
            .is_ok()
        );
        let bad = node(
            "n1",
            json!({"node-restriction.kubernetes.io/pool": "gpu", "node-role.kubernetes.io/control-plane": "",
                   "foo.k8s.io/x": "1"}),
        );
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("nodes", "", Operation::Create, "", "n1"),
                None,
                Some(&bad)
            )),
            r#"nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: foo.k8s.io/x, node-restriction.kubernetes.io/pool, node-role.kubernetes.io/control-plane"#
        );
        // Labels already there may stay; changing them is refused.
        let old = node("n1", json!({"node-restriction.kubernetes.io/pool": "gpu"}));
        assert!(
            run(
                &f,
                &n1(),
                ("nodes", "", Operation::Update, "", "n1"),
                Some(&old),
                Some(&old)
            )
            .is_ok()
        );
        let new = node("n1", json!({"node-restriction.kubernetes.io/pool": "cpu"}));
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("nodes", "", Operation::Update, "", "n1"),
                Some(&old),
                Some(&new)
            )),
            r#"nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pool"#
        );
        let mut tainted = node("n1", json!({}));
        tainted["spec"]["taints"] = json!([{"key": "k", "effect": "NoSchedule"}]);
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("nodes", "", Operation::Update, "", "n1"),
                Some(&tainted),
                Some(&node("n1", json!({})))
            )),
            r#"nodes "n1" is forbidden: node "n1" is not allowed to modify taints"#
        );
    }

    fn pod(name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"a": "b"}},
               "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}})
    }

    #[test]
    fn pod_status_and_deletes_only_for_pods_bound_to_the_node() {
        let f = Fake::default();
        let theirs = pod("p2", "n2");
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("pods", "status", Operation::Update, "ns", "p2"),
                Some(&theirs),
                Some(&theirs)
            )),
            r#"pods "p2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        );
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("pods", "", Operation::Delete, "ns", "p2"),
                Some(&theirs),
                None
            )),
            r#"pods "p2" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#
        );
        let mine = pod("p1", "n1");
        assert!(
            run(
                &f,
                &n1(),
                ("pods", "status", Operation::Update, "ns", "p1"),
                Some(&mine),
                Some(&mine)
            )
            .is_ok()
        );
        assert!(
            run(
                &f,
                &n1(),
                ("pods", "", Operation::Delete, "ns", "p1"),
                Some(&mine),
                None
            )
            .is_ok()
        );
        let mut relabelled = mine.clone();
        relabelled["metadata"]["labels"]["a"] = json!("c");
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("pods", "status", Operation::Update, "ns", "p1"),
                Some(&mine),
                Some(&relabelled)
            )),
            r#"pods "p1" is forbidden: node "n1" cannot update labels through pod status"#
        );
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("pods", "", Operation::Update, "ns", "p1"),
                Some(&mine),
                Some(&mine)
            )),
            r#"pods "p1" is forbidden: unexpected operation "UPDATE", node "n1" can only create and delete mirror pods"#
        );
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("pods", "binding", Operation::Create, "ns", "p1"),
                None,
                Some(&mine)
            )),
            r#"pods "p1" is forbidden: unexpected pod subresource "binding", only 'status' and 'eviction' are allowed"#
        );
    }

    fn mirror(owner_uid: &str) -> Value {
        let mut p = pod("m", "n1");
        p["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "h"});
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Node", "name": "n1",
                                                   "uid": owner_uid, "controller": true}]);
        p
    }

    #[test]
    fn only_mirror_pods_bound_to_the_node_without_references() {
        let mut f = Fake::default();
        f.nodes.insert("n1".into(), node("n1", json!({})));
        let create = |p: &Value| {
            run(
                &f,
                &n1(),
                ("pods", "", Operation::Create, "ns", meta::name(p)),
                None,
                Some(p),
            )
        };
        assert!(create(&mirror("uid-n1")).is_ok());
        assert_eq!(
            message(create(&pod("m", "n1"))),
            r#"pods "m" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods"#
        );
        let mut elsewhere = mirror("uid-n1");
        elsewhere["spec"]["nodeName"] = json!("n2");
        assert!(
            message(create(&elsewhere))
                .ends_with(r#"node "n1" can only create pods with spec.nodeName set to itself"#)
        );
        assert!(
            message(create(&mirror("other")))
                .ends_with("node n1 UID mismatch: expected other got uid-n1")
        );
        let mut secret = mirror("uid-n1");
        secret["spec"]["volumes"] = json!([{"name": "v", "secret": {"secretName": "s"}}]);
        assert!(
            message(create(&secret))
                .ends_with(r#"node "n1" can not create pods that reference secrets"#)
        );
        let mut cm = mirror("uid-n1");
        cm["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "c"}}]);
        assert!(
            message(create(&cm))
                .ends_with(r#"node "n1" can not create pods that reference configmaps"#)
        );
        let mut sa = mirror("uid-n1");
        sa["spec"]["serviceAccountName"] = json!("default");
        assert!(
            message(create(&sa))
                .ends_with(r#"node "n1" can not create pods that reference a service account"#)
        );
        let mut pvc = mirror("uid-n1");
        pvc["spec"]["volumes"] =
            json!([{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]);
        assert!(
            message(create(&pvc)).ends_with(
                r#"node "n1" can not create pods that reference persistentvolumeclaims"#
            )
        );
    }

    #[test]
    fn leases_evictions_and_tokens_are_limited_to_the_node() {
        let mut f = Fake::default();
        f.pods.insert(("ns".into(), "p1".into()), pod("p1", "n1"));
        f.pods.insert(("ns".into(), "p2".into()), pod("p2", "n2"));
        let lease =
            |name: &str| json!({"metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE}});
        assert!(
            run(
                &f,
                &n1(),
                ("leases", "", Operation::Create, NODE_LEASE_NAMESPACE, "n1"),
                None,
                Some(&lease("n1"))
            )
            .is_ok()
        );
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("leases", "", Operation::Create, NODE_LEASE_NAMESPACE, "n2"),
                None,
                Some(&lease("n2"))
            )),
            r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
        );
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("leases", "", Operation::Update, NODE_LEASE_NAMESPACE, "n2"),
                Some(&lease("n2")),
                Some(&lease("n2"))
            )),
            r#"leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node"#
        );
        assert!(
            message(run(
                &f,
                &n1(),
                ("leases", "", Operation::Update, "default", "n1"),
                None,
                Some(&lease("n1"))
            ))
            .ends_with(r#"can only access leases in the "kube-node-lease" system namespace"#)
        );

        let eviction = json!({"metadata": {"name": "p2", "namespace": "ns"}});
        assert_eq!(
            message(run(
                &f,
                &n1(),
                ("pods", "eviction", Operation::Create, "ns", "p2"),
                None,
                Some(&eviction)
            )),
            r#"pods "p2" is forbidden: node n1 can only evict pods with spec.nodeName set to itself"#
        );
        assert!(
            run(
                &f,
                &n1(),
                ("pods", "eviction", Operation::Create, "ns", "p1"),
                None,
                Some(&eviction)
            )
            .is_ok()
        );
        let missing = run(
            &f,
            &n1(),
            ("pods", "eviction", Operation::Create, "ns", "gone"),
            None,
            Some(&eviction),
        );
        assert_eq!(missing.unwrap_err().message, r#"pod "gone" not found"#);

        let token = |pod: &str, uid: &str| json!({"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}}});
        let tok = |t: &Value| {
            run(
                &f,
                &n1(),
                ("serviceaccounts", "token", Operation::Create, "ns", "sa"),
                None,
                Some(t),
            )
        };
        assert!(tok(&token("p1", "uid-p1")).is_ok());
        assert!(
            message(tok(&token("p2", "uid-p2")))
                .ends_with("node requested token bound to a pod scheduled on a different node")
        );
        assert!(
            message(tok(&json!({"spec": {}}))).ends_with("node requested token not bound to a pod")
        );
        assert!(
            message(tok(&token("p1", "")))
                .ends_with("node requested token with a pod binding without a uid")
        );
        assert!(
            message(tok(&token("p1", "stale")))
                .contains("the UID in the bound object reference (stale) does not match")
        );
    }
}
