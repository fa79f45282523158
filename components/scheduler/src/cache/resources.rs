//! Resource quantities as the scheduler sums them: cpu in millicores, everything else in
//! whole units (bytes, pods, devices), rounded up like `resource.Quantity`'s `MilliValue()`
//! and `Value()`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Kubernetes' `DefaultMilliCPURequest`: what a container without a cpu request counts as
/// when nodes are scored, so that zero-request pods do not all pile onto one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Kubernetes' `DefaultMemoryRequest` (200 MiB), the same for memory.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

// Quantities are parsed by the shared machinery (resource.Quantity's rules: rounded up,
// unparsable ones count as zero since the apiserver validates them).
pub use kadm_apimachinery::quantity::{is_valid, milli_value, value};

/// `IsScalarResourceName`: extended resources (`example.com/gpu`), hugepages and
/// attachable volumes, which the scheduler sums by name.
pub fn is_scalar_resource_name(name: &str) -> bool {
    is_extended_resource_name(name)
        || name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
}

/// An extended resource: a domain-prefixed name outside `kubernetes.io/`.
pub fn is_extended_resource_name(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Aggregated resources of a pod or a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// For allocatable: how many pods fit; for requests: unused.
    pub allowed_pods: i64,
    /// Scalar resources by name, sorted.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    /// From a `ResourceList` (`allocatable`, `overhead`, a container's requests).
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Self::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, q: &str) {
        match name {
            "cpu" => self.milli_cpu = milli_value(q),
            "memory" => self.memory = value(q),
            "ephemeral-storage" => self.ephemeral_storage = value(q),
            "pods" => self.allowed_pods = value(q),
            n if is_scalar_resource_name(n) => self.set_scalar(n, value(q)),
            _ => {}
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map_or(0, |i| self.scalar[i].1)
    }

    pub fn set_scalar(&mut self, name: &str, v: i64) {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1 = v,
            Err(i) => self.scalar.insert(i, (name.to_string(), v)),
        }
    }

    /// Adds `other` (with `sign` 1 or -1) into `self`.
    pub fn add(&mut self, other: &Resources, sign: i64) {
        self.milli_cpu += sign * other.milli_cpu;
        self.memory += sign * other.memory;
        self.ephemeral_storage += sign * other.ephemeral_storage;
        self.allowed_pods += sign * other.allowed_pods;
        for (n, v) in &other.scalar {
            let cur = self.scalar(n);
            self.set_scalar(n, cur + sign * v);
        }
    }

    /// Raises every resource of `self` to at least `other`'s.
    pub fn set_max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (n, v) in &other.scalar {
            let cur = self.scalar(n);
            self.set_scalar(n, cur.max(*v));
        }
    }

    /// Nothing requested at all.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_round_up_like_resource_quantity() {
        assert_eq!(milli_value("250m"), 250);
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("100m"), 1);
        assert!(!is_valid("abc"));
    }

    #[test]
    fn scalar_names_are_extended_hugepages_and_volumes() {
        assert!(is_scalar_resource_name("example.com/gpu"));
        assert!(is_scalar_resource_name("hugepages-2Mi"));
        assert!(!is_scalar_resource_name("kubernetes.io/something"));
        assert!(!is_scalar_resource_name("cpu"));
        assert!(!is_scalar_resource_name("requests.example.com/gpu"));
    }

    #[test]
    fn add_and_max_combine_per_resource() {
        let mut a = Resources {
            milli_cpu: 100,
            memory: 10,
            ..Default::default()
        };
        a.set_scalar("example.com/gpu", 1);
        let mut b = Resources {
            milli_cpu: 300,
            memory: 5,
            ..Default::default()
        };
        b.set_scalar("example.com/gpu", 2);
        let mut max = a.clone();
        max.set_max(&b);
        assert_eq!(
            (max.milli_cpu, max.memory, max.scalar("example.com/gpu")),
            (300, 10, 2)
        );
        a.add(&b, 1);
        assert_eq!(
            (a.milli_cpu, a.memory, a.scalar("example.com/gpu")),
            (400, 15, 3)
        );
        a.add(&b, -1);
        assert_eq!(
            (a.milli_cpu, a.memory, a.scalar("example.com/gpu")),
            (100, 10, 1)
        );
    }
}
