//! Kubeconfig files: how kubectl and the control-plane components find and authenticate to the
//! apiserver.
//!
//! We write the standard v1 format with certificates embedded (`*-data`), as kubeadm does, so
//! `admin.conf` works with stock kubectl and each file is self-contained (it can be copied to
//! another machine). Reading is lenient: unknown fields are ignored so kubeconfigs written by
//! other tools still parse.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pki::fsutil::{self, PRIVATE_FILE_MODE};
use crate::pki::{LEAF_VALIDITY, Pki};

/// File name of the cluster-admin kubeconfig (the operator's, `system:masters`).
pub const ADMIN_CONF: &str = "admin.conf";
/// File name of the scheduler's kubeconfig.
pub const SCHEDULER_CONF: &str = "scheduler.conf";
/// File name of the controller-manager's kubeconfig.
pub const CONTROLLER_MANAGER_CONF: &str = "controller-manager.conf";

/// A kubeconfig (`apiVersion: v1`, `kind: Config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    /// Always `{}`: kubectl warns on files without it.
    #[serde(default)]
    pub preferences: Preferences,
}

fn default_api_version() -> String {
    "v1".into()
}
fn default_kind() -> String {
    "Config".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    /// Base64 of the CA bundle PEM, as in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: User,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    /// Base64 of the client certificate PEM, as in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    /// Base64 of the client key PEM, as in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A single-cluster, single-user kubeconfig with embedded certificates, its one context
/// (`<user>@<cluster>`, kubeadm's naming) selected.
pub fn build(
    cluster_name: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Kubeconfig {
    let context = format!("{user}@{cluster_name}");
    Kubeconfig {
        api_version: default_api_version(),
        kind: default_kind(),
        clusters: vec![NamedCluster {
            name: cluster_name.to_string(),
            cluster: Cluster {
                server: server.to_string(),
                certificate_authority_data: Some(BASE64.encode(ca_pem)),
            },
        }],
        users: vec![NamedUser {
            name: user.to_string(),
            user: User {
                client_certificate_data: Some(BASE64.encode(cert_pem)),
                client_key_data: Some(BASE64.encode(key_pem)),
            },
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Context {
                cluster: cluster_name.to_string(),
                user: user.to_string(),
                namespace: None,
            },
        }],
        current_context: context,
        preferences: Preferences {},
    }
}

impl Kubeconfig {
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|source| Error::Yaml {
            action: "encode kubeconfig",
            source,
        })
    }

    pub fn from_yaml(s: &str) -> Result<Self> {
        serde_yaml::from_str(s).map_err(|source| Error::Yaml {
            action: "decode kubeconfig",
            source,
        })
    }

    /// The user the current context selects, falling back to the first user: a file with one
    /// user and no (or a dangling) current-context still has an obvious identity.
    fn active_user(&self) -> Option<&User> {
        self.contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .and_then(|c| self.users.iter().find(|u| u.name == c.context.user))
            .or_else(|| self.users.first())
            .map(|u| &u.user)
    }

    /// The cluster the current context selects, falling back to the first cluster.
    fn active_cluster(&self) -> Option<&Cluster> {
        self.contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .and_then(|c| self.clusters.iter().find(|k| k.name == c.context.cluster))
            .or_else(|| self.clusters.first())
            .map(|k| &k.cluster)
    }

    /// The active user's client certificate, PEM; `None` when the user authenticates
    /// otherwise (token, exec) or the data is not valid base64/UTF-8.
    pub fn client_cert_pem(&self) -> Option<String> {
        decode(self.active_user()?.client_certificate_data.as_deref()?)
    }

    /// The active user's client key, PEM.
    pub fn client_key_pem(&self) -> Option<String> {
        decode(self.active_user()?.client_key_data.as_deref()?)
    }

    /// The active cluster's CA bundle, PEM.
    pub fn ca_pem(&self) -> Option<String> {
        decode(
            self.active_cluster()?
                .certificate_authority_data
                .as_deref()?,
        )
    }

    /// The active cluster's server URL.
    pub fn server(&self) -> Option<&str> {
        self.active_cluster().map(|c| c.server.as_str())
    }
}

