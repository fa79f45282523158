//! LimitRanger: the namespace's LimitRanges fill in container requests and limits that a
//! new pod leaves out (`type: Container` `defaultRequest` / `default`, recorded in the
//! `kubernetes.io/limit-ranger` annotation) and refuse pods and claims outside their
//! bounds: per container and per pod `min`, `max` and `maxLimitRequestRatio`, per claim
//! storage `min` and `max` — 403 with Kubernetes' messages (`maximum cpu usage per
//! Container is 1, but limit is 2`).
//!
//! As in Kubernetes, pods are checked on create only (their containers cannot change),
//! claims on create and update, and objects being deleted not at all.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kadm_apimachinery::quantity::Quantity;
use kadm_apimachinery::quota::{self, ResourceList};
use kadm_apimachinery::{ApiError, defaults};
use serde_json::{Map, Value, json};

use super::{Operation, Request, lookup};
use crate::server::State;

/// Where the plugin records the defaults it applied.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// `resource.MaxMilliValue`: beyond it comparisons fall back to whole units.
const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

/// Pods (create) and claims (create, update), not subresources, not what is being deleted.
fn applies(req: &Request<'_>) -> bool {
    if !req.subresource.is_empty() || !req.res.group.is_empty() {
        return false;
    }
    if req
        .old
        .is_some_and(|o| kadm_apimachinery::meta::deletion_timestamp(o).is_some())
    {
        return false;
    }
    matches!(
        (req.res.plural, req.operation),
        ("pods", Operation::Create)
            | (
                "persistentvolumeclaims",
                Operation::Create | Operation::Update
            )
    )
}

/// How long a live lookup of a namespace without cached LimitRanges is reused.
const LIVE_LOOKUP_TTL: Duration = Duration::from_secs(30);

/// Kubernetes' live lookups: when the watch cache has no LimitRange in a namespace (none
/// exists, or one was created a moment ago and the cache is behind), etcd is asked, and
/// the answer is reused for [`LIVE_LOOKUP_TTL`] so that namespaces without LimitRanges
/// do not cost an etcd read per pod.
#[derive(Debug, Clone, Default)]
pub struct LiveLookups(Arc<Mutex<HashMap<String, LiveLookup>>>);

/// When a namespace's LimitRanges were read from etcd, and what they were.
type LiveLookup = (Instant, Vec<Value>);

impl LiveLookups {
    fn get(&self, namespace: &str) -> Option<Vec<Value>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(namespace)
            .filter(|(at, _)| at.elapsed() < LIVE_LOOKUP_TTL)
            .map(|(_, items)| items.clone())
    }

    fn put(&self, namespace: &str, items: Vec<Value>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| at.elapsed() < LIVE_LOOKUP_TTL);
        }
        map.insert(namespace.to_string(), (Instant::now(), items));
    }
}

async fn limit_ranges(state: &State, req: &Request<'_>) -> Result<Vec<Value>, ApiError> {
    let res = lookup::resource("", "limitranges")?;
    let cached = lookup::list(state, res, req.namespace).await?;
    if !cached.is_empty() {
        return Ok(cached);
    }
    let live = &state.admission.limit_ranges;
    if let Some(items) = live.get(req.namespace) {
        return Ok(items);
    }
    let items = lookup::list_live(state, res, req.namespace).await?;
    live.put(req.namespace, items.clone());
    Ok(items)
}

/// The mutating half: default the requests and limits of a new pod's containers.
pub async fn mutate(state: &State, req: &Request<'_>, obj: &mut Value) -> Result<(), ApiError> {
    if !applies(req) || req.res.plural != "pods" {
        return Ok(());
    }
    let ranges = limit_ranges(state, req).await?;
    let mut changed = false;
    for range in &ranges {
        changed |= default_pod_resources(range, obj);
    }
    if changed {
        // Kubernetes computes the QoS class after mutating admission; kadm's create
        // strategy ran before it, so the class follows the defaults here.
        let qos = defaults::qos_class(obj);
        if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("qosClass".into(), json!(qos));
        }
    }
    Ok(())
}

