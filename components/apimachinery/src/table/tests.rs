use super::*;
use crate::registry::{all, lookup};
use chrono::{Duration, TimeZone};

/// The fixed "now" of these tests; objects are dated relative to it.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// `now` minus `secs` seconds, as a Kubernetes timestamp.
fn ago(secs: i64) -> String {
    crate::meta::format_time(now() - Duration::seconds(secs))
}

fn res(group: &str, plural: &str) -> &'static ResourceInfo {
    all()
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("{group}/{plural} is not served"))
}

fn cells_of(group: &str, plural: &str, obj: &Value) -> Vec<Value> {
    let r = res(group, plural);
    let cells = row_cells(r, obj, now());
    assert_eq!(cells.len(), column_definitions(r).len(), "{plural}");
    cells
}

/// (name, type, priority) of every column.
fn shape(group: &str, plural: &str) -> Vec<(String, String, u64)> {
    column_definitions(res(group, plural))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["type"].as_str().unwrap_or("").to_string(),
                c["priority"].as_u64().unwrap_or(9),
            )
        })
        .collect()
}

fn cols(spec: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    spec.iter()
        .map(|(n, t, p)| (n.to_string(), t.to_string(), *p))
        .collect()
}

fn meta(name: &str, created_secs_ago: i64) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u-1", "creationTimestamp": ago(created_secs_ago)})
}

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
    for r in all() {
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}});
        assert_eq!(
            column_definitions(r).len(),
            row_cells(r, &obj, Utc::now()).len(),
            "{}",
            r.plural
        );
    }
}

#[test]
fn every_column_is_described_and_typed() {
    for r in all() {
        let defs = column_definitions(r);
        let names: Vec<&str> = defs.iter().filter_map(|c| c["name"].as_str()).collect();
        assert!(names.contains(&"Name"), "{}: {names:?}", r.plural);
        for c in &defs {
            assert!(
                !c["description"].as_str().unwrap_or("").is_empty(),
                "{}: column {} has no description",
                r.plural,
                c["name"]
            );
            assert!(
                matches!(
                    c["type"].as_str(),
                    Some("string" | "integer" | "boolean" | "date")
                ),
                "{}: {c}",
                r.plural
            );
            let want_format = if c["name"] == "Name" { "name" } else { "" };
            assert_eq!(c["format"], want_format, "{}: {c}", r.plural);
        }
    }
}

#[test]
fn columns_are_kubernetes_printer_columns() {
    assert_eq!(
        shape("", "pods"),
        cols(&[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ])
    );
    assert_eq!(
        shape("", "events"),
        cols(&[
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ])
    );
    assert_eq!(shape("events.k8s.io", "events"), shape("", "events"));
    assert_eq!(
        shape("batch", "jobs"),
        cols(&[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ])
    );
    assert_eq!(
        shape("batch", "cronjobs"),
        cols(&[
            ("Name", "string", 0),
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ])
    );
    assert_eq!(
        shape("apps", "daemonsets"),
        cols(&[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ])
    );
    assert_eq!(
        shape("apps", "statefulsets"),
        cols(&[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ])
    );
    assert_eq!(
        shape("certificates.k8s.io", "certificatesigningrequests"),
        cols(&[
            ("Name", "string", 0),
            ("Age", "string", 0),
            ("SignerName", "string", 0),
            ("Requestor", "string", 0),
            ("RequestedDuration", "string", 0),
            ("Condition", "string", 0),
        ])
    );
    assert_eq!(
        shape("rbac.authorization.k8s.io", "clusterrolebindings"),
        cols(&[
            ("Name", "string", 0),
            ("Role", "string", 0),
            ("Age", "string", 0),
            ("Users", "string", 1),
            ("Groups", "string", 1),
            ("ServiceAccounts", "string", 1),
        ])
    );
    assert_eq!(
        shape("scheduling.k8s.io", "priorityclasses"),
        cols(&[
            ("Name", "string", 0),
            ("Value", "integer", 0),
            ("Global-Default", "boolean", 0),
            ("Age", "string", 0),
            ("PreemptionPolicy", "string", 0),
        ])
    );
    assert_eq!(
        shape("policy", "poddisruptionbudgets"),
        cols(&[
            ("Name", "string", 0),
            ("Min Available", "string", 0),
            ("Max Unavailable", "string", 0),
            ("Allowed Disruptions", "integer", 0),
            ("Age", "string", 0),
        ])
    );
    assert_eq!(
        shape("discovery.k8s.io", "endpointslices"),
        cols(&[
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ])
    );
    // No printer in Kubernetes: the default convertor.
    for plural in ["roles", "clusterroles"] {
        assert_eq!(
            shape("rbac.authorization.k8s.io", plural),
            cols(&[("Name", "string", 0), ("Created At", "date", 0)])
        );
    }
}