fn decode(b64: &str) -> Option<String> {
    let bytes = BASE64.decode(b64.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// Writes a kubeconfig atomically with mode 0600: it holds a private key, and a half-written
/// one would make its component fail in confusing ways. Missing parent directories are
/// created (e.g. `~/.kube`).
pub fn write_kubeconfig(path: &Path, kc: &Kubeconfig) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
    }
    fsutil::write_atomic(path, kc.to_yaml()?.as_bytes(), PRIVATE_FILE_MODE)
}

/// The three control-plane kubeconfigs: admin.conf (kubernetes-admin, system:masters),
/// scheduler.conf, controller-manager.conf, in dir (prod /etc/kadm). Idempotent: existing
/// files kept.
///
/// An existing file is kept only if it still points at `server`, trusts the current cluster
/// CA, and holds an unexpired client certificate from that CA; otherwise this fails with
/// [`Error::Existing`] rather than overwrite a file the operator may have edited. Returns the
/// paths of all three (admin, scheduler, controller-manager), created or kept.
pub fn ensure_control_plane_kubeconfigs(
    pki: &Pki,
    dir: &Path,
    cluster_name: &str,
    server: &str,
) -> Result<Vec<PathBuf>> {
    const FILES: [(&str, &str, Option<&str>); 3] = [
        (ADMIN_CONF, "kubernetes-admin", Some("system:masters")),
        (SCHEDULER_CONF, "system:kube-scheduler", None),
        (
            CONTROLLER_MANAGER_CONF,
            "system:kube-controller-manager",
            None,
        ),
    ];
    let ca = pki.load_ca()?;
    let mut paths = Vec::with_capacity(FILES.len());
    for (file, user, org) in FILES {
        let path = dir.join(file);
        if fsutil::exists(&path)? {
            if let Some(problem) = kubeconfig_problem(&path, &ca, server)? {
                return Err(Error::Existing {
                    path,
                    problem,
                    remedy: "delete it and re-run to write a new one".into(),
                });
            }
            tracing::debug!(path = %path.display(), "kubeconfig kept");
        } else {
            let orgs: Vec<&str> = org.into_iter().collect();
            let (cert_pem, key_pem) = pki.issue_client_cert(user, &orgs, LEAF_VALIDITY)?;
            let kc = build(
                cluster_name,
                server,
                ca.cert_pem(),
                user,
                &cert_pem,
                &key_pem,
            );
            write_kubeconfig(&path, &kc)?;
            tracing::info!(path = %path.display(), user, "kubeconfig written");
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Why an existing control-plane kubeconfig cannot be kept, or `None`.
fn kubeconfig_problem(
    path: &Path,
    ca: &crate::pki::CertificateAuthority,
    server: &str,
) -> Result<Option<String>> {
    let kc = match Kubeconfig::from_yaml(&fsutil::read_string(path)?) {
        Ok(kc) => kc,
        Err(e) => return Ok(Some(format!("cannot be read: {e}"))),
    };
    if kc.server() != Some(server) {
        return Ok(Some(format!(
            "points at server {:?}, expected {server:?}",
            kc.server().unwrap_or_default()
        )));
    }
    let same_ca = kc
        .ca_pem()
        .and_then(|pem| crate::pki::ca_der(&pem).ok())
        .is_some_and(|der| der == ca.cert_der());
    if !same_ca {
        return Ok(Some("does not trust the current cluster ca".into()));
    }
    let Some(cert_pem) = kc.client_cert_pem() else {
        return Ok(Some("has no embedded client certificate".into()));
    };
    match crate::pki::check_client_cert(&cert_pem, ca) {
        Ok(()) => Ok(None),
        Err(problem) => Ok(Some(problem)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::PkiSpec;
    use std::os::unix::fs::PermissionsExt;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n";

    #[test]
    fn build_round_trips_through_yaml() {
        let kc = build(
            "kadm",
            "https://10.0.0.1:6443",
            CA,
            "kubernetes-admin",
            CERT,
            KEY,
        );
        let yaml = kc.to_yaml().unwrap();
        assert!(yaml.contains("apiVersion: v1"), "{yaml}");
        assert!(yaml.contains("kind: Config"), "{yaml}");
        assert!(
            yaml.contains("current-context: kubernetes-admin@kadm"),
            "{yaml}"
        );
        assert!(yaml.contains("certificate-authority-data: "), "{yaml}");
        assert!(yaml.contains("client-certificate-data: "), "{yaml}");
        assert!(yaml.contains("client-key-data: "), "{yaml}");
        assert!(yaml.contains("preferences: {}"), "{yaml}");
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(back, kc);
        assert_eq!(back.client_cert_pem().as_deref(), Some(CERT));
        assert_eq!(back.client_key_pem().as_deref(), Some(KEY));
        assert_eq!(back.ca_pem().as_deref(), Some(CA));
        assert_eq!(back.server(), Some("https://10.0.0.1:6443"));
    }

    #[test]
    fn from_yaml_accepts_kubectl_style_files() {
        // Fields we do not model (token, extensions, namespace) must not break parsing.
        let yaml = r#"
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://example:6443
    insecure-skip-tls-verify: true
  name: c
contexts:
- context:
    cluster: c
    user: token-user
    namespace: kube-system
  name: ctx
current-context: ctx
users:
- name: cert-user
  user:
    client-certificate-data: Y2VydA==
- name: token-user
  user:
    token: abc
"#;
        let kc = Kubeconfig::from_yaml(yaml).unwrap();
        assert_eq!(
            kc.contexts[0].context.namespace.as_deref(),
            Some("kube-system")
        );
        // The current context's user authenticates with a token: no client cert.
        assert_eq!(kc.client_cert_pem(), None);
        assert!(Kubeconfig::from_yaml("clusters: 5").is_err());
    }

    #[test]
    fn write_kubeconfig_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config");
        let kc = build("kadm", "https://x:6443", CA, "u", CERT, KEY);
        write_kubeconfig(&path, &kc).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Kubeconfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, kc);
    }

    fn pki_in(dir: &Path) -> Pki {
        let pki = Pki::at(dir.join("pki"));
        pki.ensure(&PkiSpec::new("node-1", vec!["192.0.2.10".parse().unwrap()]))
            .unwrap();
        pki
    }

    #[test]
    fn control_plane_kubeconfigs_are_created_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_in(dir.path());
        let server = "https://192.0.2.10:6443";
        let paths = ensure_control_plane_kubeconfigs(&pki, dir.path(), "kadm", server).unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, [ADMIN_CONF, SCHEDULER_CONF, CONTROLLER_MANAGER_CONF]);

        let admin = Kubeconfig::from_yaml(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
        assert_eq!(admin.current_context, "kubernetes-admin@kadm");
        assert_eq!(admin.users[0].name, "kubernetes-admin");
        assert_eq!(admin.server(), Some(server));
        let sched = Kubeconfig::from_yaml(&std::fs::read_to_string(&paths[1]).unwrap()).unwrap();
        assert_eq!(sched.current_context, "system:kube-scheduler@kadm");

        let before: Vec<_> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        ensure_control_plane_kubeconfigs(&pki, dir.path(), "kadm", server).unwrap();
        let after: Vec<_> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
        assert_eq!(before, after, "second run must keep files byte-identical");

        // A different server is not silently accepted.
        let err = ensure_control_plane_kubeconfigs(&pki, dir.path(), "kadm", "https://other:6443")
            .unwrap_err();
        assert!(matches!(err, Error::Existing { .. }), "{err}");
        assert!(err.to_string().contains("points at server"), "{err}");
    }

    #[test]
    fn kubeconfig_from_another_ca_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki_in(dir.path());
        let other = Pki::at(dir.path().join("other"));
        other.ensure(&PkiSpec::new("node-2", Vec::new())).unwrap();
        let server = "https://192.0.2.10:6443";
        ensure_control_plane_kubeconfigs(&other, dir.path(), "kadm", server).unwrap();
        let err = ensure_control_plane_kubeconfigs(&pki, dir.path(), "kadm", server).unwrap_err();
        assert!(err.to_string().contains("does not trust"), "{err}");
    }
}
