//! Resource quota accounting, shared by the ResourceQuota admission plugin (which charges
//! a write before it is stored) and the resourcequota controller (which recounts a
//! namespace): what an object uses (`pods`, `requests.cpu`, `count/deployments.apps`, …),
//! which quotas it falls under (scopes), and the `ResourceList` arithmetic Kubernetes'
//! `quota/v1` package does, with its exact error texts.
//!
//! Kubernetes' evaluators are kept: pods (compute resources, `pods`, scopes), services
//! (`services`, node ports, load balancers), persistent volume claims (storage, per
//! storage class), and an object count for everything else.

use std::collections::{BTreeMap, BTreeSet};

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::quantity::Quantity;

/// A `ResourceList`: resource name → quantity, sorted by name.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Resources named `<class>.storageclass.storage.k8s.io/<resource>` are charged per
/// storage class.
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The compute resources a pod is charged (besides hugepages and extended resources).
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// Quota resources that oblige every container of a pod to state them (Kubernetes keeps
/// this for compatibility and never extended it).
const POD_CONSTRAINED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.loadbalancers",
    "services.nodeports",
];

const PVC_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];

/// Object counts Kubernetes also accepts under their old names.
const LEGACY_COUNT_ALIASES: &[(&str, &str)] = &[
    ("configmaps", "configmaps"),
    ("resourcequotas", "resourcequotas"),
    ("replicationcontrollers", "replicationcontrollers"),
    ("secrets", "secrets"),
];

/// The scopes a quota may name in `spec.scopes` or `spec.scopeSelector`.
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

// ----- ResourceList arithmetic (Kubernetes' quota/v1 helpers) -----

/// Parses a JSON `ResourceList`; entries that are not quantities are left out (the
/// apiserver validates quantities before anyone counts them).
pub fn parse_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Quantity::parse(q.as_str()?).ok()?)))
        .collect()
}

/// A `ResourceList` as JSON, every quantity in canonical form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), Value::String(q.canonical())))
            .collect::<Map<String, Value>>(),
    )
}

/// `quota.Add`: the sum per resource (keys of either side).
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        out.entry(k.clone()).or_default().add(v);
    }
    // A key only in `b` starts from zero and so takes `b`'s format, as Quantity.Add does.
    out
}

/// `quota.SubtractWithNonNegativeResult`: `a - b` per resource, floored at zero.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (k, v) in a {
        let mut q = *v;
        if let Some(o) = b.get(k) {
            q.sub(o);
        }
        out.insert(
            k.clone(),
            if q.sign() > 0 { q } else { Quantity::default() },
        );
    }
    for k in b.keys() {
        out.entry(k.clone()).or_default();
    }
    out
}

/// `quota.Max`: the larger value per resource.
pub fn max(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        match out.get(k) {
            Some(cur) if cur > v => {}
            _ => {
                out.insert(k.clone(), *v);
            }
        }
    }
    out
}