#[test]
fn descriptions_come_from_the_api_documentation() {
    let pods = column_definitions(res("", "pods"));
    assert_eq!(
        pods[5]["description"],
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
    );
    assert!(
        pods[0]["description"]
            .as_str()
            .unwrap_or("")
            .starts_with("Name must be unique within a namespace.")
    );
    let deployments = column_definitions(res("apps", "deployments"));
    // Kubernetes' printer quotes extensions/v1beta1 here, not apps/v1.
    assert_eq!(
        deployments[2]["description"],
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec."
    );
    let leases = column_definitions(res("coordination.k8s.io", "leases"));
    assert!(
        leases[1]["description"]
            .as_str()
            .unwrap_or("")
            .starts_with("holderIdentity contains the identity of the holder of a current lease.")
    );
}

fn running_container(name: &str, restarts: i64, last_finished: Option<String>) -> Value {
    let mut c = json!({"name": name, "ready": true, "started": true, "restartCount": restarts,
        "image": "nginx", "imageID": "", "state": {"running": {"startedAt": ago(60)}}});
    if let Some(f) = last_finished {
        c["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": f}});
    }
    c
}

#[test]
fn pod_running_with_restarts_and_wide_columns() {
    let pod = json!({
        "metadata": meta("web-1", 3600),
        "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}],
                 "readinessGates": [{"conditionType": "example.com/gate"}, {"conditionType": "other"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/gate", "status": "True"}],
            "containerStatuses": [running_container("a", 2, Some(ago(300))), running_container("b", 1, Some(ago(900)))]}
    });
    assert_eq!(
        cells_of("", "pods", &pod),
        vec![
            json!("web-1"),
            json!("2/2"),
            json!("Running"),
            json!("3 (5m ago)"),
            json!("60m"),
            json!("10.0.0.5"),
            json!("node-a"),
            json!("<none>"),
            json!("1/2"),
        ]
    );
    assert!(cells::row_conditions(res("", "pods"), &pod).is_none());
}

#[test]
fn pod_pending_has_none_for_the_wide_columns() {
    let pod = json!({"metadata": meta("p", 5), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending"}});
    assert_eq!(
        cells_of("", "pods", &pod),
        vec![
            json!("p"),
            json!("0/1"),
            json!("Pending"),
            json!("0"),
            json!("5s"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}

#[test]
fn pod_status_reasons_follow_init_containers() {
    let with_init = |init_status: Value| {
        json!({"metadata": meta("p", 60),
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [init_status],
                "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": "PodInitializing"}}}]}})
    };
    let status_of = |pod: &Value| cells_of("", "pods", pod)[2].clone();
    let waiting = with_init(json!({"name": "init", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": "PodInitializing"}}}));
    assert_eq!(status_of(&waiting), "Init:0/1");
    let running = with_init(json!({"name": "init", "ready": false, "restartCount": 0,
        "state": {"running": {"startedAt": ago(10)}}}));
    assert_eq!(status_of(&running), "Init:0/1");
    let crash = with_init(json!({"name": "init", "ready": false, "restartCount": 4,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(120)}},
        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}));
    assert_eq!(status_of(&crash), "Init:CrashLoopBackOff");
    // Restarts of an init container that is still initializing count, with their time.
    assert_eq!(cells_of("", "pods", &crash)[3], "4 (2m ago)");
    let failed = with_init(json!({"name": "init", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}));
    assert_eq!(status_of(&failed), "Init:Error");
    let exit = with_init(json!({"name": "init", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 3}}}));
    assert_eq!(status_of(&exit), "Init:ExitCode:3");
    let signal = with_init(json!({"name": "init", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 137, "signal": 9}}}));
    assert_eq!(status_of(&signal), "Init:Signal:9");
    // A finished init container hands over to the main containers.
    let done = with_init(json!({"name": "init", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}));
    assert_eq!(status_of(&done), "PodInitializing");
}

