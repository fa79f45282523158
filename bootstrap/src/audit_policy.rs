//! The audit policy `kadm init` gives the apiserver (`<etc>/audit-policy.yaml`), modelled
//! on the production policy GKE ships: drop the high-volume, low-risk chatter of system
//! components, events and health checks; record who touched Secrets, ConfigMaps and tokens
//! but never their contents; record changes with what was sent; everything else with its
//! metadata. The apiserver caps Secrets, ConfigMaps, TokenReviews and TokenRequests at
//! `Metadata` whatever the file says.

use std::path::Path;

use crate::Result;
use crate::pki::fsutil;

/// Written once; operators may edit it and `kadm init` keeps their version.
pub const DEFAULT_POLICY: &str = r#"# kadm's audit policy, written by `kadm init` (re-running init keeps your edits).
# Rules are tried in order; the first that matches decides the level.
# Secrets, ConfigMaps, TokenReviews and TokenRequests are never recorded beyond
# Metadata, whatever this file says.
apiVersion: audit.k8s.io/v1
kind: Policy
# ResponseComplete records everything RequestReceived would.
omitStages:
  - RequestReceived
rules:
  # High-volume, low-risk requests of system components.
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
      - group: ""
        resources: ["endpoints", "services", "services/status"]
      - group: "discovery.k8s.io"
        resources: ["endpointslices"]
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get"]
    resources:
      - group: ""
        resources: ["nodes", "nodes/status"]
  - level: None
    users: ["system:kube-controller-manager", "system:kube-scheduler"]
    verbs: ["get", "update"]
    namespaces: ["kube-system"]
    resources:
      - group: ""
        resources: ["endpoints"]
  # Leader election and node heartbeats, renewed every few seconds.
  - level: None
    users: ["system:kube-controller-manager", "system:kube-scheduler"]
    verbs: ["get", "update"]
    resources:
      - group: "coordination.k8s.io"
        resources: ["leases"]
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get", "update"]
    resources:
      - group: "coordination.k8s.io"
        resources: ["leases"]
  # Health checks and the version.
  - level: None
    nonResourceURLs:
      - "/healthz*"
      - "/livez*"
      - "/readyz*"
      - "/version"
  # Events are many and describe changes recorded elsewhere.
  - level: None
    resources:
      - group: ""
        resources: ["events"]
      - group: "events.k8s.io"
        resources: ["events"]
  # Status updates of kubelets: the request, not the (large) response.
  - level: Request
    userGroups: ["system:nodes"]
    verbs: ["update", "patch"]
    resources:
      - group: ""
        resources: ["nodes/status", "pods/status"]
  # Credentials and arbitrary data: who touched them, never what they hold.
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "configmaps", "serviceaccounts/token"]
      - group: "authentication.k8s.io"
        resources: ["tokenreviews"]
  # Reads: who read what, without the (large) answers.
  - level: Metadata
    verbs: ["get", "list", "watch"]
  # Every other change, with what was sent.
  - level: Request
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  # Everything else.
  - level: Metadata
"#;

/// Writes the default policy (0600) unless a policy is already there. Returns whether it
/// wrote.
pub fn ensure(path: &Path) -> Result<bool> {
    if fsutil::exists(path)? {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fsutil::ensure_private_dir(dir)?;
    }
    fsutil::write_atomic(path, DEFAULT_POLICY.as_bytes(), 0o600)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_default_policy_is_written_once_and_an_edited_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/kadm/audit-policy.yaml");
        assert!(ensure(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), DEFAULT_POLICY);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, "edited").unwrap();
        assert!(!ensure(&path).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "edited");
    }

    #[test]
    fn init_runs_the_apiserver_with_the_policy_and_a_rotated_log_in_the_log_dir() {
        let root = Path::new("/tmp/kadm-root");
        let layout = crate::layout::Layout::rooted(root);
        let opts = crate::init::InitOptions {
            layout: layout.clone(),
            cluster_name: "kadm".into(),
            node_name: "cp-1".into(),
            advertise_address: "127.0.0.1".parse().unwrap(),
            service_cidr: "10.96.0.0/12".into(),
            extra_sans: Vec::new(),
            binaries_dir: root.join("bin"),
            etcd_binary: "/usr/bin/etcd".into(),
            use_systemd: false,
            require_root: false,
            ready_timeout: std::time::Duration::from_secs(1),
        };
        let sup = crate::init::control_plane_components(&opts);
        let apiserver = sup
            .components
            .iter()
            .find(|c| c.name == "kadm-apiserver")
            .unwrap();
        for want in [
            "--audit-policy-file=/tmp/kadm-root/etc/kadm/audit-policy.yaml".to_string(),
            "--audit-log-path=/tmp/kadm-root/var/log/kadm/audit.log".to_string(),
            "--audit-log-maxsize=100".to_string(),
            "--audit-log-maxbackup=5".to_string(),
        ] {
            assert!(
                apiserver.args.contains(&want),
                "{want} not in {:?}",
                apiserver.args
            );
        }
        // `kadm reset` removes the log dir, and with it the audit log and its backups.
        assert!(layout.audit_log().starts_with(&layout.log_dir));
        assert!(layout.audit_policy().starts_with(&layout.etc_dir));
    }

    #[test]
    fn the_default_policy_is_an_audit_v1_policy_with_a_catch_all_last() {
        let doc: serde_yaml::Value = serde_yaml::from_str(DEFAULT_POLICY).unwrap();
        assert_eq!(doc["apiVersion"].as_str(), Some("audit.k8s.io/v1"));
        assert_eq!(doc["kind"].as_str(), Some("Policy"));
        let rules = doc["rules"].as_sequence().unwrap();
        let last = rules.last().unwrap().as_mapping().unwrap();
        assert_eq!(last.len(), 1, "the last rule matches everything");
        assert_eq!(last["level"].as_str(), Some("Metadata"));
    }
}
