//! Defaulting: the fields Kubernetes fills in when a client leaves them out, so that
//! `kubectl get -o yaml` against kadm shows what it shows against Kubernetes and
//! controllers can rely on the fields being present.

use serde_json::{Map, Value, json};

use crate::registry::ResourceInfo;

fn obj_at<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = v.as_object_mut()?;
    let e = m.entry(key).or_insert_with(|| json!({}));
    if !e.is_object() {
        return None;
    }
    e.as_object_mut()
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// Fills defaults into `obj` of resource `res` in place.
pub fn apply(res: &ResourceInfo, obj: &mut Value) {
    match (res.group, res.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj_at(obj, "spec") {
                pod_spec(spec);
                requests_from_limits(spec);
            }
        }
        ("", "LimitRange") => {
            for item in obj
                .pointer_mut("/spec/limits")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object_mut)
            {
                limit_range_item(item);
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj_at(obj, "spec") {
                service_spec(spec);
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "Secret") => {
            if let Some(m) = obj.as_object_mut() {
                default(m, "type", json!("Opaque"));
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    default(s, "type", json!("RollingUpdate"));
                    if s.get("type") == Some(&json!("RollingUpdate")) {
                        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            default(ru, "maxUnavailable", json!("25%"));
                            default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
                template(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "replicas", json!(1));
                template(spec);
            }
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
                template(spec);
            }
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
                template(spec);
            }
        }
        ("batch", "Job") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "parallelism", json!(1));
                default(spec, "backoffLimit", json!(6));
                default(spec, "completionMode", json!("NonIndexed"));
                default(spec, "suspend", json!(false));
                default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
                if spec.get("completions").is_none() && spec.get("parallelism") == Some(&json!(1)) {
                    spec.insert("completions".into(), json!(1));
                }
                template(spec);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = obj_at(obj, "spec") {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(m) = obj.as_object_mut() {
                default(m, "preemptionPolicy", json!("PreemptLowerPriority"));
            }
        }
        _ => {}
    }
}

fn template(spec: &mut Map<String, Value>) {
    if let Some(t) = spec.get_mut("template").and_then(Value::as_object_mut)
        && let Some(ps) = t.entry("spec").or_insert_with(|| json!({})).as_object_mut()
    {
        pod_spec(ps);
    }
}

/// Image pull policy default: `Always` for `:latest` or untagged images, else `IfNotPresent`.
pub fn image_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.rsplit_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Map<String, Value>) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    default(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
        }
    }
}

fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
}

/// `SetDefaults_Pod`: a container that limits a resource without requesting it requests
/// the limit. Pods only: templates keep what their author wrote.
fn requests_from_limits(spec: &mut Map<String, Value>) {
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object) else {
                continue;
            };
            let limits = limits.clone();
            let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let requests = resources.entry("requests").or_insert_with(|| json!({}));
            if let Some(requests) = requests.as_object_mut() {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
}

/// `SetDefaults_LimitRangeItem`: for `Container` limits, the default limit falls back to
/// the max, the default request to the default limit, then to the min.
fn limit_range_item(item: &mut Map<String, Value>) {
    if item.get("type").and_then(Value::as_str) != Some("Container") {
        return;
    }
    let list = |item: &Map<String, Value>, key: &str| {
        item.get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (max, min) = (list(item, "max"), list(item, "min"));
    let mut default = list(item, "default");
    for (k, v) in &max {
        default.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut default_request = list(item, "defaultRequest");
    for (k, v) in default.iter().chain(min.iter()) {
        default_request
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    if !default.is_empty() {
        item.insert("default".into(), Value::Object(default));
    }
    if !default_request.is_empty() {
        item.insert("defaultRequest".into(), Value::Object(default_request));
    }
}

fn service_spec(spec: &mut Map<String, Value>) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default(p, "targetPort", port);
            }
        }
    }
}

/// The Pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&Map<String, Value>>| {
            m.map(|m| m.keys().filter(|k| *k == "cpu" || *k == "memory").count())
                .unwrap_or(0)
        };
        if relevant(req) > 0 || relevant(lim) > 0 {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn pod_defaults_fill_only_missing_fields() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let mut p = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "r/x:1.0"}]}});
        apply(pods, &mut p);
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            p["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn pod_containers_request_their_limits() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let mut p = json!({"spec": {"containers": [{"name": "a", "image": "x:1",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}],
            "initContainers": [{"name": "i", "image": "x:1", "resources": {"limits": {"cpu": "2"}}}]}});
        apply(pods, &mut p);
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(
            p["spec"]["initContainers"][0]["resources"]["requests"],
            json!({"cpu": "2"})
        );
        // Templates are left alone, as in Kubernetes.
        let deploy = lookup("apps", "v1", "deployments").expect("deployments");
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1",
            "resources": {"limits": {"cpu": "1"}}}]}}}});
        apply(deploy, &mut d);
        assert!(
            d.pointer("/spec/template/spec/containers/0/resources/requests")
                .is_none()
        );
    }

    #[test]
    fn limit_range_container_defaults_fall_back_to_max_and_min() {
        let lr = lookup("", "v1", "limitranges").expect("limitranges");
        let mut l = json!({"spec": {"limits": [
            {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m", "ephemeral-storage": "1Gi"},
             "default": {"memory": "512Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}}]}});
        apply(lr, &mut l);
        assert_eq!(
            l["spec"]["limits"][0]["default"],
            json!({"memory": "512Mi", "cpu": "2"})
        );
        assert_eq!(
            l["spec"]["limits"][0]["defaultRequest"],
            json!({"memory": "512Mi", "cpu": "2", "ephemeral-storage": "1Gi"})
        );
        assert!(l["spec"]["limits"][1].get("default").is_none());
    }

    #[test]
    fn image_pull_policy_handles_registry_ports() {
        assert_eq!(image_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            image_pull_policy("localhost:5000/busybox:1.36"),
            "IfNotPresent"
        );
        assert_eq!(image_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"spec": {"containers": [{"name": "a"}]}})),
            "BestEffort"
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn priority_class_preempts_lower_priority_by_default() {
        let pc = lookup("scheduling.k8s.io", "v1", "priorityclasses").expect("pc");
        let mut o = json!({"metadata": {"name": "high"}, "value": 1000});
        apply(pc, &mut o);
        assert_eq!(o["preemptionPolicy"], "PreemptLowerPriority");
        let mut never = json!({"value": 1, "preemptionPolicy": "Never"});
        apply(pc, &mut never);
        assert_eq!(never["preemptionPolicy"], "Never");
    }

    #[test]
    fn deployment_gets_rolling_update_defaults() {
        let d = lookup("apps", "v1", "deployments").expect("deploy");
        let mut o = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i:1"}]}}}});
        apply(d, &mut o);
        assert_eq!(o["spec"]["replicas"], 1);
        assert_eq!(o["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(o["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }
}
