//! Validation of objects before they are stored, with Kubernetes' field paths and messages.
//!
//! Two layers: [`decode_typed`] checks that the JSON has the shape of the Kubernetes
//! type (a string where a string belongs — a failure there is a 400, like a decode
//! error in Kubernetes), and [`validate`] checks the semantic rules (names, required
//! fields, ranges) and returns one [`Cause`] per problem for a 422.

mod policy;

use serde_json::{Value, json};

use crate::registry::ResourceInfo;
use crate::status::Cause;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Problems with `s` as an RFC 1123 label (≤ 63), in Kubernetes' words.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().next().is_some_and(is_lower_alnum)
        && s.chars().last().is_some_and(is_lower_alnum);
    if !ok {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// Problems with `s` as an RFC 1123 subdomain (≤ 253, dot-separated labels).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_lower_alnum(c) || c == '-')
                && part.chars().next().is_some_and(is_lower_alnum)
                && part.chars().last().is_some_and(is_lower_alnum)
        });
    if !ok {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Problems with `s` as a DNS-1035 label (Service names: must start with a letter).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().last().is_some_and(is_lower_alnum);
    if !ok {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

/// Names that only have to be usable as a URL path segment (RBAC objects).
pub fn path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    let mut errs = Vec::new();
    for bad in ["/", "%"] {
        if s.contains(bad) {
            errs.push(format!("may not contain '{bad}'"));
        }
    }
    errs
}

/// A ConfigMap/Secret data key.
pub fn config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    if s == "." || s == ".." {
        errs.push(format!("must not be '{s}'"));
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

fn name_part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain.
pub fn qualified_name(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !name_part_ok(name) && name.len() <= 63 {
        errs.push(QUALIFIED_NAME_MSG.to_string());
    }
    errs
}

/// A label value: empty, or ≤ 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !name_part_ok(&s[..s.len().min(63)]) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// The name rule a resource's objects follow.
fn name_rule(res: &ResourceInfo) -> fn(&str) -> Vec<String> {
    match (res.group, res.plural) {
        ("", "namespaces") => dns1123_label,
        ("", "services") => dns1035_label,
        ("rbac.authorization.k8s.io", _) => path_segment_name,
        _ => dns1123_subdomain,
    }
}

/// Checks a name (or a generateName prefix) as used in URLs, before anything is read.
pub fn validate_name(res: &ResourceInfo, name: &str) -> Vec<Cause> {
    name_rule(res)(name)
        .into_iter()
        .map(|e| Cause::invalid("metadata.name", &json!(name), e))
        .collect()
}

/// Semantic validation of an object about to be stored.
pub fn validate(res: &ResourceInfo, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_object_meta(res, obj, &mut causes);
    match (res.group, res.kind) {
        ("", "ConfigMap") => validate_data_keys(obj, &["data", "binaryData"], &mut causes),
        ("", "Secret") => validate_data_keys(obj, &["data", "stringData"], &mut causes),
        ("", "Pod") => validate_pod_spec(obj.get("spec"), "spec", &mut causes),
        ("", "Service") => validate_service(obj, &mut causes),
        ("", "LimitRange") => policy::validate_limit_range(obj, &mut causes),
        ("", "ResourceQuota") => policy::validate_resource_quota(obj, &mut causes),
        ("scheduling.k8s.io", "PriorityClass") => policy::validate_priority_class(obj, &mut causes),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            validate_workload(res, obj, &mut causes)
        }
        ("batch", "Job") => {
            if let Some(t) = obj.pointer("/spec/template/spec") {
                validate_pod_spec(Some(t), "spec.template.spec", &mut causes);
            } else {
                causes.push(Cause::required("spec.template", ""));
            }
        }
        _ => {}
    }
    causes
}

fn validate_object_meta(res: &ResourceInfo, obj: &Value, causes: &mut Vec<Cause>) {
    let name = crate::meta::name(obj);
    let generate = crate::meta::generate_name(obj);
    if name.is_empty() {
        if generate.is_empty() {
            causes.push(Cause::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        causes.extend(validate_name(res, name));
    }
    let ns = crate::meta::namespace(obj);
    if res.namespaced() {
        if ns.is_empty() {
            causes.push(Cause::required("metadata.namespace", ""));
        }
    } else if !ns.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(labels) = crate::meta::metadata(obj).and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(map) => {
                for (k, v) in map {
                    for e in qualified_name(k) {
                        causes.push(Cause::invalid("metadata.labels", &json!(k), e));
                    }
                    match v.as_str() {
                        Some(s) => {
                            for e in label_value(s) {
                                causes.push(Cause::invalid("metadata.labels", &json!(s), e));
                            }
                        }
                        None => causes.push(Cause::invalid(
                            "metadata.labels",
                            v,
                            "label values must be strings",
                        )),
                    }
                }
            }
            None if labels.is_null() => {}
            None => causes.push(Cause::invalid(
                "metadata.labels",
                labels,
                "must be a map of strings",
            )),
        }
    }
    if let Some(ann) = crate::meta::metadata(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut total = 0usize;
        for (k, v) in ann {
            for e in qualified_name(k) {
                causes.push(Cause::invalid("metadata.annotations", &json!(k), e));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause::too_long("metadata.annotations", 256 * 1024));
        }
    }
}

fn validate_data_keys(obj: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    let mut total = 0usize;
    let mut seen = std::collections::BTreeSet::new();
    for f in fields {
        if let Some(map) = obj.get(*f).and_then(Value::as_object) {
            for (k, v) in map {
                for e in config_key(k) {
                    causes.push(Cause::invalid(format!("{f}[{k}]"), &json!(k), e));
                }
                if !seen.insert(k.clone()) && *f != "stringData" {
                    causes.push(Cause::invalid(
                        format!("{f}[{k}]"),
                        &json!(k),
                        "duplicate of key present in data",
                    ));
                }
                total += v.as_str().map_or(0, str::len);
            }
        }
    }
    if total > 1024 * 1024 {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            message: "Too long: must have at most 1048576 bytes".into(),
            field: String::new(),
        });
    }
}

