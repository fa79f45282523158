//! [`PodInfo`]: everything the plugins read about a pod, computed once when the pod is seen
//! (requests with init containers and overhead, host ports, compiled selectors and affinity
//! terms), so that filtering a thousand nodes never re-parses a quantity or a selector.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, PodCondition,
    Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cache::resources::{DEFAULT_MEMORY_REQUEST, DEFAULT_MILLI_CPU_REQUEST, Resources};
use crate::labels::{Labels, Selector};
use crate::objects::{ContainerLite, PodObject};
use crate::priority::PriorityClasses;

/// `kubernetes.io/hostname`.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// `topology.kubernetes.io/zone`.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// `topology.kubernetes.io/region`.
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";

/// One host port a pod occupies: (host IP, protocol, port), defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// The wildcard host IP.
pub const BIND_ALL: &str = "0.0.0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeRequirement {
    key: String,
    op: NodeOp,
    values: Vec<String>,
}

impl NodeRequirement {
    fn compile(r: &NodeSelectorRequirement) -> Option<Self> {
        let values = r.values.clone().unwrap_or_default();
        let single_int = || -> Option<i64> {
            if values.len() != 1 {
                return None;
            }
            values[0].parse::<i64>().ok()
        };
        let op = match r.operator.as_str() {
            "In" if !values.is_empty() => NodeOp::In,
            "NotIn" if !values.is_empty() => NodeOp::NotIn,
            "Exists" if values.is_empty() => NodeOp::Exists,
            "DoesNotExist" if values.is_empty() => NodeOp::DoesNotExist,
            "Gt" => NodeOp::Gt(single_int()?),
            "Lt" => NodeOp::Lt(single_int()?),
            _ => return None,
        };
        Some(Self {
            key: r.key.clone(),
            op,
            values,
        })
    }

    fn matches_value(&self, v: Option<&str>) -> bool {
        match (self.op, v) {
            (NodeOp::In, Some(v)) => self.values.iter().any(|x| x == v),
            (NodeOp::In, None) => false,
            (NodeOp::NotIn, Some(v)) => !self.values.iter().any(|x| x == v),
            (NodeOp::NotIn, None) => true,
            (NodeOp::Exists, v) => v.is_some(),
            (NodeOp::DoesNotExist, v) => v.is_none(),
            (NodeOp::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > n),
            (NodeOp::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < n),
            (NodeOp::Gt(_) | NodeOp::Lt(_), None) => false,
        }
    }
}

/// A compiled `NodeSelectorTerm`: expressions on labels and fields (`metadata.name`), ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTerm {
    expressions: Vec<NodeRequirement>,
    fields: Vec<NodeRequirement>,
    /// An unparsable or empty term matches no node.
    matches_nothing: bool,
}

impl NodeTerm {
    pub fn compile(t: &NodeSelectorTerm) -> Self {
        let mut term = Self {
            expressions: Vec::new(),
            fields: Vec::new(),
            matches_nothing: false,
        };
        for r in t.match_expressions.iter().flatten() {
            match NodeRequirement::compile(r) {
                Some(c) => term.expressions.push(c),
                None => term.matches_nothing = true,
            }
        }
        for r in t.match_fields.iter().flatten() {
            // Only `metadata.name` is a valid field, with In/NotIn and one value.
            let ok = r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && r.values.as_ref().is_some_and(|v| v.len() == 1);
            match NodeRequirement::compile(r).filter(|_| ok) {
                Some(c) => term.fields.push(c),
                None => term.matches_nothing = true,
            }
        }
        if term.expressions.is_empty() && term.fields.is_empty() {
            term.matches_nothing = true;
        }
        term
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        !self.matches_nothing
            && self
                .expressions
                .iter()
                .all(|r| r.matches_value(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches_value(Some(node_name)))
    }
}

/// A compiled `NodeSelector`: terms ORed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSelectorC {
    terms: Vec<NodeTerm>,
}

impl NodeSelectorC {
    pub fn compile(s: &NodeSelector) -> Self {
        Self {
            terms: s
                .node_selector_terms
                .iter()
                .map(NodeTerm::compile)
                .collect(),
        }
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        self.terms.iter().any(|t| t.matches(labels, node_name))
    }
}

