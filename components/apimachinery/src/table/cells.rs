//! The cells of one Table row, computed the way Kubernetes' printers compute them
//! (`pkg/printers/internalversion`), always in the server's wide form: every column of
//! [`super::columns`], `-o wide` ones included; kubectl hides what it does not show.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::human_duration;
use crate::meta;
use crate::registry::ResourceInfo;

// ---- reading the JSON object -------------------------------------------------------

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn opt_int(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

fn truthy(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).and_then(Value::as_bool).unwrap_or(false)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn map<'a>(v: &'a Value, ptr: &str) -> Option<&'a Map<String, Value>> {
    v.pointer(ptr).and_then(Value::as_object)
}

fn len(v: &Value, ptr: &str) -> i64 {
    match v.pointer(ptr) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn time(v: &Value, ptr: &str) -> Option<DateTime<Utc>> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .and_then(meta::parse_time)
}

fn or(s: String, default: &str) -> String {
    if s.is_empty() { default.to_string() } else { s }
}

// ---- Kubernetes' formatting helpers --------------------------------------------------

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when it is unset.
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value, now: DateTime<Utc>) -> String {
    since(time(obj, "/metadata/creationTimestamp"), now)
}

/// `labels.FormatLabels`: `a=b,c=d` sorted by key, `<none>` when empty.
fn format_labels(m: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&String, &str)> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    let out: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    or(out.join(","), "<none>")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key, set values
/// sorted; empty for a missing or empty selector; `Err` for an unknown operator.
fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = sel.filter(|v| v.is_object()) else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in map(sel, "/matchLabels").into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in arr(sel, "/matchExpressions") {
        let key = s(e, "/key");
        let mut values: Vec<&str> = arr(e, "/values").iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let text = match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`: the selector, `<none>` when it selects by nothing,
/// `<error>` when it cannot be parsed.
fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) => or(s, "<none>"),
        Err(()) => "<error>".into(),
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
fn containers_and_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = arr(obj, ptr);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `printBoolPtr`.
fn bool_ptr(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// `IntOrString.String()`.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// `listWithMoreString` over at most three entries.
fn list_with_more(items: &[String]) -> String {
    const MAX: usize = 3;
    if items.len() > MAX {
        return format!("{} + {} more...", items[..MAX].join(","), items.len() - MAX);
    }
    or(items.join(","), "<unset>")
}

/// `net.JoinHostPort`: IPv6 addresses in brackets.
fn host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---- per-resource rows ----------------------------------------------------------------

/// A row's `conditions` (Kubernetes sets them for finished pods only).
pub(super) fn row_conditions(res: &ResourceInfo, obj: &Value) -> Option<Value> {
    if !(res.group.is_empty() && res.plural == "pods") {
        return None;
    }
    let (reason, message) = match s(obj, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

pub(super) fn cells(res: &ResourceInfo, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(meta::name(obj));
    match (res.group, res.plural) {
        ("", "pods") => pod(obj, now),
        ("", "nodes") => node(obj, now),
        ("", "services") => service(obj, now),
        ("", "endpoints") => vec![name, json!(endpoints(obj)), json!(age(obj, now))],
        ("", "namespaces") => vec![name, json!(s(obj, "/status/phase")), json!(age(obj, now))],
        ("", "persistentvolumeclaims") => persistent_volume_claim(obj, now),
        ("", "configmaps") => vec![
            name,
            json!(len(obj, "/data") + len(obj, "/binaryData")),
            json!(age(obj, now)),
        ],
        ("", "secrets") => vec![
            name,
            json!(s(obj, "/type")),
            json!(len(obj, "/data")),
            json!(age(obj, now)),
        ],
        ("", "serviceaccounts") => vec![name, json!(len(obj, "/secrets")), json!(age(obj, now))],
        ("", "resourcequotas") => resource_quota(obj, now),
        ("", "events") => event(obj, now),
        // events.k8s.io objects are printed as the core/v1 Events they are stored as.
        ("events.k8s.io", "events") => event(&crate::events::to_core(obj), now),
        ("apps", "deployments") => deployment(obj, now),
        ("apps", "replicasets") => {
            let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(opt_int(obj, "/spec/replicas").unwrap_or(1)),
                json!(int(obj, "/status/replicas")),
                json!(int(obj, "/status/readyReplicas")),
                json!(age(obj, now)),
                json!(c),
                json!(i),
                json!(format_label_selector(obj.pointer("/spec/selector"))),
            ]
        }
        ("apps", "statefulsets") => {
            let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(obj, "/status/readyReplicas"),
                    opt_int(obj, "/spec/replicas").unwrap_or(1)
                )),
                json!(age(obj, now)),
                json!(c),
                json!(i),
            ]
        }
        ("apps", "daemonsets") => {
            let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(int(obj, "/status/desiredNumberScheduled")),
                json!(int(obj, "/status/currentNumberScheduled")),
                json!(int(obj, "/status/numberReady")),
                json!(int(obj, "/status/updatedNumberScheduled")),
                json!(int(obj, "/status/numberAvailable")),
                json!(format_labels(map(obj, "/spec/template/spec/nodeSelector"))),
                json!(age(obj, now)),
                json!(c),
                json!(i),
                json!(format_label_selector(obj.pointer("/spec/selector"))),
            ]
        }
        ("apps", "controllerrevisions") => vec![
            name,
            json!(controller_of(obj)),
            json!(int(obj, "/revision")),
            json!(age(obj, now)),
        ],
        ("batch", "jobs") => job(obj, now),
        ("batch", "cronjobs") => {
            let (c, i) =
                containers_and_images(obj, "/spec/jobTemplate/spec/template/spec/containers");
            let last = match time(obj, "/status/lastScheduleTime") {
                Some(t) => since(Some(t), now),
                None => "<none>".into(),
            };
            vec![
                name,
                json!(s(obj, "/spec/schedule")),
                json!(or(s(obj, "/spec/timeZone").to_string(), "<none>")),
                json!(bool_ptr(obj.pointer("/spec/suspend"))),
                json!(len(obj, "/status/active")),
                json!(last),
                json!(age(obj, now)),
                json!(c),
                json!(i),
                json!(format_label_selector(
                    obj.pointer("/spec/jobTemplate/spec/selector")
                )),
            ]
        }
        ("coordination.k8s.io", "leases") => {
            vec![
                name,
                json!(s(obj, "/spec/holderIdentity")),
                json!(age(obj, now)),
            ]
        }
        ("discovery.k8s.io", "endpointslices") => {
            let ports: Vec<String> = arr(obj, "/ports")
                .iter()
                .map(|p| {
                    match (
                        opt_int(p, "/port"),
                        p.pointer("/name").and_then(Value::as_str),
                    ) {
                        (Some(n), _) => n.to_string(),
                        (None, Some(name)) => name.to_string(),
                        (None, None) => "*".into(),
                    }
                })
                .collect();
            let addresses: Vec<String> = arr(obj, "/endpoints")
                .iter()
                .flat_map(|e| arr(e, "/addresses"))
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            vec![
                name,
                json!(s(obj, "/addressType")),
                json!(list_with_more(&ports)),
                json!(list_with_more(&addresses)),
                json!(age(obj, now)),
            ]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            let (users, groups, sas) = subjects(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(obj, "/roleRef/kind"),
                    s(obj, "/roleRef/name")
                )),
                json!(age(obj, now)),
                json!(users.join(", ")),
                json!(groups.join(", ")),
                json!(sas.join(", ")),
            ]
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            let duration = match opt_int(obj, "/spec/expirationSeconds") {
                Some(secs) => human_duration(chrono::Duration::seconds(secs)),
                None => "<none>".into(),
            };
            vec![
                name,
                json!(age(obj, now)),
                json!(or(s(obj, "/spec/signerName").to_string(), "<none>")),
                json!(s(obj, "/spec/username")),
                json!(duration),
                json!(csr_condition(obj)),
            ]
        }
        ("policy", "poddisruptionbudgets") => {
            let bound = |ptr: &str| {
                obj.pointer(ptr)
                    .filter(|v| !v.is_null())
                    .map_or_else(|| "N/A".to_string(), int_or_string)
            };
            vec![
                name,
                json!(bound("/spec/minAvailable")),
                json!(bound("/spec/maxUnavailable")),
                json!(int(obj, "/status/disruptionsAllowed")),
                json!(age(obj, now)),
            ]
        }
        ("scheduling.k8s.io", "priorityclasses") => vec![
            name,
            json!(int(obj, "/value")),
            json!(truthy(obj, "/globalDefault")),
            json!(age(obj, now)),
            json!(s(obj, "/preemptionPolicy")),
        ],
        // The default convertor: name and the creation time in RFC 3339.
        _ => {
            let created = time(obj, "/metadata/creationTimestamp")
                .map_or_else(|| "0001-01-01T00:00:00Z".to_string(), meta::format_time);
            vec![name, json!(created)]
        }
    }
}

/// `printResourceQuota`: `used/hard` per resource of `status.hard`, in name order, the
/// `limits.*` ones in the Limit column and everything else in Request.
fn resource_quota(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let hard = crate::quota::parse_list(obj.pointer("/status/hard"));
    let used = crate::quota::parse_list(obj.pointer("/status/used"));
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (name, h) in &hard {
        let u = used.get(name).copied().unwrap_or_default();
        let cell = format!("{name}: {u}/{h}");
        match name.split_once('.') {
            Some(("limits", _)) => limit.push(cell),
            _ => request.push(cell),
        }
    }
    vec![
        json!(meta::name(obj)),
        json!(age(obj, now)),
        json!(request.join(", ")),
        json!(limit.join(", ")),
    ]
}

/// `printScale`: name, desired and observed replicas, age.
pub(super) fn scale(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(meta::name(obj)),
        json!(int(obj, "/spec/replicas")),
        json!(int(obj, "/status/replicas")),
        json!(age(obj, now)),
    ]
}

/// Keeps the later of two optional times in `slot` (`lastRestartDate.Before(&t)`).
fn keep_latest(slot: &mut Option<DateTime<Utc>>, t: Option<DateTime<Utc>>) {
    if let Some(t) = t
        && slot.is_none_or(|cur| cur < t)
    {
        *slot = Some(t);
    }
}

fn condition_true(obj: &Value, ptr: &str, ty: &str) -> bool {
    arr(obj, ptr)
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

/// `printPod`: READY, STATUS (with the init-container, restart, termination and node-lost
/// reasons), RESTARTS with the time of the last restart, and the wide columns.
fn pod(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = arr(pod, "/spec/initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    let total = arr(pod, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let phase = s(pod, "/status/phase");
    let mut reason = match s(pod, "/status/reason") {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    if arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, c) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        let finished = time(c, "/lastState/terminated/finishedAt");
        restarts += int(c, "/restartCount");
        keep_latest(&mut last_restart, finished);
        let sidecar = is_sidecar(s(c, "/name"));
        if sidecar {
            sidecar_restarts += int(c, "/restartCount");
            keep_latest(&mut last_sidecar_restart, finished);
        }
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        let waiting = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && truthy(c, "/started") {
            if truthy(c, "/ready") {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match s(t, "/reason") {
                "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(pod, "/status/conditions", "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += int(c, "/restartCount");
            keep_latest(
                &mut last_restart,
                time(c, "/lastState/terminated/finishedAt"),
            );
            let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
            let waiting = s(c, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match s(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if truthy(c, "/ready")
                && c.pointer("/state/running").is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "/status/conditions", "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if meta::deletion_timestamp(pod).is_some() {
        if s(pod, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if !matches!(phase, "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(t), now)),
        _ => restarts.to_string(),
    };

    let gates = arr(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(pod, "/status/conditions");
        let met = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == s(g, "/conditionType"))
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        json!(meta::name(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_cell),
        json!(age(pod, now)),
        json!(or(pod_ip(pod).to_string(), "<none>")),
        json!(or(s(pod, "/spec/nodeName").to_string(), "<none>")),
        json!(or(
            s(pod, "/status/nominatedNodeName").to_string(),
            "<none>"
        )),
        json!(readiness_gates),
    ]
}

/// The pod's first IP as Kubernetes' v1 → internal conversion leaves it: `podIP` when
/// set (it wins over a differing `podIPs`), else `podIPs[0]`.
fn pod_ip(pod: &Value) -> &str {
    match s(pod, "/status/podIP") {
        "" => s(pod, "/status/podIPs/0/ip"),
        ip => ip,
    }
}

/// The service's first cluster IP (`clusterIPs[0]`, or `clusterIP` when the list is empty,
/// as Kubernetes' v1 → internal conversion fills it).
fn cluster_ip(svc: &Value) -> &str {
    match s(svc, "/spec/clusterIPs/0") {
        "" => s(svc, "/spec/clusterIP"),
        ip => ip,
    }
}

/// `printNode`: the Ready condition (`Unknown` without one), `SchedulingDisabled`, and
/// the roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut status: Vec<&str> = match arr(obj, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready")
    {
        Some(c) if s(c, "/status") == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if truthy(obj, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }
    let mut roles = BTreeSet::new();
    for (k, v) in meta::labels(obj).into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role"
            && let Some(v) = v.as_str().filter(|v| !v.is_empty())
        {
            roles.insert(v.to_string());
        }
    }
    let roles: Vec<String> = roles.into_iter().collect();
    let address = |ty: &str| {
        arr(obj, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == ty)
            .map_or_else(|| "<none>".to_string(), |a| s(a, "/address").to_string())
    };
    let info = |field: &str| {
        or(
            s(obj, &format!("/status/nodeInfo/{field}")).to_string(),
            "<unknown>",
        )
    };
    vec![
        json!(meta::name(obj)),
        json!(status.join(",")),
        json!(or(roles.join(","), "<none>")),
        json!(age(obj, now)),
        json!(s(obj, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// `printService`: the first cluster IP, the external IPs by service type (`<pending>`
/// for a load balancer without ingress), and ports as `80:30080/TCP`.
fn service(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ty = match s(obj, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let external_ips: Vec<&str> = arr(obj, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match ty {
        "ClusterIP" | "NodePort" => or(external_ips.join(","), "<none>"),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = arr(obj, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| match (s(i, "/ip"), s(i, "/hostname")) {
                    ("", "") => None,
                    ("", host) => Some(host),
                    (ip, _) => Some(ip),
                })
                .collect();
            let mut all: Vec<&str> = ingress.into_iter().collect();
            all.extend(external_ips);
            or(all.join(","), "<pending>")
        }
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = arr(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = match s(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int(p, "/nodePort") {
                np if np > 0 => format!("{}:{np}/{proto}", int(p, "/port")),
                _ => format!("{}/{proto}", int(p, "/port")),
            }
        })
        .collect();
    vec![
        json!(meta::name(obj)),
        json!(ty),
        json!(or(cluster_ip(obj).to_string(), "<none>")),
        json!(external),
        json!(or(ports.join(","), "<none>")),
        json!(age(obj, now)),
        json!(format_labels(map(obj, "/spec/selector"))),
    ]
}

/// `formatEndpoints`: up to three `ip:port` pairs, then `+ N more...`.
fn endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            // Headless services without ports list bare addresses.
            count += addresses.len();
            list.extend(
                addresses
                    .iter()
                    .take(MAX.saturating_sub(list.len()))
                    .map(|a| s(a, "/ip").to_string()),
            );
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(host_port(s(a, "/ip"), int(p, "/port")));
            }
        }
    }
    let shown = list.join(",");
    if count > MAX {
        format!("{shown} + {} more...", count - MAX)
    } else {
        shown
    }
}

/// `printEvent` (wide): times fall back from lastTimestamp to firstTimestamp to
/// eventTime; a series gives the last observed time and count.
fn event(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first = match time(ev, "/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(time(ev, "/eventTime"), now),
    };
    let mut last = match time(ev, "/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(ev, "/count");
    if ev.pointer("/series").is_some_and(Value::is_object) {
        last = since(time(ev, "/series/lastObservedTime"), now);
        count = int(ev, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(ev, "/involvedObject/kind").to_lowercase();
    let target = match s(ev, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let first_non_empty = |a: &'static str, b: &'static str| match s(ev, a) {
        "" => s(ev, b),
        v => v,
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    let host = first_non_empty("/source/host", "/reportingInstance");
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(s(ev, "/type")),
        json!(s(ev, "/reason")),
        json!(target),
        json!(s(ev, "/involvedObject/fieldPath")),
        json!(source),
        json!(s(ev, "/message").trim()),
        json!(first),
        json!(count),
        json!(meta::name(ev)),
    ]
}

/// `printDeployment`: READY is ready/desired; the selector is printed as parsed
/// (`<invalid>` when it cannot be).
fn deployment(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
    let selector =
        selector_string(obj.pointer("/spec/selector")).unwrap_or_else(|()| "<invalid>".to_string());
    vec![
        json!(meta::name(obj)),
        json!(format!(
            "{}/{}",
            int(obj, "/status/readyReplicas"),
            opt_int(obj, "/spec/replicas").unwrap_or(1)
        )),
        json!(int(obj, "/status/updatedReplicas")),
        json!(int(obj, "/status/availableReplicas")),
        json!(age(obj, now)),
        json!(c),
        json!(i),
        json!(selector),
    ]
}

/// The status of a `JobCondition` type: the first condition of that type decides.
fn job_condition(obj: &Value, ty: &str) -> bool {
    arr(obj, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == ty)
        .is_some_and(|c| s(c, "/status") == "True")
}

/// `printJob`: STATUS from the conditions, COMPLETIONS as succeeded/wanted, DURATION from
/// the start to the completion (or to now).
fn job(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let succeeded = int(obj, "/status/succeeded");
    let completions = match opt_int(obj, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int(obj, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time(obj, "/status/startTime"),
        time(obj, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let status = if job_condition(obj, "Complete") {
        "Complete"
    } else if job_condition(obj, "Failed") {
        "Failed"
    } else if meta::deletion_timestamp(obj).is_some() {
        "Terminating"
    } else if job_condition(obj, "Suspended") {
        "Suspended"
    } else if job_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
    vec![
        json!(meta::name(obj)),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(obj, now)),
        json!(c),
        json!(i),
        json!(format_label_selector(obj.pointer("/spec/selector"))),
    ]
}

/// `rbac.SubjectsStrings`: users, groups and `namespace/name` service accounts.
fn subjects(obj: &Value) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in arr(obj, "/subjects") {
        let name = s(sub, "/name").to_string();
        match s(sub, "/kind") {
            "ServiceAccount" => sas.push(format!("{}/{name}", s(sub, "/namespace"))),
            "User" => users.push(name),
            "Group" => groups.push(name),
            _ => {}
        }
    }
    (users, groups, sas)
}

/// `extractCSRStatus`: Denied, Approved or Pending, then `,Failed` and `,Issued`.
fn csr_condition(obj: &Value) -> String {
    let has = |ty: &str| {
        arr(obj, "/status/conditions")
            .iter()
            .any(|c| s(c, "/type") == ty)
    };
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !s(obj, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

/// `printPersistentVolumeClaim`: capacity and access modes only once bound to a volume.
fn persistent_volume_claim(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let phase = if meta::deletion_timestamp(obj).is_some() {
        "Terminating"
    } else {
        s(obj, "/status/phase")
    };
    let volume = s(obj, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            s(obj, "/status/capacity/storage").to_string(),
            access_modes(arr(obj, "/status/accessModes")),
        )
    };
    // `GetPersistentVolumeClaimClass`: the beta annotation wins over the field.
    let class = obj
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(obj, "/spec/storageClassName"));
    let unset = |ptr: &str| or(s(obj, ptr).to_string(), "<unset>");
    vec![
        json!(meta::name(obj)),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class),
        json!(unset("/spec/volumeAttributesClassName")),
        json!(age(obj, now)),
        json!(unset("/spec/volumeMode")),
    ]
}

/// `GetAccessModesAsString`: the modes' abbreviations in Kubernetes' fixed order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, a)| *a)
    .collect::<Vec<_>>()
    .join(",")
}

/// `printControllerRevision`'s controller cell: `<kind>.<group>/<name>` of the controller
/// reference, `<none>` without one.
fn controller_of(obj: &Value) -> String {
    let Some(owner) = arr(obj, "/metadata/ownerReferences")
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
    else {
        return "<none>".into();
    };
    let kind = s(owner, "/kind").to_lowercase();
    let group = s(owner, "/apiVersion")
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    let name = s(owner, "/name");
    match (kind.is_empty(), group.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => format!("{kind}/{name}"),
        (false, false) => format!("{kind}.{group}/{name}"),
    }
}
