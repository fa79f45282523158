//! Versions reported by every component.
//!
//! kadm emulates one Kubernetes minor version; `/version` reports it with kadm's own
//! suffix so that version-matching clients (the kubectl dispatcher) pick the right
//! kubectl, while humans still see it is kadm.

/// kadm's own version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Kubernetes version whose API kadm serves.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// `gitVersion` as Kubernetes reports it, with kadm's suffix: `v1.33.0-kadm.0.1.0`.
pub fn git_version() -> String {
    format!("{KUBERNETES_VERSION}-kadm.{VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_version_keeps_kubernetes_minor_first() {
        let v = git_version();
        assert!(v.starts_with("v1.33."), "{v}");
        assert!(v.contains("-kadm."), "{v}");
    }
}