fn validate_pod_spec(spec: Option<&Value>, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.filter(|s| s.is_object()) else {
        causes.push(Cause::required(path, ""));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        None => causes.push(Cause::required(format!("{path}.containers"), "")),
        Some(c) if c.is_empty() => causes.push(Cause::required(format!("{path}.containers"), "")),
        Some(_) => {}
    }
    let mut names = std::collections::BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let p = format!("{path}.{list}[{i}]");
            match c.get("name").and_then(Value::as_str) {
                None | Some("") => causes.push(Cause::required(format!("{p}.name"), "")),
                Some(n) => {
                    for e in dns1123_label(n) {
                        causes.push(Cause::invalid(format!("{p}.name"), &json!(n), e));
                    }
                    if !names.insert(n.to_string()) {
                        causes.push(Cause::duplicate(format!("{p}.name"), &json!(n)));
                    }
                }
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                causes.push(Cause::required(format!("{p}.image"), ""));
            }
            for (j, port) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(n) = port.get("containerPort").and_then(Value::as_i64)
                    && !(1..=65535).contains(&n)
                {
                    causes.push(Cause::invalid(
                        format!("{p}.ports[{j}].containerPort"),
                        &json!(n),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
        }
    }
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str)
        && !["Always", "OnFailure", "Never"].contains(&rp)
    {
        causes.push(Cause::not_supported(
            format!("{path}.restartPolicy"),
            &json!(rp),
            &["Always", "OnFailure", "Never"],
        ));
    }
}

fn validate_service(obj: &Value, causes: &mut Vec<Cause>) {
    let spec = obj.get("spec");
    let ty = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty) {
        causes.push(Cause::not_supported(
            "spec.type",
            &json!(ty),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }
    let headless = spec
        .and_then(|s| s.get("clusterIP"))
        .and_then(Value::as_str)
        == Some("None");
    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
    if ty != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
        causes.push(Cause::required("spec.ports", ""));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            causes.push(Cause::invalid(
                format!("spec.ports[{i}].port"),
                &json!(port),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !seen.insert((port, proto.to_string())) {
            causes.push(Cause::duplicate(
                format!("spec.ports[{i}]"),
                &json!({"port": port, "protocol": proto}),
            ));
        }
        if ports.is_some_and(|all| all.len() > 1)
            && p.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("spec.ports[{i}].name"), ""));
        }
    }
}