/// A compiled pod (anti-)affinity term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityTerm {
    /// Namespaces named by the term (the pod's own when neither names nor a selector is given).
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<Selector>,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn compile(pod_namespace: &str, t: &PodAffinityTerm) -> Self {
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.push(pod_namespace.to_string());
        }
        Self {
            namespaces,
            namespace_selector: t
                .namespace_selector
                .as_ref()
                .map(Selector::from_label_selector),
            selector: Selector::from_optional(t.label_selector.as_ref()),
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether `pod` (whose namespace has `ns_labels`) is selected by this term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self
                .namespace_selector
                .as_ref()
                .is_some_and(|s| ns_labels.is_some_and(|l| s.matches(l)));
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// A preferred affinity term with its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTerm {
    pub weight: i64,
    pub term: AffinityTerm,
}

/// `whenUnsatisfiable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

/// A compiled topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub when: WhenUnsatisfiable,
    /// The label selector merged with `matchLabelKeys`.
    pub selector: Selector,
    /// `minDomains`, 1 when unset.
    pub min_domains: i32,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes matching the pod's node
    /// selector and required node affinity count as domains.
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default `Ignore`): only nodes whose NoSchedule/NoExecute
    /// taints the pod tolerates count.
    pub honor_node_taints: bool,
}

impl SpreadConstraint {
    fn compile(pod_labels: &Labels, c: &TopologySpreadConstraint) -> Option<Self> {
        let when = match c.when_unsatisfiable.as_str() {
            "DoNotSchedule" => WhenUnsatisfiable::DoNotSchedule,
            "ScheduleAnyway" => WhenUnsatisfiable::ScheduleAnyway,
            _ => return None,
        };
        let mut selector = Selector::from_optional(c.label_selector.as_ref());
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = pod_labels.get(key) {
                selector.add_equals(key, v);
            }
        }
        Some(Self {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            when,
            selector,
            min_domains: c.min_domains.unwrap_or(1),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        })
    }
}

/// The owner reference with `controller: true`, for Kubernetes' default spreading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// What the plugins know about one pod. Immutable: a pod update builds a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub resource_version: String,
    pub labels: Labels,
    pub scheduler_name: String,
    /// `spec.nodeName`, empty while unscheduled.
    pub node_name: String,
    pub nominated_node_name: String,
    pub priority: i32,
    pub preempt_never: bool,
    /// Effective requests: containers and sidecars summed, regular init containers as the
    /// maximum, plus overhead.
    pub requests: Resources,
    /// cpu and memory with Kubernetes' non-zero defaults for containers without requests
    /// (used by scoring only).
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub node_selector: BTreeMap<String, String>,
    pub required_node_affinity: Option<NodeSelectorC>,
    pub preferred_node_affinity: Vec<(i64, NodeTerm)>,
    pub tolerations: Vec<Toleration>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedTerm>,
    pub preferred_anti_affinity: Vec<WeightedTerm>,
    /// Whether `spec.affinity` has a podAffinity or podAntiAffinity section at all.
    pub has_pod_affinity: bool,
    pub spread_constraints: Vec<SpreadConstraint>,
    /// Whether the pod named any topology spread constraint itself (else the system
    /// defaults may apply).
    pub has_own_spread_constraints: bool,
    /// Images of init containers and containers, normalized (`:latest` added).
    pub images: Vec<String>,
    /// Number of init containers plus containers (ImageLocality's threshold).
    pub container_count: usize,
    pub terminating: bool,
    pub gated: bool,
    /// Creation time in seconds since the epoch (the queue's second sort key).
    pub created: i64,
    /// `status.startTime` in nanoseconds, for choosing preemption victims.
    pub start_time: Option<i64>,
    pub controller: Option<ControllerRef>,
    /// The pod is being deleted because the scheduler preempted it
    /// (`DisruptionTarget` with reason `PreemptionByScheduler`).
    pub preempted_by_scheduler: bool,
    /// The pod's `PodScheduled` condition as last seen, to skip no-op status writes.
    pub scheduled_condition: Option<PodCondition>,
    pub phase: String,
}

fn quantity_requests(c: &ContainerLite) -> BTreeMap<String, Quantity> {
    let Some(res) = &c.resources else {
        return BTreeMap::new();
    };
    let mut requests = res.requests.clone().unwrap_or_default();
    // The apiserver defaults a missing request to the limit; kadm's does not (yet), so the
    // scheduler applies the same rule when it reads the pod.
    for (name, q) in res.limits.iter().flatten() {
        requests.entry(name.clone()).or_insert_with(|| q.clone());
    }
    requests
}

