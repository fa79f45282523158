//! A container's environment, resolved as the kubelet does: `envFrom` (ConfigMaps and
//! Secrets, with prefixes), then `env` (literal values with `$(VAR)` expansion, fieldRef,
//! resourceFieldRef, configMapKeyRef, secretKeyRef). A missing, non-optional source is
//! a `CreateContainerConfigError` with Kubernetes' message.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};
use kadm_apimachinery::quantity::Quantity;

/// Data of the ConfigMaps and Secrets a pod refers to, by name; `None`: it does not exist.
pub type Sources = HashMap<String, Option<BTreeMap<String, String>>>;

/// Everything an environment can refer to.
pub struct EnvInputs<'a> {
    pub pod: &'a Pod,
    pub host_ips: &'a [String],
    pub pod_ips: &'a [String],
    pub config_maps: &'a Sources,
    pub secrets: &'a Sources,
    /// Defaults for limits a container does not set (node allocatable).
    pub node_cpu_milli: i64,
    pub node_memory: i64,
}

/// The ConfigMaps and Secrets the pod's containers refer to in env and envFrom.
pub fn referenced(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let Some(spec) = &pod.spec else {
        return (cms, secrets);
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            let Some(vf) = &e.value_from else { continue };
            if let Some(r) = &vf.config_map_key_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &vf.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (cms, secrets)
}

/// Expands `$(NAME)` from `vars`; `$$` is a literal `$`; unknown references stay as
/// written (Kubernetes' expansion rules).
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(')
            && let Some(end) = r.find(')')
        {
            let name = &r[..end];
            match vars(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_value(inputs: &EnvInputs<'_>, path: &str) -> Result<String, String> {
    let m = &inputs.pod.metadata;
    let spec = inputs.pod.spec.clone().unwrap_or_default();
    let map_entry = |map: &Option<BTreeMap<String, String>>, key: &str| {
        map.as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    let all = |map: &Option<BTreeMap<String, String>>| {
        map.as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    let sub = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => all(&m.labels),
        "metadata.annotations" => all(&m.annotations),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" => inputs.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => inputs.host_ips.join(","),
        "status.podIP" => inputs.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => inputs.pod_ips.join(","),
        p => {
            if let Some(k) = sub("metadata.labels") {
                map_entry(&m.labels, &k)
            } else if let Some(k) = sub("metadata.annotations") {
                map_entry(&m.annotations, &k)
            } else {
                return Err(format!("unsupported fieldRef {p:?}"));
            }
        }
    })
}

fn resource_value(
    inputs: &EnvInputs<'_>,
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, String> {
    let res = container.resources.clone().unwrap_or_default();
    let get =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| {
            m.as_ref()
                .and_then(|m| m.get(k))
                .and_then(|q| Quantity::parse(&q.0).ok())
        };
    let divisor = divisor
        .map(|d| Quantity::parse(d).map_err(|e| e.to_string()))
        .transpose()?
        .filter(|d| !d.is_zero())
        .unwrap_or_else(|| Quantity::from_value(1));
    let (which, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resourceFieldRef {resource:?}"))?;
    let q = match which {
        "limits" => get(&res.limits, name),
        "requests" => get(&res.requests, name).or_else(|| get(&res.limits, name)),
        _ => return Err(format!("unsupported resourceFieldRef {resource:?}")),
    };
    let ceil_div = |a: i64, b: i64| if b == 0 { 0 } else { (a + b - 1).div_euclid(b) };
    match name {
        "cpu" => {
            let milli = q.map_or(inputs.node_cpu_milli, |q| q.milli_value());
            Ok(ceil_div(milli, divisor.milli_value().max(1)).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let v = q.map_or(inputs.node_memory, |q| q.value());
            Ok(ceil_div(v, divisor.value().max(1)).to_string())
        }
        _ => Ok(q.map_or(0, |q| q.value()).to_string()),
    }
}

/// The container's environment, in order; an error is the `CreateContainerConfigError`
/// message.
pub fn resolve(
    container: &Container,
    inputs: &EnvInputs<'_>,
) -> Result<Vec<(String, String)>, String> {
    let namespace = inputs.pod.metadata.namespace.clone().unwrap_or_default();
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(n, _)| *n == k)
    {
        Some(e) => e.1 = v,
        None => env.push((k, v)),
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional, sources) = if let Some(r) = &from.config_map_ref {
            (
                "configmap",
                &r.name,
                r.optional.unwrap_or(false),
                inputs.config_maps,
            )
        } else if let Some(r) = &from.secret_ref {
            (
                "secret",
                &r.name,
                r.optional.unwrap_or(false),
                inputs.secrets,
            )
        } else {
            continue;
        };
        match sources.get(name.as_str()).cloned().flatten() {
            Some(data) => {
                for (k, v) in data {
                    if k.contains('=') {
                        continue;
                    }
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => return Err(format!("{kind} {name:?} not found")),
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let snapshot = env.clone();
                let lookup = move |n: &str| {
                    snapshot
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                };
                expand(e.value.as_deref().unwrap_or(""), &lookup)
            }
            Some(vf) => {
                if let Some(f) = &vf.field_ref {
                    field_value(inputs, &f.field_path)?
                } else if let Some(r) = &vf.resource_field_ref {
                    let c = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
                        Some(n) => inputs
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|s| {
                                s.containers
                                    .iter()
                                    .chain(s.init_containers.iter().flatten())
                                    .find(|c| c.name == n)
                                    .cloned()
                            })
                            .ok_or_else(|| format!("container {n:?} not found"))?,
                        None => container.clone(),
                    };
                    resource_value(
                        inputs,
                        &c,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                    )?
                } else if let Some(r) = &vf.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match inputs.config_maps.get(r.name.as_str()).cloned().flatten() {
                        None if optional => continue,
                        None => return Err(format!("configmap {:?} not found", r.name)),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in ConfigMap {}/{}",
                                    r.key, namespace, r.name
                                ));
                            }
                        },
                    }
                } else if let Some(r) = &vf.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match inputs.secrets.get(r.name.as_str()).cloned().flatten() {
                        None if optional => continue,
                        None => return Err(format!("secret {:?} not found", r.name)),
                        Some(data) => match data.get(&r.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in Secret {}/{}",
                                    r.key, namespace, r.name
                                ));
                            }
                        },
                    }
                } else {
                    String::new()
                }
            }
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` in command and args from the resolved environment.
pub fn expand_all(items: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    items.iter().map(|s| expand(s, &lookup)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c", "image": "busybox",
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "envFrom": [
                    {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                    {"secretRef": {"name": "missing", "optional": true}}
                ],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-$(CM_k)-$$(A)-$(NOPE)"},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nokey", "optional": true}}}
                ]
            }]}
        }))
        .expect("pod")
    }

    fn sources(pairs: &[(&str, &[(&str, &str)])]) -> Sources {
        pairs
            .iter()
            .map(|(n, kv)| {
                (
                    n.to_string(),
                    Some(
                        kv.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn env_resolves_every_source_kind() {
        let p = pod();
        let cms = sources(&[("cm", &[("k", "v")])]);
        let secrets = sources(&[("s", &[("pw", "hunter2")])]);
        let inputs = EnvInputs {
            pod: &p,
            host_ips: &["192.0.2.1".into()],
            pod_ips: &["10.244.0.5".into()],
            config_maps: &cms,
            secrets: &secrets,
            node_cpu_milli: 2000,
            node_memory: 1 << 30,
        };
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let env: BTreeMap<String, String> = resolve(c, &inputs).expect("env").into_iter().collect();
        assert_eq!(env["CM_k"], "v");
        assert_eq!(env["B"], "a-v-$(A)-$(NOPE)");
        assert_eq!(env["NODE"], "n1");
        assert_eq!(env["APP"], "web");
        assert_eq!(env["IP"], "10.244.0.5");
        assert_eq!(env["CPU"], "500");
        assert_eq!(env["MEM"], "64");
        assert_eq!(
            env["REQ_CPU"], "1",
            "requests default to limits, rounded up"
        );
        assert_eq!(env["PW"], "hunter2");
        assert!(!env.contains_key("OPT"));
        assert_eq!(
            referenced(&p),
            (
                BTreeSet::from(["cm".to_string()]),
                BTreeSet::from(["missing".to_string(), "s".to_string()])
            )
        );
    }

    #[test]
    fn missing_sources_give_kubernetes_messages() {
        let p = pod();
        let c = &p.spec.as_ref().expect("spec").containers[0];
        let none: Sources = HashMap::from([("cm".to_string(), None)]);
        let secrets = sources(&[("s", &[("pw", "x")])]);
        let inputs = |cms: &'static Sources, s: &'static Sources| EnvInputs {
            pod: Box::leak(Box::new(p.clone())),
            host_ips: &[],
            pod_ips: &[],
            config_maps: cms,
            secrets: s,
            node_cpu_milli: 0,
            node_memory: 0,
        };
        let cms: &'static Sources = Box::leak(Box::new(none));
        let s: &'static Sources = Box::leak(Box::new(secrets));
        assert_eq!(
            resolve(c, &inputs(cms, s)).expect_err("missing"),
            "configmap \"cm\" not found"
        );
        let cms2: &'static Sources = Box::leak(Box::new(sources(&[("cm", &[("k", "v")])])));
        let s2: &'static Sources = Box::leak(Box::new(sources(&[("s", &[("other", "x")])])));
        assert_eq!(
            resolve(c, &inputs(cms2, s2)).expect_err("missing key"),
            "couldn't find key pw in Secret ns/s"
        );
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = |n: &str| (n == "X").then(|| "1".to_string());
        assert_eq!(expand("$(X)$(Y)$$(X)$X$", &vars), "1$(Y)$(X)$X$");
        assert_eq!(expand("$(X", &vars), "$(X");
        assert_eq!(
            expand_all(&["echo $(X)".into()], &[("X".into(), "hi".into())]),
            ["echo hi"]
        );
    }
}