/// The validating half: refuse what is outside a LimitRange.
pub async fn validate(state: &State, req: &Request<'_>, obj: &Value) -> Result<(), ApiError> {
    if !applies(req) {
        return Ok(());
    }
    for range in limit_ranges(state, req).await? {
        let errors = match req.res.plural {
            "pods" => validate_pod(&range, obj),
            _ => validate_claim(&range, obj),
        };
        if !errors.is_empty() {
            return Err(ApiError::forbidden(
                req.res.group,
                req.res.plural,
                req.name,
                &aggregate(&errors),
            ));
        }
    }
    Ok(())
}

/// `utilerrors.NewAggregate(...).Error()`: one message as is, several deduplicated in
/// brackets.
fn aggregate(errors: &[String]) -> String {
    let mut seen = BTreeSet::new();
    let unique: Vec<&String> = errors.iter().filter(|e| seen.insert(*e)).collect();
    match unique.as_slice() {
        [one] => (*one).clone(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn items<'a>(range: &'a Value, ty: &'a str) -> impl Iterator<Item = &'a Value> {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |l| l.get("type").and_then(Value::as_str) == Some(ty))
}

/// The raw (as written) `default` / `defaultRequest` of a range's Container items.
fn container_defaults(range: &Value, field: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for item in items(range, "Container") {
        if let Some(m) = item.get(field).and_then(Value::as_object) {
            for (k, v) in m {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Applies one range's container defaults to every container and init container that
/// lacks them; returns whether anything was set (and annotates the pod with what).
fn default_pod_resources(range: &Value, pod: &mut Value) -> bool {
    let limits = container_defaults(range, "default");
    let requests = container_defaults(range, "defaultRequest");
    if limits.is_empty() && requests.is_empty() {
        return false;
    }
    let mut notes = Vec::new();
    for (list, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let resources = c.entry("resources").or_insert_with(|| json!({}));
            let Some(resources) = resources.as_object_mut() else {
                continue;
            };
            let mut fill = |field: &str, defaults: &Map<String, Value>| {
                let target = resources.entry(field).or_insert_with(|| json!({}));
                if target.is_null() {
                    *target = json!({});
                }
                let mut set: Vec<String> = Vec::new();
                if let Some(t) = target.as_object_mut() {
                    for (k, v) in defaults {
                        if !t.contains_key(k) {
                            t.insert(k.clone(), json!(quantity_string(v)));
                            set.push(k.clone());
                        }
                    }
                }
                if target.as_object().is_some_and(Map::is_empty) {
                    resources.remove(field);
                }
                set.sort();
                set
            };
            let set_limits = fill("limits", &limits);
            let set_requests = fill("requests", &requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {what} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
            }
        }
    }
    if notes.is_empty() {
        return false;
    }
    let meta = kadm_apimachinery::meta::metadata_mut(pod);
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            ANNOTATION.into(),
            json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
        );
    }
    true
}

/// A quantity as Kubernetes writes it back (canonical), or the value as it was.
fn quantity_string(v: &Value) -> String {
    v.as_str()
        .map(kadm_apimachinery::quantity::canonical)
        .unwrap_or_default()
}

fn list_at(v: &Value, pointer: &str) -> ResourceList {
    quota::parse_list(v.pointer(pointer))
}

/// `requestLimitEnforcedValues`: milli-units where nothing overflows, else units.
fn enforced_values(
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
    enforced: &Quantity,
) -> (i64, i64, i64) {
    let zero = Quantity::default();
    let (r, l) = (request.unwrap_or(&zero), limit.unwrap_or(&zero));
    if r.value() <= MAX_MILLI_VALUE
        && l.value() <= MAX_MILLI_VALUE
        && enforced.value() <= MAX_MILLI_VALUE
    {
        (r.milli_value(), l.milli_value(), enforced.milli_value())
    } else {
        (r.value(), l.value(), enforced.value())
    }
}

/// `minConstraint`.
fn min_constraint(
    ty: &str,
    name: &str,
    enforced: &Quantity,
    request: &ResourceList,
    limit: &ResourceList,
) -> Option<String> {
    let (req, lim) = (request.get(name), limit.get(name));
    let (r, l, e) = enforced_values(req, lim, enforced);
    match req {
        None => Some(format!(
            "minimum {name} usage per {ty} is {enforced}.  No request is specified"
        )),
        Some(q) if r < e => Some(format!(
            "minimum {name} usage per {ty} is {enforced}, but request is {q}"
        )),
        _ => match lim {
            Some(q) if l < e => Some(format!(
                "minimum {name} usage per {ty} is {enforced}, but limit is {q}"
            )),
            _ => None,
        },
    }
}

/// `maxConstraint`.
fn max_constraint(
    ty: &str,
    name: &str,
    enforced: &Quantity,
    request: &ResourceList,
    limit: &ResourceList,
) -> Option<String> {
    let (req, lim) = (request.get(name), limit.get(name));
    let (r, l, e) = enforced_values(req, lim, enforced);
    match lim {
        None => Some(format!(
            "maximum {name} usage per {ty} is {enforced}.  No limit is specified"
        )),
        Some(q) if l > e => Some(format!(
            "maximum {name} usage per {ty} is {enforced}, but limit is {q}"
        )),
        _ => match req {
            Some(q) if r > e => Some(format!(
                "maximum {name} usage per {ty} is {enforced}, but request is {q}"
            )),
            _ => None,
        },
    }
}

/// `maxRequestConstraint` (claims: only requests count).
fn max_request_constraint(
    ty: &str,
    name: &str,
    enforced: &Quantity,
    request: &ResourceList,
) -> Option<String> {
    let req = request.get(name);
    let (r, _, e) = enforced_values(req, None, enforced);
    match req {
        None => Some(format!(
            "maximum {name} usage per {ty} is {enforced}.  No request is specified"
        )),
        Some(q) if r > e => Some(format!(
            "maximum {name} usage per {ty} is {enforced}, but request is {q}"
        )),
        _ => None,
    }
}

/// `limitRequestRatioConstraint`.
fn ratio_constraint(
    ty: &str,
    name: &str,
    enforced: &Quantity,
    request: &ResourceList,
    limit: &ResourceList,
) -> Option<String> {
    let (req, lim) = (request.get(name), limit.get(name));
    let (r, l, _) = enforced_values(req, lim, enforced);
    if req.is_none() || r == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {ty} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if lim.is_none() || l == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {ty} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let shown = l as f64 / r as f64;
    let (observed, max) = if enforced.value() <= MAX_MILLI_VALUE {
        (shown * 1000.0, enforced.milli_value() as f64)
    } else {
        (shown, enforced.value() as f64)
    };
    (observed > max).then(|| {
        format!(
            "{name} max limit to request ratio per {ty} is {enforced}, but provided ratio is {shown:.6}"
        )
    })
}

/// Min, max and ratio of one item against one set of requests and limits.
fn check_item(
    item: &Value,
    ty: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, q) in list_at(item, "/min") {
        errors.extend(min_constraint(ty, &name, &q, requests, limits));
    }
    for (name, q) in list_at(item, "/max") {
        errors.extend(max_constraint(ty, &name, &q, requests, limits));
    }
    for (name, q) in list_at(item, "/maxLimitRequestRatio") {
        errors.extend(ratio_constraint(ty, &name, &q, requests, limits));
    }
}

/// `PodValidateLimitFunc`: Container items against each container and init container,
/// Pod items against the pod's totals (sidecars and init containers counted as the
/// scheduler counts them).
fn validate_pod(range: &Value, pod: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for item in items(range, "Container") {
        for list in ["containers", "initContainers"] {
            for c in pod
                .pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                check_item(
                    item,
                    "Container",
                    &list_at(c, "/resources/requests"),
                    &list_at(c, "/resources/limits"),
                    &mut errors,
                );
            }
        }
    }
    for item in items(range, "Pod") {
        check_item(
            item,
            "Pod",
            &quota::pod_resources(pod, "requests", false),
            &quota::pod_resources(pod, "limits", false),
            &mut errors,
        );
    }
    errors
}

/// `PersistentVolumeClaimValidateLimitFunc`: storage requests within min and max.
fn validate_claim(range: &Value, pvc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let requests = list_at(pvc, "/spec/resources/requests");
    for item in items(range, "PersistentVolumeClaim") {
        for (name, q) in list_at(item, "/min") {
            errors.extend(min_constraint(
                "PersistentVolumeClaim",
                &name,
                &q,
                &requests,
                &ResourceList::new(),
            ));
        }
        for (name, q) in list_at(item, "/max") {
            errors.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &name,
                &q,
                &requests,
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}})
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}, "status": {"phase": "Pending"}})
    }

    #[test]
    fn defaults_fill_missing_requests_and_limits_and_are_annotated() {
        let lr = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
        let mut p = pod(json!([
            {"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}},
            {"name": "b", "image": "x"}]));
        assert!(default_pod_resources(&lr, &mut p));
        let a = &p["spec"]["containers"][0]["resources"];
        assert_eq!(a["limits"], json!({"cpu": "1", "memory": "256Mi"}));
        assert_eq!(a["requests"], json!({"cpu": "1", "memory": "128Mi"}));
        let b = &p["spec"]["containers"][1]["resources"];
        assert_eq!(b["limits"], json!({"cpu": "500m", "memory": "256Mi"}));
        assert_eq!(b["requests"], json!({"cpu": "100m", "memory": "128Mi"}));
        assert_eq!(
            p["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: memory request for container a; memory limit for container a; \
             cpu, memory request for container b; cpu, memory limit for container b"
        );
        // Nothing left to default: no change, no annotation rewrite.
        let again = p.clone();
        assert!(!default_pod_resources(&lr, &mut p));
        assert_eq!(p, again);
    }

    #[test]
    fn container_bounds_use_kubernetes_messages() {
        let lr =
            range(json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}}]));
        let too_big = pod(json!([{"name": "c", "resources": {
            "limits": {"cpu": "2", "memory": "128Mi"}, "requests": {"cpu": "2", "memory": "128Mi"}}}]));
        assert_eq!(
            validate_pod(&lr, &too_big),
            ["maximum cpu usage per Container is 1, but limit is 2"]
        );
        let no_limit = pod(
            json!([{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "32Mi"}}}]),
        );
        assert_eq!(
            aggregate(&validate_pod(&lr, &no_limit)),
            "[minimum memory usage per Container is 64Mi, but request is 32Mi, \
             maximum cpu usage per Container is 1.  No limit is specified]"
        );
        let fine = pod(json!([{"name": "c", "resources": {
            "limits": {"cpu": "1000m"}, "requests": {"cpu": "500m", "memory": "64Mi"}}}]));
        assert!(validate_pod(&lr, &fine).is_empty());
    }

    #[test]
    fn ratio_and_pod_totals() {
        let lr = range(json!([
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"memory": "1Gi"}}]));
        let p = pod(json!([
            {"name": "a", "resources": {"limits": {"cpu": "3", "memory": "768Mi"}, "requests": {"cpu": "1"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "1"}}}]));
        assert_eq!(
            validate_pod(&lr, &p),
            [
                "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000",
                "maximum memory usage per Pod is 1Gi, but limit is 1280Mi"
            ]
        );
    }

    #[test]
    fn claims_are_bounded_by_storage_requests() {
        let lr = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
        );
        let claim = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert!(validate_claim(&lr, &claim("5Gi")).is_empty());
        assert_eq!(
            validate_claim(&lr, &claim("20Gi")),
            ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
        );
        assert_eq!(
            validate_claim(&lr, &claim("500Mi")),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
    }
}