/// Requests of one container, with Kubernetes' non-zero cpu/memory defaults if asked.
fn container_requests(c: &ContainerLite, non_zero: bool) -> Resources {
    let list = quantity_requests(c);
    let mut r = Resources::from_list(Some(&list));
    if non_zero {
        if !list.contains_key("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.contains_key("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

fn is_sidecar(c: &ContainerLite) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// `resourcehelper.PodRequests`: containers and sidecars summed; each regular init
/// container counts with the sidecars started before it; the maximum of both; plus overhead.
pub fn pod_requests(
    containers: &[ContainerLite],
    init: &[ContainerLite],
    overhead: Option<&BTreeMap<String, Quantity>>,
    non_zero: bool,
) -> Resources {
    let mut sum = Resources::default();
    for c in containers {
        sum.add(&container_requests(c, non_zero), 1);
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in init {
        let r = container_requests(c, non_zero);
        if is_sidecar(c) {
            sum.add(&r, 1);
            sidecars.add(&r, 1);
            init_max.set_max(&sidecars);
        } else {
            let mut combined = r;
            combined.add(&sidecars, 1);
            init_max.set_max(&combined);
        }
    }
    sum.set_max(&init_max);
    if let Some(o) = overhead {
        sum.add(&Resources::from_list(Some(o)), 1);
    }
    sum.allowed_pods = 0;
    sum
}

/// `normalizedImageName`: an image without a tag means `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    let last_colon = name.rfind(':');
    let last_slash = name.rfind('/');
    if last_colon.map(|c| c as isize).unwrap_or(-1) <= last_slash.map(|s| s as isize).unwrap_or(-1)
    {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

fn time_nanos(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    i64::try_from(t.0.as_nanosecond()).unwrap_or(i64::MAX)
}

impl PodInfo {
    /// Computes everything once from the watched pod.
    pub fn new(pod: &PodObject, priorities: &PriorityClasses) -> Self {
        let meta = &pod.metadata;
        let spec = &pod.spec;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let labels = meta.labels.clone().unwrap_or_default();
        let resolved = priorities.resolve(spec);
        let init = spec.init_containers.as_deref().unwrap_or_default();
        let requests = pod_requests(&spec.containers, init, spec.overhead.as_ref(), false);
        let non_zero = pod_requests(&spec.containers, init, spec.overhead.as_ref(), true);

        let mut host_ports = Vec::new();
        for c in spec
            .containers
            .iter()
            .chain(init.iter().filter(|c| is_sidecar(c)))
        {
            for p in c.ports.iter().flatten() {
                let port = p.host_port.unwrap_or(0);
                if port <= 0 {
                    continue;
                }
                let ip = p.host_ip.clone().filter(|s| !s.is_empty());
                let protocol = p.protocol.clone().filter(|s| !s.is_empty());
                host_ports.push(HostPort {
                    ip: ip.unwrap_or_else(|| BIND_ALL.to_string()),
                    protocol: protocol.unwrap_or_else(|| "TCP".to_string()),
                    port,
                });
            }
        }

        let affinity = spec.affinity.as_ref();
        let node_aff = affinity.and_then(|a| a.node_affinity.as_ref());
        let required_node_affinity = node_aff
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(NodeSelectorC::compile);
        let preferred_node_affinity = node_aff
            .and_then(|n| {
                n.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0)
            .map(|t| (i64::from(t.weight), NodeTerm::compile(&t.preference)))
            .filter(|(_, t)| !t.matches_nothing)
            .collect();

        let pod_aff = affinity.and_then(|a| a.pod_affinity.as_ref());
        let pod_anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let terms = |ts: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            ts.into_iter()
                .flatten()
                .map(|t| AffinityTerm::compile(&namespace, t))
                .collect()
        };
        let weighted = |ts: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            ts.into_iter()
                .flatten()
                .map(|t| WeightedTerm {
                    weight: i64::from(t.weight),
                    term: AffinityTerm::compile(&namespace, &t.pod_affinity_term),
                })
                .collect::<Vec<_>>()
        };
        let required_affinity = terms(pod_aff.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity = terms(pod_anti.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_affinity = weighted(pod_aff.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity = weighted(pod_anti.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));

        let own_constraints = spec
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default();
        let spread_constraints = own_constraints
            .iter()
            .filter_map(|c| SpreadConstraint::compile(&labels, c))
            .collect();

        let images = init
            .iter()
            .chain(spec.containers.iter())
            .filter_map(|c| c.image.as_deref())
            .map(normalized_image_name)
            .collect();

        let conditions = pod.status.conditions.as_deref().unwrap_or_default();
        let preempted_by_scheduler = conditions.iter().any(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("PreemptionByScheduler")
        });
        let scheduled_condition = conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .cloned();

        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| ControllerRef {
                api_version: o.api_version.clone(),
                kind: o.kind.clone(),
                name: o.name.clone(),
            });

        Self {
            uid: meta.uid.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            scheduler_name: spec
                .scheduler_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| crate::options::DEFAULT_SCHEDULER_NAME.to_string()),
            node_name: spec.node_name.clone().unwrap_or_default(),
            nominated_node_name: pod.status.nominated_node_name.clone().unwrap_or_default(),
            priority: resolved.priority,
            preempt_never: resolved.preempt_never,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            requests,
            host_ports,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_node_affinity,
            preferred_node_affinity,
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            has_pod_affinity: pod_aff.is_some() || pod_anti.is_some(),
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            has_own_spread_constraints: !own_constraints.is_empty(),
            spread_constraints,
            images,
            container_count: init.len() + spec.containers.len(),
            terminating: meta.deletion_timestamp.is_some(),
            gated: spec
                .scheduling_gates
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
            created: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            start_time: pod.status.start_time.as_ref().map(time_nanos),
            controller,
            preempted_by_scheduler,
            scheduled_condition,
            phase: pod.status.phase.clone().unwrap_or_default(),
            labels,
            namespace,
        }
    }

    /// Whether `other` (a newer version of the same pod) differs only in what the scheduler
    /// does not read when placing it — its status and resource version. Kubernetes retries
    /// an unschedulable pod only on such other changes (`isPodUpdated`).
    pub fn same_scheduling_inputs(&self, other: &PodInfo) -> bool {
        let strip = |p: &PodInfo| PodInfo {
            resource_version: String::new(),
            nominated_node_name: String::new(),
            scheduled_condition: None,
            phase: String::new(),
            start_time: None,
            preempted_by_scheduler: false,
            ..p.clone()
        };
        strip(self) == strip(other)
    }

    /// `namespace/name`, for logs and messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The node selector and required node affinity (`GetRequiredNodeAffinity().Match`).
    pub fn matches_node_selector(&self, labels: &Labels, node_name: &str) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self
                .required_node_affinity
                .as_ref()
                .is_none_or(|s| s.matches(labels, node_name))
    }

    /// Pods with any required anti-affinity term (the InterPodAffinity plugin looks at
    /// these on every node).
    pub fn has_required_anti_affinity(&self) -> bool {
        !self.required_anti_affinity.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A PodInfo from pod JSON (metadata defaults filled in).
    pub fn pod(v: serde_json::Value) -> PodInfo {
        let mut v = v;
        let meta = v
            .as_object_mut()
            .expect("object")
            .entry("metadata")
            .or_insert_with(|| json!({}));
        let m = meta.as_object_mut().expect("metadata");
        m.entry("namespace").or_insert(json!("default"));
        m.entry("name").or_insert(json!("p"));
        let uid = format!("uid-{}", m["name"].as_str().unwrap_or("p"));
        m.entry("uid").or_insert(json!(uid));
        let obj: PodObject = serde_json::from_value(v).expect("pod");
        PodInfo::new(&obj, &PriorityClasses::default())
    }

    #[test]
    fn requests_sum_containers_take_init_max_and_add_overhead() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "500m", "memory": "50Mi"}}},
                {"name": "i2", "resources": {"requests": {"memory": "300Mi"}}}],
            "overhead": {"cpu": "10m", "memory": "1Mi"}}}));
        assert_eq!(p.requests.milli_cpu, 510);
        assert_eq!(p.requests.memory, (300 + 1) * 1024 * 1024);
    }

    #[test]
    fn sidecars_add_up_and_count_during_later_init_containers() {
        let p = pod(json!({"spec": {
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "init", "resources": {"requests": {"cpu": "500m"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "200m"}}}]}}));
        // max(200 + 100, 500 + 100)
        assert_eq!(p.requests.milli_cpu, 600);
    }

    #[test]
    fn limits_stand_in_for_missing_requests_and_non_zero_defaults_apply_for_scoring() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b"}]}}));
        assert_eq!(p.requests.milli_cpu, 1000);
        assert_eq!(p.requests.memory, 1 << 30);
        assert_eq!(p.non_zero_milli_cpu, 1000 + DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(p.non_zero_memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
        let empty = pod(json!({"spec": {"containers": [{"name": "a"}]}}));
        assert!(empty.requests.is_zero());
        assert_eq!(empty.non_zero_milli_cpu, 100);
    }

    #[test]
    fn host_ports_get_defaults_and_zero_ports_are_ignored() {
        let p = pod(json!({"spec": {"containers": [{"name": "a", "ports": [
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
            {"containerPort": 9000}]}]}}));
        assert_eq!(
            p.host_ports,
            vec![
                HostPort {
                    ip: BIND_ALL.into(),
                    protocol: "TCP".into(),
                    port: 8080
                },
                HostPort {
                    ip: "10.0.0.1".into(),
                    protocol: "UDP".into(),
                    port: 53
                },
            ]
        );
    }

    #[test]
    fn images_are_normalized() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.27"), "nginx:1.27");
        assert_eq!(
            normalized_image_name("registry:5000/app"),
            "registry:5000/app:latest"
        );
        assert_eq!(
            normalized_image_name("registry:5000/app:v1"),
            "registry:5000/app:v1"
        );
    }

    #[test]
    fn node_terms_follow_kubernetes_operators() {
        let term: NodeSelectorTerm = serde_json::from_value(json!({"matchExpressions": [
            {"key": "gpu", "operator": "Exists"},
            {"key": "cores", "operator": "Gt", "values": ["4"]},
            {"key": "zone", "operator": "NotIn", "values": ["z9"]},
            {"key": "legacy", "operator": "DoesNotExist"}]}))
        .expect("term");
        let t = NodeTerm::compile(&term);
        let l = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(t.matches(&l(&[("gpu", ""), ("cores", "8")]), "n"));
        assert!(!t.matches(&l(&[("gpu", ""), ("cores", "4")]), "n"));
        assert!(!t.matches(&l(&[("gpu", ""), ("cores", "x")]), "n"));
        assert!(!t.matches(&l(&[("gpu", ""), ("cores", "8"), ("zone", "z9")]), "n"));
        assert!(!t.matches(&l(&[("gpu", ""), ("cores", "8"), ("legacy", "1")]), "n"));
        let lt: NodeSelectorTerm = serde_json::from_value(json!({"matchExpressions": [
            {"key": "cores", "operator": "Lt", "values": ["4"]}]}))
        .expect("term");
        assert!(NodeTerm::compile(&lt).matches(&l(&[("cores", "3")]), "n"));
        let fields: NodeSelectorTerm = serde_json::from_value(json!({"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}))
        .expect("term");
        assert!(NodeTerm::compile(&fields).matches(&l(&[]), "n1"));
        assert!(!NodeTerm::compile(&fields).matches(&l(&[]), "n2"));
        let empty: NodeSelectorTerm = serde_json::from_value(json!({})).expect("term");
        assert!(!NodeTerm::compile(&empty).matches(&l(&[]), "n1"));
        let bad: NodeSelectorTerm = serde_json::from_value(json!({"matchExpressions": [
            {"key": "cores", "operator": "Gt", "values": ["4", "5"]}]}))
        .expect("term");
        assert!(!NodeTerm::compile(&bad).matches(&l(&[("cores", "9")]), "n"));
    }

    #[test]
    fn affinity_terms_default_to_the_pods_namespace() {
        let p = pod(
            json!({"metadata": {"namespace": "team"}, "spec": {"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"},
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone", "namespaceSelector": {}}]}}}}),
        );
        assert_eq!(p.required_anti_affinity[0].namespaces, vec!["team"]);
        let other = pod(json!({"metadata": {"namespace": "other", "labels": {"app": "db"}}}));
        let same = pod(json!({"metadata": {"namespace": "team", "labels": {"app": "db"}}}));
        assert!(p.required_anti_affinity[0].matches(&same, None));
        assert!(!p.required_anti_affinity[0].matches(&other, None));
        // An empty namespaceSelector selects every namespace.
        assert!(p.required_anti_affinity[1].matches(&other, Some(&Labels::new())));
        assert!(p.has_required_anti_affinity());
    }

    #[test]
    fn spread_constraints_merge_match_label_keys_and_default_policies() {
        let p = pod(
            json!({"metadata": {"labels": {"app": "web", "rev": "7"}}, "spec": {
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}},
                "matchLabelKeys": ["rev"]}]}}),
        );
        let c = &p.spread_constraints[0];
        assert_eq!(
            (c.min_domains, c.honor_node_affinity, c.honor_node_taints),
            (1, true, false)
        );
        let same_rev: Labels = [("app", "web"), ("rev", "7")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let other_rev: Labels = [("app", "web"), ("rev", "6")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(c.selector.matches(&same_rev));
        assert!(!c.selector.matches(&other_rev));
    }
}
