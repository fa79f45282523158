//! PodSecurity admission: each namespace's `pod-security.kubernetes.io/<mode>` labels
//! (`enforce`, `audit`, `warn`, each with a `-version`) pick a Pod Security Standards level
//! (`privileged`, `baseline`, `restricted`) and version (`latest` unless pinned) per mode.
//! Pods that fail the `enforce` level are refused with 403; failures of the `warn` level
//! come back as `Warning` headers. Pod controllers' templates (Deployments, ReplicaSets,
//! StatefulSets, DaemonSets, Jobs, CronJobs, ReplicationControllers, PodTemplates) are
//! warned about only: their pods meet `enforce` when they are created.
//!
//! As in Kubernetes, unlabelled namespaces are `privileged` in every mode and no namespace,
//! user or runtime class is exempt by default — `kube-system` is not special. Invalid labels
//! are refused on namespace writes (422) and read as `restricted:latest` for enforcement
//! (warn and audit fail open to `privileged`). Raising a namespace's enforce level warns about
//! the pods already there that the new level would refuse.
//!
//! The `audit` mode is parsed but records nothing yet: kadm's admission chain has no way to
//! add annotations to the request's audit event.
//!
//! The checks themselves are in [`checks`].

pub mod checks;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kadm_apimachinery::{ApiError, Cause, ResourceInfo, meta, registry};
use serde_json::{Map, Value, json};

use self::checks::{Level, LevelVersion, Version};
use super::{Operation, Outcome, Request, lookup};
use crate::server::State;

pub const NAME: &str = "PodSecurity";

pub const ENFORCE_LEVEL_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT_LEVEL_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN_LEVEL_LABEL: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// Kubernetes looks at most at this many existing pods when a namespace's level rises…
const NAMESPACE_MAX_PODS_TO_CHECK: usize = 3000;
/// …for at most this long.
const NAMESPACE_POD_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A namespace's policy: one level and version per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Policy {
    /// The default when no label says otherwise: `privileged:latest` everywhere.
    pub fn privileged() -> Policy {
        let p = LevelVersion {
            level: Level::Privileged,
            version: Version::Latest,
        };
        Policy {
            enforce: p,
            audit: p,
            warn: p,
        }
    }

    fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }
}

/// The policy a namespace's labels select, and the labels' errors (Kubernetes'
/// `PolicyToEvaluate`): an invalid enforce level reads as `restricted`, an invalid audit or
/// warn level as `privileged`, an invalid version as `latest`. Without a warn label, warn
/// follows a stricter enforce label (level, and version unless `warn-version` is set), so
/// setting only `enforce` warns about workloads whose pods it will refuse (Kubernetes 1.26+).
pub fn policy_from_labels(labels: &Map<String, Value>) -> (Policy, Vec<Cause>) {
    let mut p = Policy::privileged();
    let mut errors = Vec::new();
    let get = |label: &str| {
        labels
            .get(label)
            .map(|v| v.as_str().unwrap_or("").to_string())
    };
    let level = |label: &str, on_error: Level, errors: &mut Vec<Cause>| -> Option<Level> {
        let v = get(label)?;
        Some(Level::parse(&v).unwrap_or_else(|| {
            errors.push(Cause::invalid(
                format!("metadata.labels[{label}]"),
                &json!(v),
                "must be one of privileged, baseline, restricted",
            ));
            on_error
        }))
    };
    let version = |label: &str, errors: &mut Vec<Cause>| -> Option<Version> {
        let v = labels
            .get(label)
            .map(|v| v.as_str().unwrap_or("").to_string())?;
        Some(Version::parse(&v).unwrap_or_else(|| {
            errors.push(Cause::invalid(
                format!("metadata.labels[{label}]"),
                &json!(v),
                "must be \"latest\" or \"v1.x\"",
            ));
            Version::Latest
        }))
    };
    if let Some(l) = level(ENFORCE_LEVEL_LABEL, Level::Restricted, &mut errors) {
        p.enforce.level = l;
    }
    if let Some(v) = version(ENFORCE_VERSION_LABEL, &mut errors) {
        p.enforce.version = v;
    }
    if let Some(l) = level(AUDIT_LEVEL_LABEL, Level::Privileged, &mut errors) {
        p.audit.level = l;
    }
    if let Some(v) = version(AUDIT_VERSION_LABEL, &mut errors) {
        p.audit.version = v;
    }
    if let Some(l) = level(WARN_LEVEL_LABEL, Level::Privileged, &mut errors) {
        p.warn.level = l;
    }
    if let Some(v) = version(WARN_VERSION_LABEL, &mut errors) {
        p.warn.version = v;
    }
    if !labels.contains_key(WARN_LEVEL_LABEL)
        && labels.contains_key(ENFORCE_LEVEL_LABEL)
        && p.enforce.level.rank() > p.warn.level.rank()
    {
        p.warn.level = p.enforce.level;
        if !labels.contains_key(WARN_VERSION_LABEL) {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errors)
}

/// What evaluating one pod (or template) against a namespace's policy yields.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The enforce level's refusal: `violates PodSecurity "<level:version>": …`.
    pub forbidden: Option<String>,
    /// `would violate PodSecurity "<level:version>": …` for the warn level.
    pub warnings: Vec<String>,
    /// The same text for the audit level (what Kubernetes records as the audit
    /// annotation `pod-security.kubernetes.io/audit-violations`).
    pub audit: Option<String>,
}

