//! Server-side printing: `meta.k8s.io/v1 Table` responses, which is what
//! `kubectl get` renders. Columns and cell formats follow Kubernetes' printers so
//! that kubectl output against kadm reads like output against Kubernetes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::meta;
use crate::registry::ResourceInfo;

/// One column: name, type, and priority (0 = default view, 1 = `-o wide`).
struct Col(&'static str, &'static str, u8, &'static str);

const NAME: Col = Col(
    "Name",
    "string",
    0,
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
);
const AGE: Col = Col(
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);

fn columns(res: &ResourceInfo) -> Vec<Col> {
    match (res.group, res.plural) {
        ("", "namespaces") => vec![
            NAME,
            Col("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        ("", "configmaps") => vec![
            NAME,
            Col("Data", "string", 0, "Data contains the configuration data."),
            AGE,
        ],
        ("", "secrets") => vec![
            NAME,
            Col("Type", "string", 0, "The type of the secret"),
            Col("Data", "string", 0, "The number of data keys"),
            AGE,
        ],
        ("", "serviceaccounts") => vec![
            NAME,
            Col(
                "Secrets",
                "string",
                0,
                "Secrets is a list of the secrets in the same namespace",
            ),
            AGE,
        ],
        ("", "pods") => vec![
            NAME,
            Col(
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            Col(
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            Col(
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            Col(
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            Col(
                "Node",
                "string",
                1,
                "NodeName is a request to schedule this pod onto a specific node.",
            ),
            Col(
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            Col(
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        ("", "nodes") => vec![
            NAME,
            Col("Status", "string", 0, "The status of the node"),
            Col("Roles", "string", 0, "The roles of the node"),
            AGE,
            Col(
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            Col(
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            Col(
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            Col(
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            Col(
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            Col(
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        ("", "services") => vec![
            NAME,
            Col(
                "Type",
                "string",
                0,
                "type determines how the Service is exposed.",
            ),
            Col(
                "Cluster-IP",
                "string",
                0,
                "clusterIP is the IP address of the service and is usually assigned randomly.",
            ),
            Col(
                "External-IP",
                "string",
                0,
                "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            ),
            Col(
                "Port(s)",
                "string",
                0,
                "The list of ports that are exposed by this service.",
            ),
            AGE,
            Col(
                "Selector",
                "string",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        ("", "endpoints") => vec![
            NAME,
            Col(
                "Endpoints",
                "string",
                0,
                "Endpoints is the list of endpoints for this service.",
            ),
            AGE,
        ],
        ("apps", "deployments") => vec![
            NAME,
            Col("Ready", "string", 0, "Number of the pod with ready state"),
            Col(
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            Col(
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            Col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            Col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            Col(
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        ("apps", "replicasets") => vec![
            NAME,
            Col(
                "Desired",
                "integer",
                0,
                "Replicas is the number of desired replicas.",
            ),
            Col(
                "Current",
                "integer",
                0,
                "Replicas is the most recently observed number of replicas.",
            ),
            Col(
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            AGE,
            Col(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            Col(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            Col(
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        ("", "events") | ("events.k8s.io", "events") => vec![
            Col(
                "Last Seen",
                "string",
                0,
                "Time when last this event was seen",
            ),
            Col(
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            Col(
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for this event being generated.",
            ),
            Col("Object", "string", 0, "The object this Event is about."),
            Col(
                "Subobject",
                "string",
                1,
                "The subobject this Event is about.",
            ),
            Col("Source", "string", 1, "The component reporting this event."),
            Col(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            Col(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            Col(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            Col("Name", "string", 1, "The name of this event."),
        ],
        ("coordination.k8s.io", "leases") => vec![
            NAME,
            Col(
                "Holder",
                "string",
                0,
                "holderIdentity contains the identity of the holder of a current lease.",
            ),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}

/// Kubernetes' `HumanDuration`: the compact ages `kubectl get` shows (`5m3s`, `2d4h`).
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: Option<&str>, now: DateTime<Utc>) -> String {
    match ts.and_then(meta::parse_time) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}
fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}
fn len(v: &Value, ptr: &str) -> usize {
    match v.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}
fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.and_then(Value::as_object) else {
        return String::new();
    };
    // A LabelSelector has matchLabels; a Service selector is a plain map.
    let map = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .unwrap_or(sel);
    let mut parts: Vec<String> = map
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    parts.join(",")
}

fn containers_and_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = obj
        .pointer(ptr)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn pod_status(pod: &Value) -> String {
    let mut reason = s(pod, "/status/reason").to_string();
    if reason.is_empty() {
        reason = s(pod, "/status/phase").to_string();
    }
    for c in pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let w = s(c, "/state/waiting/reason");
        let t = s(c, "/state/terminated/reason");
        if !w.is_empty() {
            reason = w.to_string();
        } else if !t.is_empty() {
            reason = t.to_string();
        }
    }
    if meta::deletion_timestamp(pod).is_some() {
        reason = if s(pod, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    if reason.is_empty() {
        "Pending".into()
    } else {
        reason
    }
}

fn cells(res: &ResourceInfo, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(meta::name(obj));
    let age = json!(age_of(
        obj.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now
    ));
    match (res.group, res.plural) {
        ("", "namespaces") => vec![name, json!(s(obj, "/status/phase")), age],
        ("", "configmaps") => vec![
            name,
            json!(len(obj, "/data") + len(obj, "/binaryData")),
            age,
        ],
        ("", "secrets") => vec![name, json!(s(obj, "/type")), json!(len(obj, "/data")), age],
        ("", "serviceaccounts") => vec![name, json!(len(obj, "/secrets")), age],
        ("", "pods") => {
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = len(obj, "/spec/containers");
            let ready = statuses
                .into_iter()
                .flatten()
                .filter(|c| c.get("ready") == Some(&json!(true)))
                .count();
            let restarts: i64 = statuses
                .into_iter()
                .flatten()
                .map(|c| n(c, "/restartCount"))
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(obj)),
                json!(restarts.to_string()),
                age,
                json!(or_none(s(obj, "/status/podIP").into())),
                json!(or_none(s(obj, "/spec/nodeName").into())),
                json!(or_none(s(obj, "/status/nominatedNodeName").into())),
                json!("<none>"),
            ]
        }
        ("", "nodes") => {
            let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
            let ready = conditions
                .into_iter()
                .flatten()
                .find(|c| s(c, "/type") == "Ready");
            let mut status = match ready.map(|c| s(c, "/status")) {
                Some("True") => "Ready".to_string(),
                _ => "NotReady".to_string(),
            };
            if obj.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let mut roles: Vec<String> = meta::labels(obj)
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(str::to_string)
                })
                .collect();
            roles.sort();
            let addr = |ty: &str| {
                obj.pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|a| s(a, "/type") == ty)
                    .map(|a| s(a, "/address").to_string())
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                age,
                json!(s(obj, "/status/nodeInfo/kubeletVersion")),
                json!(or_none(addr("InternalIP"))),
                json!(or_none(addr("ExternalIP"))),
                json!(s(obj, "/status/nodeInfo/osImage")),
                json!(s(obj, "/status/nodeInfo/kernelVersion")),
                json!(s(obj, "/status/nodeInfo/containerRuntimeVersion")),
            ]
        }
        ("", "services") => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{}:{np}/{proto}", n(p, "/port")),
                        None => format!("{}/{proto}", n(p, "/port")),
                    }
                })
                .collect();
            let external: Vec<&str> = obj
                .pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ext = if ty == "ExternalName" {
                s(obj, "/spec/externalName").to_string()
            } else {
                external.join(",")
            };
            vec![
                name,
                json!(ty),
                json!(or_none(s(obj, "/spec/clusterIP").into())),
                json!(or_none(ext)),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(selector_string(obj.pointer("/spec/selector")))),
            ]
        }
        ("", "endpoints") => {
            let mut eps = Vec::new();
            for subset in obj
                .get("subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for a in subset
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for p in subset
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        eps.push(format!("{}:{}", s(a, "/ip"), n(p, "/port")));
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                eps.join(",")
            };
            vec![name, json!(or_none(shown)), age]
        }
        ("apps", "deployments") => {
            let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    n(obj, "/status/readyReplicas"),
                    obj.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(n(obj, "/status/updatedReplicas")),
                json!(n(obj, "/status/availableReplicas")),
                age,
                json!(c),
                json!(i),
                json!(or_none(selector_string(obj.pointer("/spec/selector")))),
            ]
        }
        ("apps", "replicasets") => {
            let (c, i) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                name,
                json!(
                    obj.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(n(obj, "/status/replicas")),
                json!(n(obj, "/status/readyReplicas")),
                age,
                json!(c),
                json!(i),
                json!(or_none(selector_string(obj.pointer("/spec/selector")))),
            ]
        }
        ("", "events") | ("events.k8s.io", "events") => {
            // Stored events are core/v1; events.k8s.io objects are converted before printing.
            let core = if res.group.is_empty() {
                obj.clone()
            } else {
                crate::events::to_core(obj)
            };
            let last = [
                s(&core, "/lastTimestamp"),
                s(&core, "/eventTime"),
                s(&core, "/metadata/creationTimestamp"),
            ]
            .into_iter()
            .find(|t| !t.is_empty());
            let first = [s(&core, "/firstTimestamp"), s(&core, "/eventTime")]
                .into_iter()
                .find(|t| !t.is_empty());
            let kind = s(&core, "/involvedObject/kind").to_lowercase();
            let source = [
                s(&core, "/source/component"),
                s(&core, "/reportingComponent"),
            ]
            .into_iter()
            .find(|t| !t.is_empty())
            .unwrap_or("");
            vec![
                json!(age_of(last, now)),
                json!(s(&core, "/type")),
                json!(s(&core, "/reason")),
                json!(format!("{kind}/{}", s(&core, "/involvedObject/name"))),
                json!(s(&core, "/involvedObject/fieldPath")),
                json!(source),
                json!(s(&core, "/message")),
                json!(age_of(first, now)),
                json!(n(&core, "/count").max(1)),
                name,
            ]
        }
        ("coordination.k8s.io", "leases") => vec![name, json!(s(obj, "/spec/holderIdentity")), age],
        _ => vec![name, age],
    }
}

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

fn row(res: &ResourceInfo, obj: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let mut r = json!({"cells": cells(res, obj, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => r["object"] = obj.clone(),
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
    }
    r
}

/// A Table of `objects` with list metadata (`resourceVersion`, `continue`).
pub fn to_table(
    res: &ResourceInfo,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = Utc::now();
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "rows": objects.iter().map(|o| row(res, o, include, now)).collect::<Vec<_>>(),
    });
    if with_columns {
        t["columnDefinitions"] = Value::Array(
            columns(res)
                .into_iter()
                .map(|Col(name, ty, priority, desc)| {
                    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": desc, "priority": priority})
                })
                .collect(),
        );
    } else {
        t["columnDefinitions"] = json!([]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use chrono::Duration;

    #[test]
    fn human_duration_matches_kubernetes_steps() {
        for (secs, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (183, "3m3s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (50 * 3600, "2d2h"),
            (10 * 86400, "10d"),
            (800 * 86400, "2y70d"),
            (9 * 365 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(Duration::seconds(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn cells_match_columns_for_every_resource() {
        for res in crate::registry::all() {
            let obj =
                json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
            assert_eq!(
                columns(res).len(),
                cells(res, &obj, Utc::now()).len(),
                "{}",
                res.plural
            );
        }
    }

    #[test]
    fn namespace_table_prints_status() {
        let ns = lookup("", "v1", "namespaces").expect("ns");
        let obj = json!({"metadata": {"name": "default", "creationTimestamp": meta::now()}, "status": {"phase": "Active"}});
        let t = to_table(
            ns,
            &[obj],
            json!({"resourceVersion": "5"}),
            IncludeObject::Metadata,
            true,
        );
        assert_eq!(t["rows"][0]["cells"][0], "default");
        assert_eq!(t["rows"][0]["cells"][1], "Active");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
    }
}
