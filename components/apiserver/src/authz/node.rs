//! The Node authorizer (`--authorization-mode=Node`): a kubelet, user `system:node:<name>`
//! in group `system:nodes`, may read the secrets, config maps, claims, volumes and service
//! accounts of the pods bound to it and nothing else of those kinds; its other requests are
//! checked against the `system:node` ClusterRole's rules, which Kubernetes binds to no one.
//! Writes the rules allow broadly (its Node, its pods' status, mirror pods, its Lease) are
//! narrowed to its own objects by NodeRestriction admission.
//!
//! Decisions follow Kubernetes' `NodeAuthorizer` with `AuthorizeNodeWithSelectors` on (the
//! default since 1.32): nodes read only their own Node object, list and watch pods only
//! with `fieldSelector=spec.nodeName=<self>`. A denial is "no opinion" with a reason, so a
//! later mode (RBAC) may still allow.

use std::sync::Arc;

use super::graph::{NodeGraph, Start, Vertex};
use super::rules::{self, Rule};
use super::{Attributes, Decision};
use crate::cache::WatchCache;
use crate::tls::UserInfo;

/// Kubernetes' `user.NodesGroup`.
pub const NODES_GROUP: &str = "system:nodes";
/// Kubelet user names are `system:node:<node name>`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Where kubelets keep their heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The node a user is (Kubernetes' default `NodeIdentifier`): `Some(name)` for a
/// `system:node:<name>` user in `system:nodes` (`name` may be empty), `None` otherwise.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.groups.iter().any(|g| g == NODES_GROUP).then_some(name)
}

/// One decision, and whether it depended on the graph (so a graph that has not yet applied
/// the latest changes might decide otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: String,
    pub from_graph: bool,
}

fn allow() -> Verdict {
    Verdict {
        decision: Decision::Allow,
        reason: String::new(),
        from_graph: false,
    }
}

fn no_opinion(reason: impl Into<String>) -> Verdict {
    Verdict {
        decision: Decision::NoOpinion,
        reason: reason.into(),
        from_graph: false,
    }
}

pub struct NodeAuthorizer {
    pub graph: Arc<NodeGraph>,
    /// The `system:node` ClusterRole's rules, for everything not subdivided.
    rules: Vec<Rule>,
}

/// The rules of the built-in `system:node` ClusterRole (Kubernetes' `NodeRules()`).
fn node_rules() -> Vec<Rule> {
    match super::policy::defaults() {
        Ok((roles, _)) => roles
            .iter()
            .find(|r| kadm_apimachinery::meta::name(r) == "system:node")
            .map(Rule::list_from)
            .unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "node authorizer has no system:node rules");
            Vec::new()
        }
    }
}

impl NodeAuthorizer {
    /// The authorizer with its graph, following the cache when a runtime is running.
    pub fn new(cache: Arc<WatchCache>) -> NodeAuthorizer {
        let graph = NodeGraph::new(cache);
        if tokio::runtime::Handle::try_current().is_ok() {
            graph.start();
        }
        NodeAuthorizer {
            graph,
            rules: node_rules(),
        }
    }