#[test]
fn pod_sidecars_count_toward_ready_and_total() {
    let pod = json!({"metadata": meta("p", 60),
        "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                 "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}},
                "state": {"running": {"startedAt": ago(20)}}}],
            "containerStatuses": [running_container("app", 0, None)]}});
    let c = cells_of("", "pods", &pod);
    assert_eq!(c[1], "2/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[3], "1 (30s ago)");
}

#[test]
fn pod_main_container_reasons() {
    let pod_with = |state: Value, phase: &str| {
        json!({"metadata": meta("p", 60), "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "c", "ready": false, "restartCount": 5, "state": state,
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(40)}}}]}})
    };
    let crash = pod_with(
        json!({"waiting": {"reason": "CrashLoopBackOff"}}),
        "Running",
    );
    assert_eq!(
        cells_of("", "pods", &crash)[1..4],
        [
            json!("0/1"),
            json!("CrashLoopBackOff"),
            json!("5 (40s ago)")
        ]
    );
    let completed = pod_with(
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
        "Succeeded",
    );
    assert_eq!(cells_of("", "pods", &completed)[2], "Completed");
    assert_eq!(
        cells::row_conditions(res("", "pods"), &completed),
        Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
        )
    );
    let oom = pod_with(json!({"terminated": {"exitCode": 137}}), "Failed");
    assert_eq!(cells_of("", "pods", &oom)[2], "ExitCode:137");
    assert_eq!(
        cells::row_conditions(res("", "pods"), &oom).expect("failed")[0]["reason"],
        "Failed"
    );
}

#[test]
fn pod_completed_container_with_a_running_one_is_not_ready_or_running() {
    let pod = |ready_condition: &str| {
        json!({"metadata": meta("p", 60), "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready_condition}],
                "containerStatuses": [
                    {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    running_container("b", 0, None)]}})
    };
    assert_eq!(cells_of("", "pods", &pod("False"))[2], "NotReady");
    assert_eq!(cells_of("", "pods", &pod("True"))[2], "Running");
}

