//! The resources kadm serves, with the facts discovery, routing and storage need.
//!
//! One table drives everything: the apiserver's routes, `/api` and `/apis` discovery,
//! etcd key layout and the CLI's short names, so adding a resource is one entry here
//! (plus validation if the kind has rules of its own).

/// Whether objects live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served beyond the object itself (`status`, `scale`, `binding`, …).
    pub subresources: &'static [&'static str],
    /// etcd key prefix under `/registry`, as Kubernetes lays it out (`services/specs`, `minions`, …).
    pub etcd_prefix: &'static str,
    /// Field selectors beyond `metadata.name` / `metadata.namespace`.
    pub field_selectors: &'static [&'static str],
    /// Whether `spec` and `status` are written through separate endpoints: the main
    /// endpoint ignores status changes and `/status` ignores everything else.
    pub has_status: bool,
}

/// Verbs every resource supports.
pub const RESOURCE_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The verbs discovery advertises; namespaces have no deletecollection in Kubernetes.
    pub fn verbs(&self) -> &'static [&'static str] {
        if self.plural == "namespaces" {
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        } else {
            RESOURCE_VERBS
        }
    }

    /// Every field a field selector may use on this resource.
    pub fn supported_fields(&self) -> Vec<&'static str> {
        let mut v = vec!["metadata.name", "metadata.namespace"];
        v.extend_from_slice(self.field_selectors);
        v
    }

    /// The etcd key of one object (`/registry/pods/ns/name`) or the prefix of a
    /// namespace (`name` empty) or of the whole resource (both empty).
    pub fn etcd_key(&self, namespace: &str, name: &str) -> String {
        let mut k = format!("/registry/{}/", self.etcd_prefix);
        if self.namespaced() && !namespace.is_empty() {
            k.push_str(namespace);
            k.push('/');
        }
        k.push_str(name);
        k
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    scope: Scope,
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        scope,
        short_names: &[],
        categories: &[],
        subresources: &[],
        etcd_prefix: plural,
        field_selectors: &[],
        has_status: false,
    }
}

const NS: Scope = Scope::Namespaced;
const CL: Scope = Scope::Cluster;

const POD_FIELDS: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const ALL: &[&str] = &["all"];

static RESOURCES: &[ResourceInfo] = &[
    ResourceInfo {
        short_names: &["ns"],
        subresources: &["status", "finalize"],
        field_selectors: &["status.phase"],
        has_status: true,
        ..r("", "v1", "Namespace", "namespaces", "namespace", CL)
    },
    ResourceInfo {
        short_names: &["po"],
        categories: ALL,
        subresources: &["status", "binding"],
        field_selectors: POD_FIELDS,
        has_status: true,
        ..r("", "v1", "Pod", "pods", "pod", NS)
    },
    ResourceInfo {
        short_names: &["no"],
        subresources: &["status"],
        etcd_prefix: "minions",
        field_selectors: &["spec.unschedulable"],
        has_status: true,
        ..r("", "v1", "Node", "nodes", "node", CL)
    },
    ResourceInfo {
        short_names: &["svc"],
        categories: ALL,
        subresources: &["status"],
        etcd_prefix: "services/specs",
        has_status: true,
        ..r("", "v1", "Service", "services", "service", NS)
    },
    ResourceInfo {
        short_names: &["ep"],
        etcd_prefix: "services/endpoints",
        ..r("", "v1", "Endpoints", "endpoints", "endpoints", NS)
    },
    ResourceInfo {
        short_names: &["pvc"],
        subresources: &["status"],
        has_status: true,
        ..r(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            NS,
        )
    },
    ResourceInfo {
        short_names: &["cm"],
        ..r("", "v1", "ConfigMap", "configmaps", "configmap", NS)
    },
    ResourceInfo {
        field_selectors: &["type"],
        ..r("", "v1", "Secret", "secrets", "secret", NS)
    },
    ResourceInfo {
        short_names: &["sa"],
        subresources: &["token"],
        ..r(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            "serviceaccount",
            NS,
        )
    },
    ResourceInfo {
        short_names: &["limits"],
        ..r("", "v1", "LimitRange", "limitranges", "limitrange", NS)
    },
    ResourceInfo {
        short_names: &["quota"],
        subresources: &["status"],
        has_status: true,
        ..r(
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            "resourcequota",
            NS,
        )
    },
    ResourceInfo {
        short_names: &["ev"],
        field_selectors: EVENT_FIELDS,
        ..r("", "v1", "Event", "events", "event", NS)
    },
    ResourceInfo {
        short_names: &["ev"],
        field_selectors: EVENT_FIELDS,
        ..r("events.k8s.io", "v1", "Event", "events", "event", NS)
    },
    ResourceInfo {
        short_names: &["deploy"],
        categories: ALL,
        subresources: &["status", "scale"],
        has_status: true,
        ..r("apps", "v1", "Deployment", "deployments", "deployment", NS)
    },
    ResourceInfo {
        short_names: &["rs"],
        categories: ALL,
        subresources: &["status", "scale"],
        field_selectors: &["status.replicas"],
        has_status: true,
        ..r("apps", "v1", "ReplicaSet", "replicasets", "replicaset", NS)
    },
    ResourceInfo {
        short_names: &["sts"],
        categories: ALL,
        subresources: &["status", "scale"],
        has_status: true,
        ..r(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            "statefulset",
            NS,
        )
    },
    ResourceInfo {
        short_names: &["ds"],
        categories: ALL,
        subresources: &["status"],
        has_status: true,
        ..r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", NS)
    },
    // The history of DaemonSet and StatefulSet templates (`kubectl rollout history/undo`).
    r(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        NS,
    ),
    ResourceInfo {
        categories: ALL,
        subresources: &["status"],
        field_selectors: &["status.successful"],
        has_status: true,
        ..r("batch", "v1", "Job", "jobs", "job", NS)
    },
    ResourceInfo {
        short_names: &["cj"],
        categories: ALL,
        subresources: &["status"],
        has_status: true,
        ..r("batch", "v1", "CronJob", "cronjobs", "cronjob", NS)
    },
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", NS),
    r(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        NS,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        NS,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        CL,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        NS,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        CL,
    ),
    ResourceInfo {
        short_names: &["csr"],
        subresources: &["approval", "status"],
        field_selectors: &["spec.signerName"],
        has_status: true,
        etcd_prefix: "certificatesigningrequests",
        ..r(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            "certificatesigningrequest",
            CL,
        )
    },
    ResourceInfo {
        short_names: &["pdb"],
        subresources: &["status"],
        has_status: true,
        ..r(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            NS,
        )
    },
    ResourceInfo {
        short_names: &["pc"],
        ..r(
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            "priorityclass",
            CL,
        )
    },
];