fn validate_workload(res: &ResourceInfo, obj: &Value, causes: &mut Vec<Cause>) {
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64)
        && r < 0
    {
        causes.push(Cause::invalid(
            "spec.replicas",
            &json!(r),
            "must be greater than or equal to 0",
        ));
    }
    let selector = obj.pointer("/spec/selector");
    let has_selector = selector.is_some_and(|s| {
        s.get("matchLabels")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
            || s.get("matchExpressions")
                .and_then(Value::as_array)
                .is_some_and(|m| !m.is_empty())
    });
    if !has_selector {
        causes.push(Cause::required("spec.selector", ""));
    }
    let Some(template) = obj.pointer("/spec/template") else {
        causes.push(Cause::required("spec.template", ""));
        return;
    };
    validate_pod_spec(template.get("spec"), "spec.template.spec", causes);
    if let Some(match_labels) = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object)
    {
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let matches = match_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if !matches {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                &labels.map_or(json!({}), |l| Value::Object(l.clone())),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if res.kind == "Deployment"
        && let Some(ty) = obj.pointer("/spec/strategy/type").and_then(Value::as_str)
        && !["Recreate", "RollingUpdate"].contains(&ty)
    {
        causes.push(Cause::not_supported(
            "spec.strategy.type",
            &json!(ty),
            &["Recreate", "RollingUpdate"],
        ));
    }
}

/// Decodes `obj` into the Kubernetes type of `res`, so a field of the wrong JSON
/// type is refused with the decoder's message before anything else looks at it.
pub fn decode_typed(res: &ResourceInfo, obj: &Value) -> Result<(), String> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, certificates::v1 as certs, coordination::v1 as coord,
        core::v1 as core, discovery::v1 as disc, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as sched,
    };
    fn check<T: serde::de::DeserializeOwned>(obj: &Value) -> Result<(), String> {
        T::deserialize(obj).map(|_| ()).map_err(|e| e.to_string())
    }
    match (res.group, res.kind) {
        ("", "Namespace") => check::<core::Namespace>(obj),
        ("", "Pod") => check::<core::Pod>(obj),
        ("", "Node") => check::<core::Node>(obj),
        ("", "Service") => check::<core::Service>(obj),
        ("", "Endpoints") => check::<core::Endpoints>(obj),
        ("", "PersistentVolumeClaim") => check::<core::PersistentVolumeClaim>(obj),
        ("", "ConfigMap") => check::<core::ConfigMap>(obj),
        ("", "Secret") => check::<core::Secret>(obj),
        ("", "ServiceAccount") => check::<core::ServiceAccount>(obj),
        ("", "LimitRange") => check::<core::LimitRange>(obj),
        ("", "ResourceQuota") => check::<core::ResourceQuota>(obj),
        ("", "Event") => check::<core::Event>(obj),
        ("events.k8s.io", "Event") => check::<k8s_openapi::api::events::v1::Event>(obj),
        ("apps", "Deployment") => check::<apps::Deployment>(obj),
        ("apps", "ReplicaSet") => check::<apps::ReplicaSet>(obj),
        ("apps", "StatefulSet") => check::<apps::StatefulSet>(obj),
        ("apps", "DaemonSet") => check::<apps::DaemonSet>(obj),
        ("apps", "ControllerRevision") => check::<apps::ControllerRevision>(obj),
        ("batch", "Job") => check::<batch::Job>(obj),
        ("batch", "CronJob") => check::<batch::CronJob>(obj),
        ("coordination.k8s.io", "Lease") => check::<coord::Lease>(obj),
        ("discovery.k8s.io", "EndpointSlice") => check::<disc::EndpointSlice>(obj),
        ("rbac.authorization.k8s.io", "Role") => check::<rbac::Role>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => check::<rbac::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => check::<rbac::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            check::<rbac::ClusterRoleBinding>(obj)
        }
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            check::<certs::CertificateSigningRequest>(obj)
        }
        ("policy", "PodDisruptionBudget") => check::<policy::PodDisruptionBudget>(obj),
        ("scheduling.k8s.io", "PriorityClass") => check::<sched::PriorityClass>(obj),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn names_follow_rfc1123() {
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert!(!dns1123_subdomain("A").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(!dns1123_subdomain("-a").is_empty());
        assert_eq!(dns1123_subdomain(&"a".repeat(254)).len(), 1);
        assert!(dns1123_label("abc-1").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(!dns1035_label("1abc").is_empty());
        assert!(dns1035_label("abc").is_empty());
    }

    #[test]
    fn missing_name_is_required_unless_generate_name() {
        let cm = lookup("", "v1", "configmaps").expect("cm");
        let c = validate(cm, &json!({"metadata": {"namespace": "default"}}));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "metadata.name");
        assert_eq!(
            c[0].message,
            "Required value: name or generateName is required"
        );
        assert!(
            validate(
                cm,
                &json!({"metadata": {"generateName": "x-", "namespace": "d"}})
            )
            .is_empty()
        );
    }

    #[test]
    fn bad_config_keys_and_labels_are_named() {
        let cm = lookup("", "v1", "configmaps").expect("cm");
        let c = validate(
            cm,
            &json!({"metadata": {"name": "c", "namespace": "d", "labels": {"ok": "-bad"}}, "data": {"a b": "x"}}),
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert!(fields.contains(&"metadata.labels"), "{fields:?}");
        assert!(fields.contains(&"data[a b]"), "{fields:?}");
    }

    #[test]
    fn pod_needs_containers_with_images() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let c = validate(
            pods,
            &json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "a"}, {"name": "a", "image": "x"}]}}),
        );
        let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.containers[0].image", "spec.containers[1].name"]
        );
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = lookup("apps", "v1", "deployments").expect("deploy");
        let obj = json!({"metadata": {"name": "d", "namespace": "x"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let c = validate(d, &obj);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn wrong_json_types_fail_typed_decode() {
        let cm = lookup("", "v1", "configmaps").expect("cm");
        assert!(decode_typed(cm, &json!({"metadata": {"name": "c"}, "data": {"a": 1}})).is_err());
        assert!(decode_typed(cm, &json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).is_ok());
    }

    #[test]
    fn cluster_scoped_objects_refuse_a_namespace() {
        let ns = lookup("", "v1", "namespaces").expect("ns");
        let c = validate(ns, &json!({"metadata": {"name": "a", "namespace": "b"}}));
        assert_eq!(c[0].field, "metadata.namespace");
    }
}