    pub fn authorize(&self, a: &Attributes) -> Verdict {
        let Some(node) = node_identity(&a.user) else {
            return no_opinion("");
        };
        if node.is_empty() {
            return no_opinion(format!("unknown node for user {:?}", a.user.name));
        }
        if a.resource_request {
            match (a.api_group.as_str(), a.resource.as_str()) {
                ("", "secrets") => return self.read_namespaced(node, Vertex::Secret, a),
                ("", "configmaps") => return self.read_namespaced(node, Vertex::ConfigMap, a),
                ("", "persistentvolumeclaims") => {
                    return if a.subresource == "status" {
                        self.status_update(node, Start::Ref(Vertex::Pvc), a)
                    } else {
                        self.get(node, Start::Ref(Vertex::Pvc), a)
                    };
                }
                ("", "persistentvolumes") => return self.get(node, Start::Pv, a),
                ("resource.k8s.io", "resourceclaims") => {
                    return self.get(node, Start::Ref(Vertex::ResourceClaim), a);
                }
                ("storage.k8s.io", "volumeattachments") => {
                    return self.get(node, Start::VolumeAttachment, a);
                }
                ("", "serviceaccounts") => return self.create_token(node, a),
                ("coordination.k8s.io", "leases") => return lease(node, a),
                ("storage.k8s.io", "csinodes") => return csi_node(node, a),
                ("resource.k8s.io", "resourceslices") => return self.resource_slice(node, a),
                ("", "nodes") => return node_object(node, a),
                ("", "pods") => return self.pod(node, a),
                _ => {}
            }
        }
        // Access to other resources is not subdivided: the static node rules decide.
        if self.rules.iter().any(|r| rules::allows(a, r)) {
            allow()
        } else {
            no_opinion("")
        }
    }

    /// Whether a path leads from the named object to `node`.
    fn related(&self, node: &str, start: Start, a: &Attributes) -> Verdict {
        if a.name.is_empty() {
            return no_opinion("No Object name found");
        }
        if self
            .graph
            .read()
            .has_path(start, &a.namespace, &a.name, node)
        {
            return allow();
        }
        Verdict {
            decision: Decision::NoOpinion,
            reason: format!("no relationship found between node '{node}' and this object"),
            from_graph: true,
        }
    }

    fn status_update(&self, node: &str, start: Start, a: &Attributes) -> Verdict {
        if !matches!(a.verb.as_str(), "update" | "patch") {
            return no_opinion("can only get/update/patch this type");
        }
        if a.subresource != "status" {
            return no_opinion("can only update status subresource");
        }
        self.related(node, start, a)
    }

    fn get(&self, node: &str, start: Start, a: &Attributes) -> Verdict {
        if a.verb != "get" {
            return no_opinion("can only get individual resources of this type");
        }
        if !a.subresource.is_empty() {
            return no_opinion("cannot get subresource");
        }
        self.related(node, start, a)
    }

    /// get, list and watch of single objects (a list or watch names one object with
    /// `fieldSelector=metadata.name=<n>`, as kubelets' reflectors do).
    fn read_namespaced(&self, node: &str, vertex: Vertex, a: &Attributes) -> Verdict {
        if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
            return no_opinion("can only read resources of this type");
        }
        if !a.subresource.is_empty() {
            return no_opinion("cannot read subresource");
        }
        if a.namespace.is_empty() {
            return no_opinion("can only read namespaced object of this type");
        }
        self.related(node, Start::Ref(vertex), a)
    }

    /// `serviceaccounts/token` for the service accounts of the node's pods.
    fn create_token(&self, node: &str, a: &Attributes) -> Verdict {
        if a.verb != "create" || a.name.is_empty() {
            return no_opinion("can only create tokens for individual service accounts");
        }
        if a.subresource != "token" {
            return no_opinion("can only create token subresource of serviceaccount");
        }
        self.related(node, Start::Ref(Vertex::ServiceAccount), a)
    }

    fn resource_slice(&self, node: &str, a: &Attributes) -> Verdict {
        if !a.subresource.is_empty() {
            return no_opinion("cannot authorize ResourceSlice subresources");
        }
        match a.verb.as_str() {
            // NodeRestriction checks the new slice's nodeName.
            "create" => allow(),
            "get" | "update" | "patch" | "delete" => self.related(node, Start::ResourceSlice, a),
            "watch" | "list" | "deletecollection" => {
                if super::field_equals(&a.field_selector, "spec.nodeName") == Some(node) {
                    allow()
                } else {
                    no_opinion(
                        "can only list/watch/deletecollection resourceslices with nodeName field selector",
                    )
                }
            }
            _ => no_opinion(
                "only the following verbs are allowed for a ResourceSlice: get, watch, list, create, update, patch, delete, deletecollection",
            ),
        }
    }

    fn pod(&self, node: &str, a: &Attributes) -> Verdict {
        match (a.subresource.as_str(), a.verb.as_str()) {
            ("", "get") => self.get(node, Start::Pod, a),
            ("", "list" | "watch") => {
                if super::field_equals(&a.field_selector, "spec.nodeName") == Some(node) {
                    return allow();
                }
                if !a.name.is_empty() {
                    return self.related(node, Start::Pod, a);
                }
                no_opinion("can only list/watch pods with spec.nodeName field selector")
            }
            // Mirror pods; NodeRestriction limits them to ones bound to the node.
            ("", "create" | "delete") => allow(),
            // NodeRestriction limits these to pods bound to the node.
            ("status", "update" | "patch") => allow(),
            ("eviction", "create") => allow(),
            _ => no_opinion(""),
        }
    }
}

