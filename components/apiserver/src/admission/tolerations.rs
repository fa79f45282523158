//! DefaultTolerationSeconds: every pod tolerates `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` (NoExecute) for a bounded time, so the taint eviction
//! controller moves pods off a dead node after five minutes instead of at once.

use kadm_apimachinery::ResourceInfo;
use serde_json::{Value, json};

/// The taints DefaultTolerationSeconds adds tolerations for.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// Kubernetes' default for both (`--default-*-toleration-seconds`).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The plugin's settings from the apiserver's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTolerationSeconds {
    pub not_ready_toleration_seconds: i64,
    pub unreachable_toleration_seconds: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        Self {
            not_ready_toleration_seconds: DEFAULT_TOLERATION_SECONDS,
            unreachable_toleration_seconds: DEFAULT_TOLERATION_SECONDS,
        }
    }
}

impl DefaultTolerationSeconds {
    /// Mutates a create or update of `res` itself (subresources are left alone, as in
    /// Kubernetes).
    pub fn mutate(&self, res: &ResourceInfo, subresource: &str, obj: &mut Value) {
        if res.group.is_empty() && res.plural == "pods" && subresource.is_empty() {
            self.default_toleration_seconds(obj);
        }
    }

    /// Adds `<taint>:NoExecute` tolerations for not-ready and unreachable to a pod that
    /// does not tolerate them yet. A toleration with an empty key or an empty effect
    /// counts as tolerating (Kubernetes' rule; the operator is not looked at).
    fn default_toleration_seconds(&self, pod: &mut Value) {
        let tolerates = |tolerations: &[Value], key: &str| {
            tolerations.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                let e = t.get("effect").and_then(Value::as_str).unwrap_or("");
                (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
            })
        };
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let current: Vec<Value> = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut added = Vec::new();
        for (key, seconds) in [
            (NOT_READY_TAINT, self.not_ready_toleration_seconds),
            (UNREACHABLE_TAINT, self.unreachable_toleration_seconds),
        ] {
            if !tolerates(&current, key) {
                added.push(json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": seconds,
                }));
            }
        }
        if added.is_empty() {
            return;
        }
        let mut all = current;
        all.extend(added);
        spec.insert("tolerations".into(), Value::Array(all));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kadm_apimachinery::registry::lookup;

    fn pod(tolerations: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}})
    }

    fn tolerations(obj: &Value) -> Vec<(String, i64)> {
        obj["spec"]["tolerations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_string(),
                    t["tolerationSeconds"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn pods_get_both_default_tolerations() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        DefaultTolerationSeconds::default().mutate(pods, "", &mut p);
        assert_eq!(
            tolerations(&p),
            vec![
                (NOT_READY_TAINT.to_string(), 300),
                (UNREACHABLE_TAINT.to_string(), 300)
            ]
        );
        assert_eq!(p["spec"]["tolerations"][0]["operator"], "Exists");
        assert_eq!(p["spec"]["tolerations"][0]["effect"], "NoExecute");
        // Idempotent: an update of an admitted pod changes nothing.
        let again = p.clone();
        DefaultTolerationSeconds::default().mutate(pods, "", &mut p);
        assert_eq!(p, again);
    }

    #[test]
    fn existing_tolerations_are_kept_and_respected() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let adm = DefaultTolerationSeconds {
            not_ready_toleration_seconds: 30,
            unreachable_toleration_seconds: 60,
        };
        // Tolerates unreachable already (for ever): only not-ready is added.
        let mut p =
            pod(json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]));
        adm.mutate(pods, "", &mut p);
        assert_eq!(
            tolerations(&p),
            vec![
                (UNREACHABLE_TAINT.to_string(), -1),
                (NOT_READY_TAINT.to_string(), 30)
            ]
        );
        // An empty key with an empty effect tolerates everything: nothing is added.
        let mut all = pod(json!([{"operator": "Exists"}]));
        adm.mutate(pods, "", &mut all);
        assert_eq!(tolerations(&all).len(), 1);
        // A NoSchedule toleration of the key does not count.
        let mut ns =
            pod(json!([{"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoSchedule"}]));
        adm.mutate(pods, "", &mut ns);
        assert_eq!(tolerations(&ns).len(), 3);
    }

    #[test]
    fn only_pods_themselves_are_mutated() {
        let pods = lookup("", "v1", "pods").expect("pods");
        let cms = lookup("", "v1", "configmaps").expect("configmaps");
        let mut status = pod(json!([]));
        DefaultTolerationSeconds::default().mutate(pods, "status", &mut status);
        assert!(tolerations(&status).is_empty());
        let mut cm = json!({"metadata": {"name": "c"}, "spec": {}});
        DefaultTolerationSeconds::default().mutate(cms, "", &mut cm);
        assert!(cm["spec"].get("tolerations").is_none());
    }
}