#[test]
fn pod_terminating_unknown_and_scheduling_gated() {
    let mut pod = json!({"metadata": meta("p", 60), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running", "containerStatuses": [running_container("c", 0, None)]}});
    pod["metadata"]["deletionTimestamp"] = json!(ago(-30));
    assert_eq!(cells_of("", "pods", &pod)[2], "Terminating");
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells_of("", "pods", &pod)[2], "Unknown");
    // A pod that already finished is not "Terminating".
    let mut done = json!({"metadata": meta("p", 60), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded"}});
    done["metadata"]["deletionTimestamp"] = json!(ago(0));
    assert_eq!(cells_of("", "pods", &done)[2], "Succeeded");
    let gated = json!({"metadata": meta("p", 60), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}});
    assert_eq!(cells_of("", "pods", &gated)[2], "SchedulingGated");
}

#[test]
fn node_status_roles_and_addresses() {
    let node = json!({
        "metadata": {"name": "cp-1", "creationTimestamp": ago(2 * 86400),
            "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "",
                       "kubernetes.io/role": "master", "kubernetes.io/hostname": "cp-1"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "cp-1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.6.20"}}
    });
    assert_eq!(
        cells_of("", "nodes", &node),
        vec![
            json!("cp-1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,etcd,master"),
            json!("2d"),
            json!("v1.33.0"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 12 (bookworm)"),
            json!("6.1.0-18-amd64"),
            json!("containerd://1.6.20"),
        ]
    );
    let bare = json!({"metadata": {"name": "n", "creationTimestamp": ago(10)}});
    assert_eq!(
        cells_of("", "nodes", &bare),
        vec![
            json!("n"),
            json!("Unknown"),
            json!("<none>"),
            json!("10s"),
            json!(""),
            json!("<none>"),
            json!("<none>"),
            json!("<unknown>"),
            json!("<unknown>"),
            json!("<unknown>"),
        ]
    );
    let not_ready = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(cells_of("", "nodes", &not_ready)[1], "NotReady");
}

#[test]
fn service_types_ips_and_ports() {
    let node_port = json!({"metadata": meta("web", 120), "spec": {"type": "NodePort",
        "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "selector": {"tier": "fe", "app": "web"},
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                  {"port": 53, "protocol": "UDP"}]}});
    assert_eq!(
        cells_of("", "services", &node_port),
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.20"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("2m"),
            json!("app=web,tier=fe"),
        ]
    );
    let pending = json!({"metadata": meta("lb", 5), "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]}});
    let c = cells_of("", "services", &pending);
    assert_eq!(
        c[1..5],
        [
            json!("LoadBalancer"),
            json!("<none>"),
            json!("<pending>"),
            json!("443/TCP")
        ]
    );
    assert_eq!(c[6], "<none>");
    let lb = json!({"metadata": meta("lb", 5), "spec": {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}});
    assert_eq!(
        cells_of("", "services", &lb)[3],
        "203.0.113.9,lb.example.com,1.2.3.4"
    );
    let external_name = json!({"metadata": meta("db", 5), "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let c = cells_of("", "services", &external_name);
    assert_eq!(c[3], "db.example.com");
    assert_eq!(c[4], "<none>");
    let cluster_ip = json!({"metadata": meta("api", 5), "spec": {"clusterIP": "10.96.0.1", "externalIPs": ["5.6.7.8", "5.6.7.9"], "ports": [{"port": 443, "protocol": "TCP"}]}});
    let c = cells_of("", "services", &cluster_ip);
    assert_eq!(
        c[1..5],
        [
            json!("ClusterIP"),
            json!("10.96.0.1"),
            json!("5.6.7.8,5.6.7.9"),
            json!("443/TCP")
        ]
    );
}

#[test]
fn endpoints_show_three_and_count_the_rest() {
    let ep = json!({"metadata": meta("web", 60), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
        {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(
        cells_of("", "endpoints", &ep)[1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more..."
    );
    let v6 = json!({"metadata": meta("web", 60), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(cells_of("", "endpoints", &v6)[1], "[fd00::1]:80");
    let headless =
        json!({"metadata": meta("h", 60), "subsets": [{"addresses": [{"ip": "10.0.0.7"}]}]});
    assert_eq!(cells_of("", "endpoints", &headless)[1], "10.0.0.7");
    let empty = json!({"metadata": meta("e", 60)});
    assert_eq!(cells_of("", "endpoints", &empty)[1], "<none>");
}

#[test]
fn workloads_ready_counts_containers_and_selectors() {
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}});
    let deploy = json!({"metadata": meta("web", 600), "spec": {"replicas": 3,
        "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "canary", "operator": "DoesNotExist"}]},
        "template": template},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        cells_of("apps", "deployments", &deploy),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("10m"),
            json!("nginx,log"),
            json!("nginx:1.25,busybox"),
            json!("app=web,!canary,env in (dev,prod)"),
        ]
    );
    let rs = json!({"metadata": meta("web-5d4f", 600), "spec": {"replicas": 3,
        "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}, "template": template},
        "status": {"replicas": 3, "readyReplicas": 1}});
    assert_eq!(
        cells_of("apps", "replicasets", &rs),
        vec![
            json!("web-5d4f"),
            json!(3),
            json!(3),
            json!(1),
            json!("10m"),
            json!("nginx,log"),
            json!("nginx:1.25,busybox"),
            json!("app=web,pod-template-hash=5d4f"),
        ]
    );
    let sts = json!({"metadata": meta("db", 60), "spec": {"replicas": 2, "template": template},
        "status": {"readyReplicas": 2}});
    assert_eq!(
        cells_of("apps", "statefulsets", &sts)[1..3],
        [json!("2/2"), json!("60s")]
    );
    let mut ds_template = template.clone();
    ds_template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    let ds = json!({"metadata": meta("agent", 60), "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": ds_template},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
    assert_eq!(
        cells_of("apps", "daemonsets", &ds),
        vec![
            json!("agent"),
            json!(3),
            json!(3),
            json!(2),
            json!(3),
            json!(2),
            json!("kubernetes.io/os=linux"),
            json!("60s"),
            json!("nginx,log"),
            json!("nginx:1.25,busybox"),
            json!("app=agent"),
        ]
    );
    // No selector at all: `<none>` for ReplicaSets, empty for Deployments.
    let bare_rs = json!({"metadata": meta("r", 1), "spec": {}});
    assert_eq!(cells_of("apps", "replicasets", &bare_rs)[7], "<none>");
    assert_eq!(cells_of("apps", "replicasets", &bare_rs)[1], 1);
    let bare_deploy = json!({"metadata": meta("d", 1), "spec": {"replicas": 0}});
    let c = cells_of("apps", "deployments", &bare_deploy);
    assert_eq!(c[1], "0/0");
    assert_eq!(c[7], "");
}

#[test]
fn jobs_status_completions_and_duration() {
    let template = json!({"spec": {"containers": [{"name": "pi", "image": "perl"}]}});
    let complete = json!({"metadata": meta("pi", 3600), "spec": {"completions": 1, "parallelism": 1,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}, "template": template},
        "status": {"succeeded": 1, "startTime": ago(3600), "completionTime": ago(3600 - 42),
            "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
    assert_eq!(
        cells_of("batch", "jobs", &complete),
        vec![
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("42s"),
            json!("60m"),
            json!("pi"),
            json!("perl"),
            json!("batch.kubernetes.io/controller-uid=u-1"),
        ]
    );
    let running = json!({"metadata": meta("work", 300), "spec": {"parallelism": 3, "template": template},
        "status": {"startTime": ago(200), "active": 3}});
    let c = cells_of("batch", "jobs", &running);
    assert_eq!(
        c[1..4],
        [json!("Running"), json!("0/1 of 3"), json!("3m20s")]
    );
    assert_eq!(c[7], "<none>");
    let failed = json!({"metadata": meta("f", 300), "spec": {"completions": 2, "template": template},
        "status": {"failed": 7, "conditions": [{"type": "Failed", "status": "True"}]}});
    assert_eq!(
        cells_of("batch", "jobs", &failed)[1..4],
        [json!("Failed"), json!("0/2"), json!("")]
    );
    let suspended = json!({"metadata": meta("s", 300), "spec": {"completions": 1, "template": template},
        "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
    assert_eq!(cells_of("batch", "jobs", &suspended)[1], "Suspended");
}

#[test]
fn cronjob_schedule_suspend_and_last_schedule() {
    let cj = json!({"metadata": meta("hello", 86400), "spec": {"schedule": "*/5 * * * *", "suspend": false,
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(240)}});
    assert_eq!(
        cells_of("batch", "cronjobs", &cj),
        vec![
            json!("hello"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("4m"),
            json!("24h"),
            json!("hello"),
            json!("busybox"),
            json!("<none>"),
        ]
    );
    let never =
        json!({"metadata": meta("n", 60), "spec": {"schedule": "@daily", "timeZone": "Etc/UTC"}});
    let c = cells_of("batch", "cronjobs", &never);
    assert_eq!(
        c[2..6],
        [
            json!("Etc/UTC"),
            json!("<unset>"),
            json!(0),
            json!("<none>")
        ]
    );
}

#[test]
fn events_in_both_apis() {
    let core = json!({"metadata": meta("web-1.17a", 600), "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "fieldPath": "spec.containers{nginx}"},
        "message": "Back-off restarting failed container\n", "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 12});
    assert_eq!(
        cells_of("", "events", &core),
        vec![
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-1"),
            json!("spec.containers{nginx}"),
            json!("kubelet, node-a"),
            json!("Back-off restarting failed container"),
            json!("10m"),
            json!(12),
            json!("web-1.17a"),
        ]
    );
    // events.k8s.io: eventTime, a series, the reporting controller; no name on the object.
    let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("e", 600),
        "eventTime": "2025-06-01T11:50:00.000000Z", "type": "Normal", "reason": "Pulled", "note": "done",
        "regarding": {"kind": "Node"}, "reportingController": "kadm.io/controller", "reportingInstance": "cm-1",
        "series": {"count": 4, "lastObservedTime": "2025-06-01T11:59:00.000000Z"}});
    assert_eq!(
        cells_of("events.k8s.io", "events", &new),
        vec![
            json!("60s"),
            json!("Normal"),
            json!("Pulled"),
            json!("node"),
            json!(""),
            json!("kadm.io/controller, cm-1"),
            json!("done"),
            json!("10m"),
            json!(4),
            json!("e"),
        ]
    );
    // A singleton without timestamps beyond eventTime: last seen falls back to first seen.
    let single = json!({"metadata": meta("s", 60), "eventTime": ago(90), "involvedObject": {"kind": "Pod", "name": "p"}});
    let c = cells_of("", "events", &single);
    assert_eq!(c[0], "90s");
    assert_eq!(c[7], "90s");
    assert_eq!(c[8], 1);
}

#[test]
fn config_secret_account_namespace_and_lease() {
    let cm = json!({"metadata": meta("cfg", 60), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(
        cells_of("", "configmaps", &cm),
        vec![json!("cfg"), json!(3), json!("60s")]
    );
    let secret = json!({"metadata": meta("tls", 60), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells_of("", "secrets", &secret),
        vec![
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("60s")
        ]
    );
    let sa = json!({"metadata": meta("default", 60)});
    assert_eq!(
        cells_of("", "serviceaccounts", &sa),
        vec![json!("default"), json!(0), json!("60s")]
    );
    let ns = json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(86400 * 3)}, "status": {"phase": "Active"}});
    assert_eq!(
        cells_of("", "namespaces", &ns),
        vec![json!("kube-system"), json!("Active"), json!("3d")]
    );
    let lease = json!({"metadata": meta("kadm-controller-manager", 60), "spec": {"holderIdentity": "host_1234"}});
    assert_eq!(
        cells_of("coordination.k8s.io", "leases", &lease),
        vec![
            json!("kadm-controller-manager"),
            json!("host_1234"),
            json!("60s")
        ]
    );
}

#[test]
fn endpoint_slices_list_ports_and_addresses() {
    let slice = json!({"metadata": meta("web-abcde", 60), "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
    assert_eq!(
        cells_of("discovery.k8s.io", "endpointslices", &slice),
        vec![
            json!("web-abcde"),
            json!("IPv4"),
            json!("80,named,*"),
            json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."),
            json!("60s"),
        ]
    );
    let empty = json!({"metadata": meta("e", 60), "addressType": "IPv6"});
    let c = cells_of("discovery.k8s.io", "endpointslices", &empty);
    assert_eq!(c[2..4], [json!("<unset>"), json!("<unset>")]);
}

#[test]
fn rbac_bindings_and_default_tables() {
    let rb = json!({"metadata": meta("viewers", 60), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                     {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"}, {"kind": "User", "name": "bob"}]});
    assert_eq!(
        cells_of("rbac.authorization.k8s.io", "rolebindings", &rb),
        vec![
            json!("viewers"),
            json!("ClusterRole/view"),
            json!("60s"),
            json!("alice, bob"),
            json!("devs"),
            json!("tools/ci"),
        ]
    );
    let crb = json!({"metadata": {"name": "admins", "creationTimestamp": ago(5)},
        "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}});
    assert_eq!(
        cells_of("rbac.authorization.k8s.io", "clusterrolebindings", &crb),
        vec![
            json!("admins"),
            json!("ClusterRole/cluster-admin"),
            json!("5s"),
            json!(""),
            json!(""),
            json!("")
        ]
    );
    let role = json!({"metadata": {"name": "reader", "namespace": "default", "creationTimestamp": "2025-05-01T10:00:00Z"}});
    assert_eq!(
        cells_of("rbac.authorization.k8s.io", "roles", &role),
        vec![json!("reader"), json!("2025-05-01T10:00:00Z")]
    );
}

#[test]
fn csr_pdb_and_priority_class() {
    let csr = json!({"metadata": {"name": "node-csr-1", "creationTimestamp": ago(120)},
        "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "system:admin", "expirationSeconds": 86400},
        "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}});
    assert_eq!(
        cells_of("certificates.k8s.io", "certificatesigningrequests", &csr),
        vec![
            json!("node-csr-1"),
            json!("2m"),
            json!("kubernetes.io/kube-apiserver-client"),
            json!("system:admin"),
            json!("24h"),
            json!("Approved,Issued"),
        ]
    );
    let pending = json!({"metadata": {"name": "p"}, "spec": {"signerName": ""}});
    let c = cells_of(
        "certificates.k8s.io",
        "certificatesigningrequests",
        &pending,
    );
    assert_eq!(
        c[1..6],
        [
            json!("<unknown>"),
            json!("<none>"),
            json!(""),
            json!("<none>"),
            json!("Pending")
        ]
    );
    let denied = json!({"metadata": {"name": "d"}, "status": {"conditions": [{"type": "Approved"}, {"type": "Denied"}, {"type": "Failed"}]}});
    assert_eq!(
        cells_of("certificates.k8s.io", "certificatesigningrequests", &denied)[5],
        "Denied,Failed"
    );
    let pdb = json!({"metadata": meta("web", 60), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells_of("policy", "poddisruptionbudgets", &pdb),
        vec![
            json!("web"),
            json!("2"),
            json!("N/A"),
            json!(1),
            json!("60s")
        ]
    );
    let pct = json!({"metadata": meta("web", 60), "spec": {"maxUnavailable": "50%"}});
    assert_eq!(
        cells_of("policy", "poddisruptionbudgets", &pct)[1..4],
        [json!("N/A"), json!("50%"), json!(0)]
    );
    let pc = json!({"metadata": {"name": "high", "creationTimestamp": ago(60)}, "value": 1000000,
        "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority"});
    assert_eq!(
        cells_of("scheduling.k8s.io", "priorityclasses", &pc),
        vec![
            json!("high"),
            json!(1000000),
            json!(false),
            json!("60s"),
            json!("PreemptLowerPriority")
        ]
    );
}

#[test]
fn namespace_table_prints_status() {
    let ns = lookup("", "v1", "namespaces").expect("ns");
    let obj = json!({"metadata": {"name": "default", "creationTimestamp": crate::meta::now()}, "status": {"phase": "Active"}});
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
    assert!(t["rows"][0].get("conditions").is_none());
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    let bare = to_table(ns, &[], json!({}), IncludeObject::None, false);
    assert_eq!(bare["columnDefinitions"], json!([]));
}

#[test]
fn scale_table_is_printscale() {
    let scale = json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7", "creationTimestamp": crate::meta::now()},
        "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "app=web"}});
    let t = scale_to_table(&scale, IncludeObject::Metadata);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["Name", "Desired", "Available", "Age"]);
    assert_eq!(t["columnDefinitions"][0]["format"], "");
    assert_eq!(t["rows"][0]["cells"], json!(["web", 3, 2, "0s"]));
    assert_eq!(t["metadata"]["resourceVersion"], "7");
}

#[test]
fn controller_revisions_name_their_controller_with_kind_and_group() {
    assert_eq!(
        shape("apps", "controllerrevisions"),
        cols(&[
            ("Name", "string", 0),
            ("Controller", "string", 0),
            ("Revision", "string", 0),
            ("Age", "string", 0),
        ])
    );
    let mut m = meta("web-5d4f8b", 30);
    m["ownerReferences"] = json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "u-2"},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u-3", "controller": true},
    ]);
    let cr = json!({"metadata": m, "data": {}, "revision": 3});
    assert_eq!(
        cells_of("apps", "controllerrevisions", &cr),
        vec![
            json!("web-5d4f8b"),
            json!("statefulset.apps/web"),
            json!(3),
            json!("30s")
        ]
    );
    let orphan = json!({"metadata": meta("x", 5), "revision": 1});
    assert_eq!(
        cells_of("apps", "controllerrevisions", &orphan)[1],
        "<none>"
    );
}

#[test]
fn claims_show_capacity_and_modes_only_once_bound() {
    assert_eq!(
        shape("", "persistentvolumeclaims"),
        cols(&[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Volume", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("StorageClass", "string", 0),
            ("VolumeAttributesClass", "string", 0),
            ("Age", "string", 0),
            ("VolumeMode", "string", 1),
        ])
    );
    let pending = json!({"metadata": meta("www-web-0", 10),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "standard", "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}});
    assert_eq!(
        cells_of("", "persistentvolumeclaims", &pending),
        vec![
            json!("www-web-0"),
            json!("Pending"),
            json!(""),
            json!(""),
            json!(""),
            json!("standard"),
            json!("<unset>"),
            json!("10s"),
            json!("Filesystem"),
        ]
    );
    let mut bound_meta = meta("data", 10);
    bound_meta["deletionTimestamp"] = json!(ago(1));
    let bound = json!({"metadata": bound_meta,
        "spec": {"volumeName": "pv-1", "storageClassName": "standard"},
        "status": {"phase": "Bound", "capacity": {"storage": "2Gi"},
                   "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}});
    let c = cells_of("", "persistentvolumeclaims", &bound);
    assert_eq!(
        c[1..5],
        [
            json!("Terminating"),
            json!("pv-1"),
            json!("2Gi"),
            json!("RWO,RWX")
        ]
    );
    assert_eq!(c[8], "<unset>");
}

#[test]
fn resource_quota_table_splits_requests_and_limits() {
    assert_eq!(
        shape("", "resourcequotas"),
        cols(&[
            ("Name", "string", 0),
            ("Age", "string", 0),
            ("Request", "string", 0),
            ("Limit", "string", 0)
        ])
    );
    let quota = json!({"metadata": {"name": "q1", "creationTimestamp": ago(60)},
        "status": {"hard": {"pods": "2", "requests.cpu": "1", "limits.memory": "1Gi"},
                   "used": {"pods": "1", "requests.cpu": "500m"}}});
    assert_eq!(
        cells_of("", "resourcequotas", &quota),
        vec![
            json!("q1"),
            json!("60s"),
            json!("pods: 1/2, requests.cpu: 500m/1"),
            json!("limits.memory: 0/1Gi")
        ]
    );
    // LimitRanges get Kubernetes' Name / Created At table.
    assert_eq!(
        shape("", "limitranges"),
        cols(&[("Name", "string", 0), ("Created At", "date", 0)])
    );
}