/// Evaluates a pod (`enforce`) or a pod template (no enforcement) against a policy.
pub fn evaluate(policy: &Policy, meta: &ObjectMeta, spec: &PodSpec, enforce: bool) -> Verdict {
    let mut cache: HashMap<LevelVersion, Vec<checks::Violation>> = HashMap::new();
    let mut result = |lv: LevelVersion| {
        cache
            .entry(lv)
            .or_insert_with(|| checks::evaluate(lv, meta, spec))
            .clone()
    };
    let mut v = Verdict::default();
    if enforce {
        let r = result(policy.enforce);
        if !r.is_empty() {
            v.forbidden = Some(format!(
                "violates PodSecurity \"{}\": {}",
                policy.enforce,
                checks::aggregate_detail(&r)
            ));
        }
    }
    let r = result(policy.audit);
    if !r.is_empty() {
        v.audit = Some(format!(
            "would violate PodSecurity \"{}\": {}",
            policy.audit,
            checks::aggregate_detail(&r)
        ));
    }
    // No warnings on a request that is refused anyway.
    if v.forbidden.is_none() {
        let r = result(policy.warn);
        if !r.is_empty() {
            v.warnings.push(format!(
                "would violate PodSecurity \"{}\": {}",
                policy.warn,
                checks::aggregate_detail(&r)
            ));
        }
    }
    v
}

/// Pod controllers whose template is evaluated, and where the template is.
fn template_pointer(res: &ResourceInfo) -> Option<&'static str> {
    match (res.group, res.plural) {
        ("", "replicationcontrollers")
        | ("apps", "replicasets" | "deployments" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some("/spec/template"),
        ("batch", "cronjobs") => Some("/spec/jobTemplate/spec/template"),
        ("", "podtemplates") => Some("/template"),
        _ => None,
    }
}

/// Decodes a pod's (or template's) metadata and spec.
fn decode(template: &Value) -> Result<(ObjectMeta, PodSpec), serde_json::Error> {
    let meta: ObjectMeta =
        serde_json::from_value(template.get("metadata").cloned().unwrap_or(json!({})))?;
    let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
    if let Some(o) = spec.as_object_mut() {
        o.entry("containers").or_insert(json!([]));
    }
    Ok((meta, serde_json::from_value(spec)?))
}

/// Whether a pod update changes what the checks look at (Kubernetes' `isSignificantPodUpdate`:
/// only images, and ephemeral containers, can change on a running pod).
fn significant_pod_update(new: &Value, old: &Value) -> bool {
    fn list<'a>(p: &'a Value, k: &str) -> &'a [Value] {
        p.pointer(&format!("/spec/{k}"))
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
    let image = |c: &Value| c.get("image").cloned();
    let name = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let seccomp = |p: &Value, c: &Value| {
        p.pointer("/metadata/annotations")
            .and_then(|a| {
                a.get(format!(
                    "container.seccomp.security.alpha.kubernetes.io/{}",
                    name(c)
                ))
            })
            .cloned()
    };
    for k in ["containers", "initContainers"] {
        let (a, b) = (list(new, k), list(old, k));
        if a.len() != b.len() {
            return true;
        }
        if a.iter()
            .zip(b)
            .any(|(x, y)| image(x) != image(y) || seccomp(new, x) != seccomp(old, x))
        {
            return true;
        }
    }
    let old_eph = list(old, "ephemeralContainers");
    list(new, "ephemeralContainers").iter().any(|c| {
        match old_eph.iter().find(|o| name(o) == name(c)) {
            None => true,
            Some(o) => image(o) != image(c) || seccomp(new, c) != seccomp(old, c),
        }
    })
}

