//! Pod priorities from `scheduling.k8s.io/v1` PriorityClasses, resolved the way Kubernetes'
//! Priority admission plugin resolves them.
//!
//! kadm's apiserver does not run that admission plugin (yet), so a pod may carry only a
//! `priorityClassName`. The scheduler resolves it itself: `spec.priority` when the pod has
//! one, else the named class, else the global default class, else zero.

use std::collections::HashMap;

use k8s_openapi::api::scheduling::v1::PriorityClass;

use crate::objects::PodSpecLite;

/// Kubernetes' built-in `system-cluster-critical` priority.
pub const SYSTEM_CLUSTER_CRITICAL: i32 = 2_000_000_000;
/// Kubernetes' built-in `system-node-critical` priority.
pub const SYSTEM_NODE_CRITICAL: i32 = 2_000_001_000;

/// `preemptionPolicy: Never`.
pub const PREEMPT_NEVER: &str = "Never";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    value: i32,
    global_default: bool,
    preemption_policy: Option<String>,
}

/// The PriorityClasses the scheduler has seen.
#[derive(Debug, Clone, Default)]
pub struct PriorityClasses {
    by_name: HashMap<String, Class>,
}

/// A pod's resolved priority and whether it may preempt others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub priority: i32,
    pub preempt_never: bool,
}

impl PriorityClasses {
    pub fn apply(&mut self, pc: &PriorityClass) {
        let Some(name) = pc.metadata.name.clone() else {
            return;
        };
        self.by_name.insert(
            name,
            Class {
                value: pc.value,
                global_default: pc.global_default.unwrap_or(false),
                preemption_policy: pc.preemption_policy.clone(),
            },
        );
    }

    pub fn delete(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    /// Replaces everything (after a re-list).
    pub fn replace(&mut self, all: &[PriorityClass]) {
        self.by_name.clear();
        for pc in all {
            self.apply(pc);
        }
    }

    fn class(&self, name: &str) -> Option<Class> {
        if let Some(c) = self.by_name.get(name) {
            return Some(c.clone());
        }
        let builtin = match name {
            "system-node-critical" => SYSTEM_NODE_CRITICAL,
            "system-cluster-critical" => SYSTEM_CLUSTER_CRITICAL,
            _ => return None,
        };
        Some(Class {
            value: builtin,
            global_default: false,
            preemption_policy: None,
        })
    }

    /// With several global defaults (a race Kubernetes tolerates), the lowest value wins.
    fn global_default(&self) -> Option<&Class> {
        self.by_name
            .values()
            .filter(|c| c.global_default)
            .min_by_key(|c| c.value)
    }

    pub fn resolve(&self, spec: &PodSpecLite) -> Resolved {
        let named = spec
            .priority_class_name
            .as_deref()
            .filter(|n| !n.is_empty());
        let class = match named {
            Some(n) => self.class(n),
            None => self.global_default().cloned(),
        };
        let priority = spec
            .priority
            .or(class.as_ref().map(|c| c.value))
            .unwrap_or(0);
        let policy = spec
            .preemption_policy
            .as_deref()
            .or(class.as_ref().and_then(|c| c.preemption_policy.as_deref()));
        Resolved {
            priority,
            preempt_never: policy == Some(PREEMPT_NEVER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pc(name: &str, value: i32, default: bool, policy: Option<&str>) -> PriorityClass {
        serde_json::from_value(json!({"metadata": {"name": name}, "value": value,
            "globalDefault": default, "preemptionPolicy": policy}))
        .expect("pc")
    }

    fn spec(v: serde_json::Value) -> PodSpecLite {
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn spec_priority_then_class_then_global_default_then_zero() {
        let mut pcs = PriorityClasses::default();
        assert_eq!(pcs.resolve(&spec(json!({}))).priority, 0);
        pcs.apply(&pc("high", 1000, false, None));
        pcs.apply(&pc("low-default", 10, true, None));
        pcs.apply(&pc("lower-default", 5, true, None));
        assert_eq!(
            pcs.resolve(&spec(json!({"priorityClassName": "high"})))
                .priority,
            1000
        );
        assert_eq!(
            pcs.resolve(&spec(json!({"priority": 7, "priorityClassName": "high"})))
                .priority,
            7
        );
        assert_eq!(pcs.resolve(&spec(json!({}))).priority, 5);
        assert_eq!(
            pcs.resolve(&spec(json!({"priorityClassName": "system-node-critical"})))
                .priority,
            SYSTEM_NODE_CRITICAL
        );
        assert_eq!(
            pcs.resolve(&spec(json!({"priorityClassName": "missing"})))
                .priority,
            0
        );
        pcs.delete("high");
        assert_eq!(
            pcs.resolve(&spec(json!({"priorityClassName": "high"})))
                .priority,
            0
        );
    }

    #[test]
    fn preemption_policy_comes_from_the_pod_or_its_class() {
        let mut pcs = PriorityClasses::default();
        pcs.apply(&pc("polite", 100, false, Some("Never")));
        assert!(
            pcs.resolve(&spec(json!({"priorityClassName": "polite"})))
                .preempt_never
        );
        assert!(
            !pcs.resolve(&spec(
                json!({"priorityClassName": "polite", "preemptionPolicy": "PreemptLowerPriority"})
            ))
            .preempt_never
        );
        assert!(
            pcs.resolve(&spec(json!({"preemptionPolicy": "Never"})))
                .preempt_never
        );
    }
}