/// Every served resource, in discovery order.
pub fn all() -> &'static [ResourceInfo] {
    RESOURCES
}

/// The resource served at `group/version/plural`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for a `apiVersion` + `kind` pair as found in a manifest.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Group-versions in the order `/apis` lists them (core `v1` excluded).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Resources of one group-version.
pub fn resources_in(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceInfo> {
    let group = group.to_string();
    let version = version.to_string();
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_keys_follow_kubernetes_layout() {
        let pods = lookup("", "v1", "pods").expect("pods");
        assert_eq!(
            pods.etcd_key("default", "web"),
            "/registry/pods/default/web"
        );
        assert_eq!(pods.etcd_key("default", ""), "/registry/pods/default/");
        assert_eq!(pods.etcd_key("", ""), "/registry/pods/");
        let svc = lookup("", "v1", "services").expect("services");
        assert_eq!(svc.etcd_key("ns", "s"), "/registry/services/specs/ns/s");
        let nodes = lookup("", "v1", "nodes").expect("nodes");
        assert_eq!(nodes.etcd_key("", "n1"), "/registry/minions/n1");
    }

    #[test]
    fn no_two_resources_share_a_route() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} served twice",
                    a.plural
                );
            }
        }
    }

    #[test]
    fn both_event_apis_share_storage() {
        let core = lookup("", "v1", "events").expect("core events");
        let new = lookup("events.k8s.io", "v1", "events").expect("events.k8s.io");
        assert_eq!(core.etcd_key("a", "b"), new.etcd_key("a", "b"));
    }

    #[test]
    fn workload_history_and_claims_are_served_where_kubernetes_keeps_them() {
        let cr = lookup("apps", "v1", "controllerrevisions").expect("controllerrevisions");
        assert_eq!(cr.kind, "ControllerRevision");
        assert!(cr.namespaced() && !cr.has_status && cr.subresources.is_empty());
        assert_eq!(
            cr.etcd_key("ns", "web-7d4b9c"),
            "/registry/controllerrevisions/ns/web-7d4b9c"
        );
        let pvc = lookup("", "v1", "persistentvolumeclaims").expect("pvcs");
        assert_eq!(pvc.short_names, &["pvc"]);
        assert!(pvc.has_status && pvc.has_subresource("status"));
        assert_eq!(
            pvc.etcd_key("ns", "www-web-0"),
            "/registry/persistentvolumeclaims/ns/www-web-0"
        );
        assert_eq!(
            lookup_kind("v1", "PersistentVolumeClaim").map(|r| r.plural),
            Some("persistentvolumeclaims")
        );
    }

    #[test]
    fn lookup_kind_splits_api_version() {
        assert_eq!(
            lookup_kind("apps/v1", "Deployment").map(|r| r.plural),
            Some("deployments")
        );
        assert_eq!(
            lookup_kind("v1", "ConfigMap").map(|r| r.plural),
            Some("configmaps")
        );
        assert!(lookup_kind("v1", "Deployment").is_none());
    }
}