/// `coordination.k8s.io/leases`: the node's own Lease in `kube-node-lease` (the name of a
/// create is checked by NodeRestriction, which sees the object).
fn lease(node: &str, a: &Attributes) -> Verdict {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if a.namespace != NODE_LEASE_NAMESPACE {
        return no_opinion(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    allow()
}

fn csi_node(node: &str, a: &Attributes) -> Verdict {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a CSINode");
    }
    if !a.subresource.is_empty() {
        return no_opinion("cannot authorize CSINode subresources");
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access CSINode with the same name as the requesting node");
    }
    allow()
}

/// Node objects: a node reads only its own (by name, so it can look before registering);
/// create, update and patch are left to NodeRestriction.
fn node_object(node: &str, a: &Attributes) -> Verdict {
    match (a.subresource.as_str(), a.verb.as_str()) {
        ("", "create" | "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") => {
            if a.name == node {
                allow()
            } else if a.name.is_empty() {
                no_opinion(format!(
                    "node '{node}' cannot read all nodes, only its own Node object"
                ))
            } else {
                no_opinion(format!(
                    "node '{node}' cannot read '{}', only its own Node object",
                    a.name
                ))
            }
        }
        ("status", "update" | "patch") => allow(),
        _ => no_opinion(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::graph::{Graph, pod_refs};
    use serde_json::json;

    fn n1() -> UserInfo {
        UserInfo {
            name: "system:node:n1".into(),
            groups: vec![NODES_GROUP.into(), "system:authenticated".into()],
            ..Default::default()
        }
    }

    fn authorizer(pods: &[serde_json::Value]) -> NodeAuthorizer {
        let mut g = Graph::default();
        for p in pods {
            let (k, r) = pod_refs(&serde_json::to_vec(p).unwrap()).unwrap();
            g.set_pod(k, r);
        }
        NodeAuthorizer {
            graph: NodeGraph::fixed(g),
            rules: node_rules(),
        }
    }

    fn pod(name: &str, node: &str, secret: &str) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": "ns"},
               "spec": {"nodeName": node, "serviceAccountName": "sa",
                        "volumes": [{"name": "v", "secret": {"secretName": secret}}]}})
    }

    fn ask(
        a: &NodeAuthorizer,
        verb: &str,
        group: &str,
        res: &str,
        ns: &str,
        name: &str,
    ) -> Verdict {
        a.authorize(&Attributes::of(&n1(), verb, group, res, ns, name))
    }

    #[test]
    fn identity_needs_the_prefix_and_the_group() {
        assert_eq!(node_identity(&n1()), Some("n1"));
        let mut u = n1();
        u.groups.clear();
        assert_eq!(node_identity(&u), None);
        u.name = "jane".into();
        u.groups = vec![NODES_GROUP.into()];
        assert_eq!(node_identity(&u), None);
    }

    #[test]
    fn secrets_of_own_pods_only_with_kubernetes_reason() {
        let a = authorizer(&[pod("p1", "n1", "mine"), pod("p2", "n2", "theirs")]);
        assert_eq!(
            ask(&a, "get", "", "secrets", "ns", "mine").decision,
            Decision::Allow
        );
        let v = ask(&a, "get", "", "secrets", "ns", "theirs");
        assert_eq!(v.decision, Decision::NoOpinion);
        assert_eq!(
            v.reason,
            "no relationship found between node 'n1' and this object"
        );
        assert!(v.from_graph);
        assert_eq!(
            ask(&a, "list", "", "secrets", "ns", "").reason,
            "No Object name found"
        );
        assert_eq!(
            ask(&a, "create", "", "secrets", "ns", "mine").reason,
            "can only read resources of this type"
        );
        assert_eq!(
            ask(&a, "create", "", "serviceaccounts", "ns", "sa").reason,
            "can only create token subresource of serviceaccount"
        );
        let mut t = Attributes::of(&n1(), "create", "", "serviceaccounts", "ns", "sa");
        t.subresource = "token".into();
        assert_eq!(a.authorize(&t).decision, Decision::Allow);
    }

    #[test]
    fn pods_nodes_and_leases_follow_kubernetes() {
        let a = authorizer(&[pod("p1", "n1", "s"), pod("p2", "n2", "s")]);
        assert_eq!(
            ask(&a, "get", "", "pods", "ns", "p1").decision,
            Decision::Allow
        );
        assert_eq!(
            ask(&a, "get", "", "pods", "ns", "p2").decision,
            Decision::NoOpinion
        );
        let mut l = Attributes::of(&n1(), "list", "", "pods", "", "");
        assert_eq!(
            a.authorize(&l).reason,
            "can only list/watch pods with spec.nodeName field selector"
        );
        l.field_selector = "spec.nodeName=n1".into();
        assert_eq!(a.authorize(&l).decision, Decision::Allow);
        l.field_selector = "spec.nodeName=n2".into();
        assert_eq!(a.authorize(&l).decision, Decision::NoOpinion);
        assert_eq!(
            ask(&a, "get", "", "nodes", "", "n1").decision,
            Decision::Allow
        );
        assert_eq!(
            ask(&a, "get", "", "nodes", "", "n2").reason,
            "node 'n1' cannot read 'n2', only its own Node object"
        );
        assert_eq!(
            ask(&a, "list", "", "nodes", "", "").reason,
            "node 'n1' cannot read all nodes, only its own Node object"
        );
        assert_eq!(
            ask(
                &a,
                "update",
                "coordination.k8s.io",
                "leases",
                NODE_LEASE_NAMESPACE,
                "n1"
            )
            .decision,
            Decision::Allow
        );
        assert_eq!(
            ask(
                &a,
                "update",
                "coordination.k8s.io",
                "leases",
                NODE_LEASE_NAMESPACE,
                "n2"
            )
            .reason,
            "can only access node lease with the same name as the requesting node"
        );
        assert_eq!(
            ask(&a, "get", "coordination.k8s.io", "leases", "default", "n1").reason,
            "can only access leases in the \"kube-node-lease\" system namespace"
        );
    }

    #[test]
    fn other_resources_use_the_system_node_rules() {
        let a = authorizer(&[]);
        assert_eq!(
            ask(&a, "list", "", "services", "", "").decision,
            Decision::Allow
        );
        assert_eq!(
            ask(&a, "create", "", "events", "ns", "").decision,
            Decision::Allow
        );
        assert_eq!(
            ask(&a, "list", "", "namespaces", "", "").decision,
            Decision::NoOpinion
        );
        assert_eq!(
            ask(&a, "create", "apps", "deployments", "ns", "").decision,
            Decision::NoOpinion
        );
        let other = UserInfo {
            name: "jane".into(),
            groups: vec![],
            ..Default::default()
        };
        let v = a.authorize(&Attributes::of(&other, "list", "", "services", "", ""));
        assert_eq!(v, no_opinion(""));
    }
}