/// Pod subresources that cannot change what the checks look at.
const IGNORED_POD_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// The warnings for raising a namespace's enforce level: which existing pods it would
/// refuse, grouped by reasons (Kubernetes' `EvaluatePodsInNamespace`). One pod per
/// controller is looked at first, at most [`NAMESPACE_MAX_PODS_TO_CHECK`] pods, for at most
/// `budget`.
pub fn existing_pod_warnings(
    namespace: &str,
    enforce: LevelVersion,
    pods: Vec<Value>,
    budget: Duration,
) -> Vec<String> {
    let started = Instant::now();
    // One pod of each controller first, the other replicas after.
    let mut seen_controllers = std::collections::HashSet::new();
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for p in pods {
        let controller = p
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|o| o.iter().find(|r| r.get("controller") == Some(&json!(true))))
            .and_then(|r| r.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        match controller {
            Some(uid) if !seen_controllers.insert(uid.clone()) => rest.push(p),
            _ => first.push(p),
        }
    }
    first.extend(rest);
    let total = first.len();
    let mut checked = total.min(NAMESPACE_MAX_PODS_TO_CHECK);
    // reasons → (lexically first pod name, how many pods)
    let mut by_reason: Vec<(String, String, usize)> = Vec::new();
    for (i, p) in first.iter().take(NAMESPACE_MAX_PODS_TO_CHECK).enumerate() {
        if let Ok((m, s)) = decode(p) {
            let v = checks::evaluate(enforce, &m, &s);
            if !v.is_empty() {
                let reason = checks::aggregate_reason(&v);
                let name = meta::name(p).to_string();
                match by_reason.iter_mut().find(|(r, _, _)| *r == reason) {
                    Some((_, first_name, n)) => {
                        *n += 1;
                        if name < *first_name {
                            *first_name = name;
                        }
                    }
                    None => by_reason.push((reason, name, 1)),
                }
            }
        }
        if started.elapsed() > budget {
            checked = i + 1;
            break;
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !by_reason.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level \"{enforce}\""
        ));
    }
    let mut pods: Vec<String> = by_reason
        .into_iter()
        .map(|(reason, name, n)| match n {
            1 => format!("{name}: {reason}"),
            2 => format!("{name} (and 1 other pod): {reason}"),
            n => format!("{name} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    pods.sort();
    warnings.extend(pods);
    warnings
}

fn labels_of(obj: &Value) -> Map<String, Value> {
    meta::labels(obj).cloned().unwrap_or_default()
}

/// A namespace write: labels must be valid; a stricter enforce level warns about the pods
/// it would refuse.
fn validate_namespace(
    state: &State,
    req: &Request<'_>,
    obj: &Value,
    out: &mut Outcome,
) -> Result<(), ApiError> {
    let name = meta::name(obj);
    let (new, new_errors) = policy_from_labels(&labels_of(obj));
    let invalid = |errors: Vec<Cause>| ApiError::invalid("", "Namespace", name, errors);
    match req.operation {
        Operation::Create => {
            if !new_errors.is_empty() {
                return Err(invalid(new_errors));
            }
        }
        Operation::Update => {
            let Some(old_obj) = req.old else {
                return Ok(());
            };
            let (old, old_errors) = policy_from_labels(&labels_of(old_obj));
            if !new_errors.is_empty() && (old_errors.is_empty() || new_errors != old_errors) {
                return Err(invalid(new_errors));
            }
            let relaxed_or_same = new.enforce.version == old.enforce.version
                && new.enforce.level.rank() <= old.enforce.level.rank();
            if new.enforce == old.enforce
                || new.enforce.level == Level::Privileged
                || relaxed_or_same
            {
                return Ok(());
            }
            out.warnings.extend(existing_pod_warnings(
                name,
                new.enforce,
                namespace_pods(state, name),
                NAMESPACE_POD_CHECK_TIMEOUT,
            ));
        }
        Operation::Delete => {}
    }
    Ok(())
}

/// The pods of a namespace, from the watch cache.
fn namespace_pods(state: &State, namespace: &str) -> Vec<Value> {
    let Some(res) = registry::lookup("", "v1", "pods") else {
        return Vec::new();
    };
    let Some(cacher) = state.cache.cacher(res) else {
        return Vec::new();
    };
    let scope = format!("{}{namespace}/", cacher.prefix);
    cacher
        .list(&scope, 0, |_| true)
        .items
        .iter()
        .map(|e| e.value())
        .collect()
}

/// A namespace's labels: from the watch cache (as Kubernetes reads its informer), else etcd.
async fn namespace_labels(state: &State, namespace: &str) -> Result<Map<String, Value>, ApiError> {
    let res = lookup::resource("", "namespaces")?;
    let ns = lookup::get(state, res, "", namespace)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::internal(format!("failed to lookup namespace {namespace:?}")))?;
    Ok(labels_of(&ns))
}

/// The validating phase of PodSecurity.
pub async fn validate(
    state: &State,
    req: &Request<'_>,
    obj: Option<&Value>,
    out: &mut Outcome,
) -> Result<(), ApiError> {
    let Some(obj) = obj else { return Ok(()) };
    if req.operation == Operation::Delete {
        return Ok(());
    }
    let res = req.res;
    if res.group.is_empty() && res.plural == "namespaces" {
        if !req.subresource.is_empty() {
            return Ok(());
        }
        return validate_namespace(state, req, obj, out);
    }
    let is_pod = res.group.is_empty() && res.plural == "pods";
    let template = if is_pod {
        if IGNORED_POD_SUBRESOURCES.contains(&req.subresource) {
            return Ok(());
        }
        obj
    } else {
        let Some(pointer) = template_pointer(res) else {
            return Ok(());
        };
        if !req.subresource.is_empty() {
            return Ok(());
        }
        match obj.pointer(pointer) {
            Some(t) if !t.is_null() => t,
            _ => return Ok(()),
        }
    };
    // Only images (and ephemeral containers) change on a running pod: any other update
    // is admitted without looking at the namespace (Kubernetes checks this first too).
    if is_pod
        && req.operation == Operation::Update
        && req.old.is_some_and(|old| !significant_pod_update(obj, old))
    {
        return Ok(());
    }
    let labels = match namespace_labels(state, req.namespace).await {
        Ok(l) => l,
        // A controller is admitted when its namespace cannot be read; a pod is not.
        Err(e) if is_pod => return Err(e),
        Err(_) => return Ok(()),
    };
    let (policy, errors) = policy_from_labels(&labels);
    if errors.is_empty()
        && (policy.fully_privileged()
            || (!is_pod
                && policy.warn.level == Level::Privileged
                && policy.audit.level == Level::Privileged))
    {
        return Ok(());
    }
    let (meta, spec) = match decode(template) {
        Ok(d) => d,
        Err(_) if !is_pod => return Ok(()),
        Err(e) => {
            return Err(ApiError::bad_request(format!("failed to decode pod: {e}")));
        }
    };
    let verdict = evaluate(&policy, &meta, &spec, is_pod);
    if let Some(message) = verdict.forbidden {
        return Err(ApiError::forbidden(
            res.group, res.plural, req.name, &message,
        ));
    }
    if let Some(audit) = &verdict.audit {
        tracing::debug!(namespace = %req.namespace, name = %req.name, violations = %audit, "pod-security audit level violated");
    }
    out.warnings.extend(verdict.warnings);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn pod(spec: Value) -> (ObjectMeta, PodSpec) {
        decode(&json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn labels_select_levels_and_versions() {
        let (p, errs) = policy_from_labels(&labels(json!({
            ENFORCE_LEVEL_LABEL: "restricted", WARN_LEVEL_LABEL: "baseline", WARN_VERSION_LABEL: "v1.24"})));
        assert!(errs.is_empty());
        assert_eq!(p.enforce.to_string(), "restricted:latest");
        assert_eq!(p.warn.to_string(), "baseline:v1.24");
        assert_eq!(p.audit.to_string(), "privileged:latest");
        let (p, _) = policy_from_labels(&Map::new());
        assert_eq!(p, Policy::privileged());
    }

    #[test]
    fn warn_follows_a_stricter_enforce_label_unless_set() {
        let (p, _) = policy_from_labels(&labels(json!({
            ENFORCE_LEVEL_LABEL: "baseline", ENFORCE_VERSION_LABEL: "v1.30"})));
        assert_eq!(p.warn.to_string(), "baseline:v1.30");
        let (p, _) = policy_from_labels(&labels(json!({
            ENFORCE_LEVEL_LABEL: "restricted", WARN_VERSION_LABEL: "v1.29"})));
        assert_eq!(p.warn.to_string(), "restricted:v1.29");
        let (p, _) = policy_from_labels(&labels(json!({
            ENFORCE_LEVEL_LABEL: "restricted", WARN_LEVEL_LABEL: "privileged"})));
        assert_eq!(p.warn.to_string(), "privileged:latest");
    }

    #[test]
    fn invalid_labels_fail_closed_for_enforce_and_open_for_warn() {
        let (p, errs) = policy_from_labels(&labels(json!({
            ENFORCE_LEVEL_LABEL: "strict", WARN_LEVEL_LABEL: "loud", AUDIT_VERSION_LABEL: "1.25"})));
        assert_eq!(p.enforce.level, Level::Restricted);
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(errs.len(), 3);
        let e = ApiError::invalid("", "Namespace", "x", errs);
        assert!(e.message.starts_with(
            r#"Namespace "x" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted, "#
        ), "{}", e.message);
        assert!(e.message.contains(
            r#"metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "1.25": must be "latest" or "v1.x""#
        ));
    }

    #[test]
    fn enforce_refuses_warn_warns_and_refusals_carry_no_warnings() {
        let (p, _) = policy_from_labels(&labels(
            json!({ENFORCE_LEVEL_LABEL: "baseline", WARN_LEVEL_LABEL: "restricted"}),
        ));
        let (m, s) = pod(json!({"hostNetwork": true, "containers": [{"name": "c"}]}));
        let v = evaluate(&p, &m, &s, true);
        assert_eq!(
            v.forbidden.as_deref(),
            Some(r#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#)
        );
        assert!(v.warnings.is_empty());
        let (m, s) = pod(
            json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}}]}),
        );
        assert_eq!(evaluate(&p, &m, &s, true), Verdict::default());
        let (m, s) = pod(json!({"containers": [{"name": "c"}]}));
        let v = evaluate(&p, &m, &s, true);
        assert_eq!(v.forbidden, None);
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].starts_with(
            r#"would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set"#
        ));
    }

    #[test]
    fn templates_are_never_enforced() {
        let (p, _) = policy_from_labels(&labels(
            json!({ENFORCE_LEVEL_LABEL: "restricted", WARN_LEVEL_LABEL: "baseline"}),
        ));
        let (m, s) = pod(json!({"hostPID": true, "containers": [{"name": "c"}]}));
        let v = evaluate(&p, &m, &s, false);
        assert_eq!(v.forbidden, None);
        assert_eq!(
            v.warnings,
            vec![
                r#"would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)"#
                    .to_string()
            ]
        );
        let deploy = registry::lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(template_pointer(deploy), Some("/spec/template"));
        let cj = registry::lookup("batch", "v1", "cronjobs").unwrap();
        assert_eq!(
            template_pointer(cj),
            Some("/spec/jobTemplate/spec/template")
        );
        assert_eq!(
            template_pointer(registry::lookup("", "v1", "configmaps").unwrap()),
            None
        );
    }

    #[test]
    fn only_image_and_ephemeral_changes_are_significant() {
        let p = json!({"spec": {"containers": [{"name": "c", "image": "a"}]}});
        let mut relabelled = p.clone();
        relabelled["metadata"] = json!({"labels": {"x": "y"}});
        assert!(!significant_pod_update(&relabelled, &p));
        let mut new_image = p.clone();
        new_image["spec"]["containers"][0]["image"] = json!("b");
        assert!(significant_pod_update(&new_image, &p));
        let mut debug = p.clone();
        debug["spec"]["ephemeralContainers"] = json!([{"name": "d", "image": "busybox"}]);
        assert!(significant_pod_update(&debug, &p));
    }

    #[test]
    fn existing_pods_are_grouped_by_reasons() {
        let enforce = LevelVersion {
            level: Level::Baseline,
            version: Version::Latest,
        };
        let host = |n: &str| json!({"metadata": {"name": n}, "spec": {"hostNetwork": true, "containers": [{"name": "c"}]}});
        let ok = json!({"metadata": {"name": "fine"}, "spec": {"containers": [{"name": "c"}]}});
        let priv_ = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}});
        let w = existing_pod_warnings(
            "team",
            enforce,
            vec![host("b"), ok, host("a"), priv_, host("c")],
            Duration::from_secs(5),
        );
        assert_eq!(
            w,
            vec![
                r#"existing pods in namespace "team" violate the new PodSecurity enforce level "baseline:latest""#.to_string(),
                "a (and 2 other pods): host namespaces".to_string(),
                "p: privileged".to_string(),
            ]
        );
    }
}