/// `quota.Mask`: only the named resources.
pub fn mask<S: AsRef<str>>(list: &ResourceList, names: &[S]) -> ResourceList {
    let names: BTreeSet<&str> = names.iter().map(AsRef::as_ref).collect();
    list.iter()
        .filter(|(k, _)| names.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// `quota.RemoveZeros`.
pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// `quota.IsNegative`: the resources below zero.
pub fn negative_names(list: &ResourceList) -> Vec<String> {
    list.iter()
        .filter(|(_, v)| v.sign() < 0)
        .map(|(k, _)| k.clone())
        .collect()
}

/// `quota.LessThanOrEqual`: whether every resource `b` limits and `a` has is within it,
/// and the ones that are not.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, Vec<String>) {
    let exceeded: Vec<String> = b
        .iter()
        .filter(|(k, limit)| a.get(*k).is_some_and(|v| v > limit))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// `quota.Equals`: the same resources with equal values.
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

/// How quota errors print a list: `pods=1,requests.cpu=500m`, sorted by name.
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ----- resource names -----

/// `IsNativeResource`: unqualified, or in the `kubernetes.io/` domain.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `IsExtendedResourceName`: a domain-qualified name outside `kubernetes.io/` that is not
/// itself a `requests.` quota name.
pub fn is_extended_resource_name(name: &str) -> bool {
    !is_native_resource(name) && !name.starts_with("requests.")
}

/// Extended resources are quota'd only as `requests.<name>`.
fn is_extended_quota_name(name: &str) -> bool {
    !is_native_resource(name) && name.starts_with("requests.")
}

/// `count/<resource>` for the core group, `count/<resource>.<group>` otherwise.
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

// ----- scopes -----

/// One term of a quota's scope (`spec.scopes` entries are `Exists` terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRequirement {
    pub scope_name: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// Every scope term of a quota: `spec.scopes` as `Exists`, then
/// `spec.scopeSelector.matchExpressions`.
pub fn scope_requirements(quota: &Value) -> Vec<ScopeRequirement> {
    let mut out: Vec<ScopeRequirement> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| ScopeRequirement {
            scope_name: s.to_string(),
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(ScopeRequirement {
            scope_name: str_at(e, "/scopeName").to_string(),
            operator: str_at(e, "/operator").to_string(),
            values: e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
        });
    }
    out
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A label-selector requirement over the one-label set `{PriorityClass: <class>}` (the
/// set is empty for a pod without a class).
fn priority_class_matches(req: &ScopeRequirement, class: &str) -> bool {
    let has = !class.is_empty();
    match req.operator.as_str() {
        "In" => has && req.values.iter().any(|v| v == class),
        "NotIn" => !has || !req.values.iter().any(|v| v == class),
        "Exists" => has,
        "DoesNotExist" => !has,
        _ => false,
    }
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

fn is_best_effort(pod: &Value) -> bool {
    crate::defaults::qos_class(pod) == "BestEffort"
}

fn uses_cross_namespace_pod_affinity(pod: &Value) -> bool {
    let cross = |term: &Value| {
        term.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|n| !n.is_empty())
            || term.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = a
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(cross);
        let preferred = a
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"))
            .any(cross);
        required || preferred
    })
}

/// Kubernetes' `podMatchesScopeFunc`. The operator of the lifecycle and QoS scopes is
/// not looked at (they are always `Exists` terms).
fn pod_matches_scope(req: &ScopeRequirement, pod: &Value) -> bool {
    match req.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => priority_class_matches(req, str_at(pod, "/spec/priorityClassName")),
        "CrossNamespacePodAffinity" => uses_cross_namespace_pod_affinity(pod),
        _ => false,
    }
}

// ----- pod resources -----

fn container_list<'a>(pod: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn is_sidecar(c: &Value) -> bool {
    c.get("restartPolicy").and_then(Value::as_str) == Some("Always")
}

/// `resourcehelper.PodRequests` / `PodLimits` over `requests` or `limits`: the
/// containers' sum (sidecar init containers included), raised to what any init container
/// needs while it runs, plus the pod overhead when asked.
pub fn pod_resources(pod: &Value, which: &str, overhead: bool) -> ResourceList {
    let of = |c: &Value| parse_list(c.pointer(&format!("/resources/{which}")));
    let mut sum = ResourceList::new();
    for c in container_list(pod, "containers") {
        sum = add(&sum, &of(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in container_list(pod, "initContainers") {
        let own = of(c);
        let running = if is_sidecar(c) {
            sum = add(&sum, &own);
            sidecars = add(&sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        for (k, v) in running {
            match init_max.get(&k) {
                Some(cur) if *cur >= v => {}
                _ => {
                    init_max.insert(k, v);
                }
            }
        }
    }
    for (k, v) in init_max {
        match sum.get(&k) {
            Some(cur) if *cur >= v => {}
            _ => {
                sum.insert(k, v);
            }
        }
    }
    if overhead {
        sum = add(&sum, &parse_list(pod.pointer("/spec/overhead")));
    }
    sum
}

/// `podComputeUsageHelper`: the quota names a set of requests and limits is charged as.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Quantity::from_value(1));
    for (res, quota_names) in [
        ("cpu", ["cpu", "requests.cpu"]),
        ("memory", ["memory", "requests.memory"]),
        (
            "ephemeral-storage",
            ["ephemeral-storage", "requests.ephemeral-storage"],
        ),
    ] {
        if let Some(q) = requests.get(res) {
            for n in quota_names {
                out.insert(n.into(), *q);
            }
        }
        if let Some(q) = limits.get(res) {
            out.insert(format!("limits.{res}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if is_extended_resource_name(name) {
            out.insert(format!("requests.{name}"), *q);
        }
    }
    out
}

/// `QuotaV1Pod`: a pod is charged compute resources unless it finished or its graceful
/// deletion ran out.
pub fn pod_is_charged(pod: &Value, now: SystemTime) -> bool {
    let now = DateTime::<Utc>::from(now);
    if matches!(str_at(pod, "/status/phase"), "Failed" | "Succeeded") {
        return false;
    }
    let deletion = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(crate::meta::parse_time);
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let (Some(at), Some(grace)) = (deletion, grace)
        && now > at + chrono::Duration::seconds(grace)
    {
        return false;
    }
    true
}

/// `PodUsageFunc`: `count/pods` always; compute resources while the pod is charged.
pub fn pod_usage(pod: &Value, now: SystemTime) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/pods".into(), Quantity::from_value(1));
    if !pod_is_charged(pod, now) {
        return out;
    }
    let requests = pod_resources(pod, "requests", true);
    let limits = pod_resources(pod, "limits", true);
    add(&out, &compute_usage(&requests, &limits))
}

// ----- evaluators -----

/// How the usage of one kind of object is measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluator {
    Pods,
    Services,
    PersistentVolumeClaims,
    /// `count/<resource>.<group>` (and a legacy alias for a few core resources).
    ObjectCount {
        group: String,
        resource: String,
    },
}

impl Evaluator {
    /// The evaluator for writes of `group`/`resource`; `None` for what quota ignores
    /// (events, Kubernetes' default ignored resources).
    pub fn for_resource(group: &str, resource: &str) -> Option<Evaluator> {
        match (group, resource) {
            ("", "events") | ("events.k8s.io", "events") => None,
            ("", "pods") => Some(Evaluator::Pods),
            ("", "services") => Some(Evaluator::Services),
            ("", "persistentvolumeclaims") => Some(Evaluator::PersistentVolumeClaims),
            _ => Some(Evaluator::ObjectCount {
                group: group.to_string(),
                resource: resource.to_string(),
            }),
        }
    }

    /// The evaluators that count the quota resource `name`: what the resourcequota
    /// controller needs to compute a quota's `status.used`.
    pub fn for_quota_resource(name: &str) -> Option<Evaluator> {
        let candidates = [
            Evaluator::Pods,
            Evaluator::Services,
            Evaluator::PersistentVolumeClaims,
        ];
        if let Some(e) = candidates
            .into_iter()
            .find(|e| !e.matching_resources(&[name]).is_empty())
        {
            return Some(e);
        }
        if let Some((_, alias)) = LEGACY_COUNT_ALIASES.iter().find(|(_, a)| *a == name) {
            return Evaluator::for_resource("", alias);
        }
        let rest = name.strip_prefix("count/")?;
        let (resource, group) = rest.split_once('.').unwrap_or((rest, ""));
        if resource.is_empty() {
            return None;
        }
        Evaluator::for_resource(group, resource)
    }

    /// The API group and resource this evaluator measures.
    pub fn group_resource(&self) -> (&str, &str) {
        match self {
            Evaluator::Pods => ("", "pods"),
            Evaluator::Services => ("", "services"),
            Evaluator::PersistentVolumeClaims => ("", "persistentvolumeclaims"),
            Evaluator::ObjectCount { group, resource } => (group, resource),
        }
    }

    /// Whether updates can change usage (creates always can): a Service can change type,
    /// a claim can grow; pods and plain objects are charged once, on create.
    pub fn charges_updates(&self) -> bool {
        matches!(
            self,
            Evaluator::Services | Evaluator::PersistentVolumeClaims
        )
    }

    /// The quota resources among `names` that this evaluator measures.
    pub fn matching_resources<S: AsRef<str>>(&self, names: &[S]) -> Vec<String> {
        let names = names.iter().map(AsRef::as_ref);
        match self {
            Evaluator::Pods => names
                .filter(|n| {
                    POD_RESOURCES.contains(n)
                        || n.starts_with("hugepages-")
                        || n.starts_with("requests.hugepages-")
                        || is_extended_quota_name(n)
                })
                .map(String::from)
                .collect(),
            Evaluator::Services => names
                .filter(|n| SERVICE_RESOURCES.contains(n))
                .map(String::from)
                .collect(),
            Evaluator::PersistentVolumeClaims => names
                .filter(|n| {
                    *n == "count/persistentvolumeclaims"
                        || PVC_RESOURCES.contains(n)
                        || PVC_RESOURCES
                            .iter()
                            .any(|r| n.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
                })
                .map(String::from)
                .collect(),
            Evaluator::ObjectCount { group, resource } => {
                let own = self.object_count_names(group, resource);
                names
                    .filter(|n| own.iter().any(|o| o == n))
                    .map(String::from)
                    .collect()
            }
        }
    }

    fn object_count_names(&self, group: &str, resource: &str) -> Vec<String> {
        let mut v = vec![object_count_name(group, resource)];
        if group.is_empty()
            && let Some((_, alias)) = LEGACY_COUNT_ALIASES.iter().find(|(r, _)| *r == resource)
        {
            v.push((*alias).to_string());
        }
        v
    }

    /// What `obj` uses.
    pub fn usage(&self, obj: &Value, now: SystemTime) -> ResourceList {
        match self {
            Evaluator::Pods => pod_usage(obj, now),
            Evaluator::Services => service_usage(obj),
            Evaluator::PersistentVolumeClaims => pvc_usage(obj),
            Evaluator::ObjectCount { group, resource } => self
                .object_count_names(group, resource)
                .into_iter()
                .map(|n| (n, Quantity::from_value(1)))
                .collect(),
        }
    }

    /// Whether `obj` falls under one scope term. Only pods have scopes; everything else
    /// matches no scope (a scoped quota never counts it).
    pub fn matches_scope(&self, req: &ScopeRequirement, obj: &Value) -> bool {
        match self {
            Evaluator::Pods => pod_matches_scope(req, obj),
            _ => false,
        }
    }

    /// `Matches`: the quota limits something this evaluator measures (in `status.hard`)
    /// and `obj` is inside every scope term of it.
    pub fn matches(&self, quota: &Value, obj: &Value) -> bool {
        let hard = parse_list(quota.pointer("/status/hard"));
        let names: Vec<&str> = hard.keys().map(String::as_str).collect();
        if self.matching_resources(&names).is_empty() {
            return false;
        }
        scope_requirements(quota)
            .iter()
            .all(|r| self.matches_scope(r, obj))
    }

    /// The scope terms of `scopes` that `obj` falls under.
    pub fn matching_scopes(
        &self,
        scopes: &[ScopeRequirement],
        obj: &Value,
    ) -> Vec<ScopeRequirement> {
        scopes
            .iter()
            .filter(|r| self.matches_scope(r, obj))
            .cloned()
            .collect()
    }

    /// Kubernetes' pod constraint: when a quota tracks cpu or memory, every container
    /// must state it (`must specify limits.cpu for: c1; requests.memory for: c1,c2`).
    pub fn constraints<S: AsRef<str>>(&self, required: &[S], obj: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(AsRef::as_ref)
            .filter(|r| POD_CONSTRAINED.contains(r))
            .collect();
        if required.is_empty() {
            return Ok(());
        }
        let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for c in container_list(obj, "containers").chain(container_list(obj, "initContainers")) {
            let usage = compute_usage(
                &parse_list(c.pointer("/resources/requests")),
                &parse_list(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !usage.contains_key(*r) {
                    missing
                        .entry(r)
                        .or_default()
                        .insert(str_at(c, "/name").to_string());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }

    /// `UsageStats`: the usage of `items` (the namespace's objects of this evaluator's
    /// resource) within the quota's scopes, for `resources` (each starts at zero).
    pub fn usage_stats<'a>(
        &self,
        items: impl IntoIterator<Item = &'a Value>,
        scopes: &[ScopeRequirement],
        resources: &[String],
        now: SystemTime,
    ) -> ResourceList {
        let mut used: ResourceList = resources
            .iter()
            .map(|r| (r.clone(), Quantity::default()))
            .collect();
        for item in items {
            if scopes.iter().all(|s| self.matches_scope(s, item)) {
                used = add(&used, &self.usage(item, now));
            }
        }
        used
    }
}

/// The service evaluator: every Service counts, NodePort and LoadBalancer ones also their
/// node ports (only explicit ones when a load balancer allocates none), and load
/// balancers once.
fn service_usage(svc: &Value) -> ResourceList {
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as i64;
    let mut out = ResourceList::new();
    out.insert("count/services".into(), Quantity::from_value(1));
    out.insert("services".into(), Quantity::from_value(1));
    out.insert("services.loadbalancers".into(), Quantity::default());
    out.insert("services.nodeports".into(), Quantity::default());
    match str_at(svc, "/spec/type") {
        "NodePort" => {
            out.insert("services.nodeports".into(), Quantity::from_value(ports));
        }
        "LoadBalancer" => {
            let nodeports = if svc.pointer("/spec/allocateLoadBalancerNodePorts")
                == Some(&Value::Bool(false))
            {
                svc.pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count() as i64
            } else {
                ports
            };
            out.insert("services.nodeports".into(), Quantity::from_value(nodeports));
            out.insert("services.loadbalancers".into(), Quantity::from_value(1));
        }
        _ => {}
    }
    out
}

/// A claim's storage class: `spec.storageClassName`, else the beta annotation.
fn claim_class(pvc: &Value) -> &str {
    let annotated = str_at(
        pvc,
        "/metadata/annotations/volume.beta.kubernetes.io~1storage-class",
    );
    if !annotated.is_empty() {
        return annotated;
    }
    str_at(pvc, "/spec/storageClassName")
}

/// The claim evaluator: the claim, and the larger of the requested and the allocated
/// storage, also per storage class.
fn pvc_usage(pvc: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("persistentvolumeclaims".into(), Quantity::from_value(1));
    out.insert(
        "count/persistentvolumeclaims".into(),
        Quantity::from_value(1),
    );
    let class = claim_class(pvc);
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Quantity::from_value(1),
        );
    }
    let requested = parse_list(pvc.pointer("/spec/resources/requests"))
        .get("storage")
        .copied();
    let allocated = parse_list(pvc.pointer("/status/allocatedResources"))
        .get("storage")
        .copied();
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) => Some(if a > r { a } else { r }),
        (r, a) => r.or(a),
    };
    if let Some(s) = storage {
        out.insert("requests.storage".into(), s);
        if !class.is_empty() {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect(s)
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    #[test]
    fn pod_usage_sums_containers_and_takes_the_init_maximum() {
        let pod = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}],
            "initContainers": [
                {"name": "i", "resources": {"requests": {"cpu": "2"}}}]}});
        let u = pod_usage(&pod, now());
        assert_eq!(u["pods"].to_string(), "1");
        assert_eq!(u["count/pods"].to_string(), "1");
        assert_eq!(u["requests.cpu"].to_string(), "2");
        assert_eq!(u["cpu"].to_string(), "2");
        assert_eq!(u["requests.memory"].to_string(), "128Mi");
        assert_eq!(u["limits.cpu"].to_string(), "500m");
        assert!(!u.contains_key("limits.memory"));
        // Finished pods only count as objects.
        let mut done = pod.clone();
        done["status"] = json!({"phase": "Succeeded"});
        assert_eq!(
            pod_usage(&done, now()).keys().collect::<Vec<_>>(),
            ["count/pods"]
        );
    }

    #[test]
    fn sidecars_add_to_the_sum_and_to_later_init_containers() {
        let pod = json!({"spec": {
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "3"}}}]}});
        // setup runs next to the sidecar: 3.5 > 1 + 0.5.
        assert_eq!(
            pod_resources(&pod, "requests", false)["cpu"].to_string(),
            "3500m"
        );
    }

    #[test]
    fn pods_past_their_deletion_grace_are_not_charged() {
        let pod = json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 30}, "spec": {"containers": []}});
        assert!(!pod_is_charged(&pod, now()));
        let fresh = json!({"metadata": {"deletionTimestamp": crate::meta::format_time(Utc::now()),
            "deletionGracePeriodSeconds": 30}, "spec": {"containers": []}});
        assert!(pod_is_charged(&fresh, now()));
    }

    #[test]
    fn constraints_name_each_missing_resource_and_container() {
        let pod = json!({"spec": {"containers": [
            {"name": "c2", "resources": {"requests": {"cpu": "1"}}},
            {"name": "c1", "resources": {}}]}});
        assert_eq!(
            Evaluator::Pods.constraints(&["limits.cpu", "requests.cpu", "pods"], &pod),
            Err("must specify limits.cpu for: c1,c2; requests.cpu for: c1".to_string())
        );
        assert!(
            Evaluator::Pods
                .constraints(&["pods", "requests.storage"], &pod)
                .is_ok()
        );
    }

    #[test]
    fn scopes_select_pods() {
        let be = json!({"spec": {"containers": [{"name": "c"}], "priorityClassName": "high"}});
        let burst = json!({"spec": {"activeDeadlineSeconds": 10,
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}});
        let scope = |name: &str, op: &str, values: &[&str]| ScopeRequirement {
            scope_name: name.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let e = Evaluator::Pods;
        assert!(e.matches_scope(&scope("BestEffort", "Exists", &[]), &be));
        assert!(!e.matches_scope(&scope("BestEffort", "Exists", &[]), &burst));
        assert!(e.matches_scope(&scope("Terminating", "Exists", &[]), &burst));
        assert!(e.matches_scope(&scope("NotTerminating", "Exists", &[]), &be));
        assert!(e.matches_scope(&scope("PriorityClass", "In", &["high", "x"]), &be));
        assert!(!e.matches_scope(&scope("PriorityClass", "In", &["high"]), &burst));
        assert!(e.matches_scope(&scope("PriorityClass", "NotIn", &["high"]), &burst));
        assert!(e.matches_scope(&scope("PriorityClass", "DoesNotExist", &[]), &burst));
        // Only pods have scopes.
        assert!(!Evaluator::Services.matches_scope(&scope("BestEffort", "Exists", &[]), &be));
    }

    #[test]
    fn quota_matches_on_status_hard_and_every_scope() {
        let quota = json!({"spec": {"scopes": ["BestEffort"]},
            "status": {"hard": {"pods": "2"}, "used": {"pods": "0"}}});
        let be = json!({"spec": {"containers": [{"name": "c"}]}});
        let burst = json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}});
        assert!(Evaluator::Pods.matches(&quota, &be));
        assert!(!Evaluator::Pods.matches(&quota, &burst));
        let cm = Evaluator::for_resource("", "configmaps").expect("configmaps");
        assert!(!cm.matches(&quota, &json!({})));
        let unscoped = json!({"status": {"hard": {"configmaps": "1"}}});
        assert!(cm.matches(&unscoped, &json!({})));
        // Quota without status yet matches nothing.
        assert!(!Evaluator::Pods.matches(&json!({"spec": {"hard": {"pods": "1"}}}), &be));
    }

    #[test]
    fn object_counts_and_aliases() {
        let cm = Evaluator::for_resource("", "configmaps").expect("cm");
        assert_eq!(
            cm.usage(&json!({}), now()),
            list(&[("configmaps", "1"), ("count/configmaps", "1")])
        );
        let deploy = Evaluator::for_resource("apps", "deployments").expect("deploy");
        assert_eq!(
            deploy.matching_resources(&["count/deployments.apps", "pods"]),
            ["count/deployments.apps"]
        );
        assert_eq!(
            Evaluator::for_quota_resource("count/deployments.apps"),
            Some(deploy)
        );
        assert_eq!(
            Evaluator::for_quota_resource("count/widgets.example.com"),
            Evaluator::for_resource("example.com", "widgets")
        );
        assert_eq!(
            Evaluator::for_quota_resource("secrets"),
            Evaluator::for_resource("", "secrets")
        );
        assert_eq!(
            Evaluator::for_quota_resource("requests.cpu"),
            Some(Evaluator::Pods)
        );
        assert_eq!(
            Evaluator::for_quota_resource("count/pods"),
            Some(Evaluator::Pods)
        );
        assert_eq!(
            Evaluator::for_quota_resource("gold.storageclass.storage.k8s.io/requests.storage"),
            Some(Evaluator::PersistentVolumeClaims)
        );
        assert_eq!(
            Evaluator::for_quota_resource("services.nodeports"),
            Some(Evaluator::Services)
        );
        assert!(Evaluator::for_resource("", "events").is_none());
    }

    #[test]
    fn services_count_node_ports_and_load_balancers() {
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let u = service_usage(&lb);
        assert_eq!(u["services.nodeports"].to_string(), "2");
        assert_eq!(u["services.loadbalancers"].to_string(), "1");
        let no_np = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}});
        assert_eq!(service_usage(&no_np)["services.nodeports"].to_string(), "1");
        let cip = service_usage(&json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}));
        assert!(cip["services.nodeports"].is_zero());
    }

    #[test]
    fn claims_charge_storage_per_class() {
        let pvc = json!({"spec": {"storageClassName": "gold",
            "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"allocatedResources": {"storage": "2Gi"}}});
        let u = pvc_usage(&pvc);
        assert_eq!(u["requests.storage"].to_string(), "2Gi");
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/requests.storage"].to_string(),
            "2Gi"
        );
        assert_eq!(
            u["gold.storageclass.storage.k8s.io/persistentvolumeclaims"].to_string(),
            "1"
        );
    }

    #[test]
    fn resource_list_arithmetic_matches_quota_helpers() {
        let used = list(&[("pods", "2"), ("requests.memory", "128Mi")]);
        let req = list(&[("pods", "1"), ("requests.memory", "128Mi")]);
        let sum = add(&used, &req);
        assert_eq!(pretty_print(&sum), "pods=3,requests.memory=256Mi");
        let hard = list(&[("pods", "2"), ("requests.memory", "1Gi")]);
        assert_eq!(
            less_than_or_equal(&sum, &hard),
            (false, vec!["pods".to_string()])
        );
        assert_eq!(
            pretty_print(&subtract_non_negative(&req, &used)),
            "pods=0,requests.memory=0"
        );
        assert_eq!(pretty_print(&mask(&sum, &["pods"])), "pods=3");
        assert_eq!(
            pretty_print(&remove_zeros(&list(&[("a", "0"), ("b", "1")]))),
            "b=1"
        );
        assert_eq!(negative_names(&list(&[("a", "-1"), ("b", "1")])), ["a"]);
        assert_eq!(to_json(&list(&[("cpu", "1000m")])), json!({"cpu": "1"}));
        assert!(equals(&list(&[("cpu", "1")]), &list(&[("cpu", "1000m")])));
        assert_eq!(
            pretty_print(&max(&list(&[("a", "1")]), &list(&[("a", "2"), ("b", "1")]))),
            "a=2,b=1"
        );
    }
}
