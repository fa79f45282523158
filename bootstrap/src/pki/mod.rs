//! The cluster PKI: CAs, serving and client certificates, the service-account key pair.
//!
//! The layout mirrors kubeadm's (`ca.crt`, `etcd/ca.crt`, `apiserver.crt`, …) so operators and
//! tools that know kubeadm find everything where they expect it. [`Pki::ensure`] is idempotent
//! because `kadm init` is re-run after partial failures: it creates what is missing, keeps what
//! is valid, and refuses (with a remedy) to touch anything that exists but is wrong.

mod ca;
pub(crate) mod fsutil;
mod inspect;
mod sans;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::KeyPair;
use x509_parser::extensions::GeneralName;

pub use ca::{CertificateAuthority, IssuedCert, LeafSpec, Usage};
pub use inspect::{CertInfo, ca_cert_hash};
pub use sans::{San, first_service_ip};

use crate::error::{Error, Result};
use fsutil::{PRIVATE_FILE_MODE, PUBLIC_FILE_MODE};

/// Production location of the PKI.
pub const DEFAULT_PKI_DIR: &str = "/etc/kadm/pki";
/// Kubernetes' default service network; its first IP is the `kubernetes` service.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// Kubernetes' default cluster DNS domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// CA lifetime, as kubeadm: long enough that CA rotation is a rare, planned event.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Leaf lifetime, as kubeadm: short enough that renewal is routine and a leaked key expires.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The host- and cluster-specific inputs of the PKI; everything else is fixed by convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiSpec {
    /// This node's name; a SAN of the serving certificates and the CN of etcd's.
    pub node_name: String,
    /// Addresses clients use to reach this host (apiserver and etcd SANs).
    pub host_ips: Vec<IpAddr>,
    /// The service network, e.g. `10.96.0.0/12`; its first IP becomes an apiserver SAN.
    pub service_cidr: String,
    /// Suffix of `kubernetes.default.svc.<domain>`, usually `cluster.local`.
    pub cluster_domain: String,
    /// More apiserver SANs (load balancer names or IPs), each an IP or a DNS name.
    pub extra_sans: Vec<String>,
}

impl PkiSpec {
    /// A spec with Kubernetes' default service CIDR and cluster domain, which most clusters use.
    pub fn new(node_name: impl Into<String>, host_ips: Vec<IpAddr>) -> Self {
        Self {
            node_name: node_name.into(),
            host_ips,
            service_cidr: DEFAULT_SERVICE_CIDR.to_string(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            extra_sans: Vec::new(),
        }
    }

    /// Every name the apiserver is reached by: host IPs and name, loopback, the in-cluster
    /// service names and IP, and the operator's extras.
    pub fn apiserver_sans(&self) -> Result<Vec<San>> {
        let mut sans = Vec::new();
        for ip in &self.host_ips {
            sans::push_unique(&mut sans, San::Ip(*ip));
        }
        sans::push_unique(&mut sans, San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        sans::push_unique(&mut sans, San::Ip(first_service_ip(&self.service_cidr)?));
        sans::push_unique(&mut sans, San::dns("localhost")?);
        sans::push_unique(&mut sans, San::dns(&self.node_name)?);
        for name in [
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            format!("kubernetes.default.svc.{}", self.cluster_domain),
        ] {
            sans::push_unique(&mut sans, San::dns(&name)?);
        }
        for extra in &self.extra_sans {
            sans::push_unique(&mut sans, San::parse(extra)?);
        }
        Ok(sans)
    }

    /// Names etcd is reached by: the host and loopback only (etcd is never a service).
    pub fn etcd_sans(&self) -> Result<Vec<San>> {
        let mut sans = Vec::new();
        for ip in &self.host_ips {
            sans::push_unique(&mut sans, San::Ip(*ip));
        }
        sans::push_unique(&mut sans, San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        sans::push_unique(&mut sans, San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        sans::push_unique(&mut sans, San::dns("localhost")?);
        sans::push_unique(&mut sans, San::dns(&self.node_name)?);
        Ok(sans)
    }
}

/// What [`Pki::ensure`] did, file by file, so `kadm init` can tell the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureReport {
    pub created: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

/// Which CA signs a leaf. etcd has its own CA so that a certificate for the Kubernetes API
/// can never be used to talk to etcd directly.
#[derive(Debug, Clone, Copy)]
enum Signer {
    Cluster,
    Etcd,
}

/// One leaf certificate `ensure` manages.
struct LeafPlan {
    cert: PathBuf,
    key: PathBuf,
    signer: Signer,
    spec: LeafSpec,
}

/// The PKI directory. Only a path: every operation reads the files afresh so the on-disk state
/// is the one source of truth, also across processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The PKI rooted at `dir` (production: [`DEFAULT_PKI_DIR`]); nothing is touched yet.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The etcd sub-directory, kept separate (and 0700) as in kubeadm.
    pub fn etcd_dir(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn etcd_ca_cert_path(&self) -> PathBuf {
        self.etcd_dir().join("ca.crt")
    }
    pub fn etcd_ca_key_path(&self) -> PathBuf {
        self.etcd_dir().join("ca.key")
    }
    pub fn apiserver_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    pub fn apiserver_key_path(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    pub fn apiserver_kubelet_client_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver-kubelet-client.crt")
    }
    pub fn apiserver_kubelet_client_key_path(&self) -> PathBuf {
        self.dir.join("apiserver-kubelet-client.key")
    }
    pub fn apiserver_etcd_client_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver-etcd-client.crt")
    }
    pub fn apiserver_etcd_client_key_path(&self) -> PathBuf {
        self.dir.join("apiserver-etcd-client.key")
    }
    pub fn etcd_server_cert_path(&self) -> PathBuf {
        self.etcd_dir().join("server.crt")
    }
    pub fn etcd_server_key_path(&self) -> PathBuf {
        self.etcd_dir().join("server.key")
    }
    pub fn etcd_peer_cert_path(&self) -> PathBuf {
        self.etcd_dir().join("peer.crt")
    }
    pub fn etcd_peer_key_path(&self) -> PathBuf {
        self.etcd_dir().join("peer.key")
    }
    pub fn etcd_healthcheck_client_cert_path(&self) -> PathBuf {
        self.etcd_dir().join("healthcheck-client.crt")
    }
    pub fn etcd_healthcheck_client_key_path(&self) -> PathBuf {
        self.etcd_dir().join("healthcheck-client.key")
    }
    pub fn sa_key_path(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    pub fn sa_pub_path(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// Loads the cluster CA, to sign client certificates (kubeconfigs, joining nodes).
    pub fn load_ca(&self) -> Result<CertificateAuthority> {
        CertificateAuthority::load(&self.ca_cert_path(), &self.ca_key_path())
    }

    /// Loads the etcd CA, to sign etcd member and client certificates.
    pub fn load_etcd_ca(&self) -> Result<CertificateAuthority> {
        CertificateAuthority::load(&self.etcd_ca_cert_path(), &self.etcd_ca_key_path())
    }

    /// Creates whatever is missing; existing valid files are kept untouched (idempotent re-run).
    /// Returns what was created vs kept.
    ///
    /// A key without its certificate is what a crash between the two writes leaves (keys are
    /// written first), so that pair is simply created anew. Anything else that exists but
    /// is not right (a certificate without its key, a key that does not match, a certificate
    /// signed by another CA, expired, or missing a required SAN) is an [`Error::Existing`]
    /// naming the file and the fix: silently replacing it could lock out a running cluster.
    pub fn ensure(&self, spec: &PkiSpec) -> Result<EnsureReport> {
        // Validate every input before the first write, so a typo in an extra SAN does not
        // leave a half-built PKI behind.
        let plans = self.leaf_plans(spec)?;

        fsutil::ensure_private_dir(&self.dir)?;
        fsutil::ensure_private_dir(&self.etcd_dir())?;
        let mut report = EnsureReport::default();

        let cluster_ca = ensure_ca(
            "kubernetes",
            &self.ca_cert_path(),
            &self.ca_key_path(),
            &mut report,
        )?;
        let etcd_ca = ensure_ca(
            "etcd-ca",
            &self.etcd_ca_cert_path(),
            &self.etcd_ca_key_path(),
            &mut report,
        )?;
        for plan in &plans {
            let (ca, ca_path) = match plan.signer {
                Signer::Cluster => (&cluster_ca, self.ca_cert_path()),
                Signer::Etcd => (&etcd_ca, self.etcd_ca_cert_path()),
            };
            ensure_leaf(plan, ca, &ca_path, &mut report)?;
        }
        self.ensure_sa(&mut report)?;
        Ok(report)
    }

    /// Issue a client cert signed by the cluster CA (for kubeconfigs): returns (cert_pem, key_pem).
    ///
    /// `orgs` become the user's groups; at most one is supported (see
    /// [`CertificateAuthority::issue`]).
    pub fn issue_client_cert(
        &self,
        cn: &str,
        orgs: &[&str],
        validity: Duration,
    ) -> Result<(String, String)> {
        let issued = self.load_ca()?.issue(&LeafSpec {
            common_name: cn.to_string(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
            sans: Vec::new(),
            usage: Usage::Client,
            validity,
        })?;
        Ok((issued.cert_pem, issued.key_pem))
    }

    /// Every cert under dir (and optional extra kubeconfig files) with subject CN, issuer CN,
    /// not_after, is_ca.
    ///
    /// Kubeconfigs that are absent or have no embedded client certificate are skipped, so the
    /// standard list can be passed on any node.
    pub fn inventory(&self, kubeconfigs: &[PathBuf]) -> Result<Vec<CertInfo>> {
        inspect::inventory(&self.dir, kubeconfigs)
    }

    fn leaf_plans(&self, spec: &PkiSpec) -> Result<Vec<LeafPlan>> {
        let apiserver_sans = spec.apiserver_sans()?;
        let etcd_sans = spec.etcd_sans()?;
        let leaf = |cn: &str, orgs: &[&str], sans: &[San], usage| LeafSpec {
            common_name: cn.to_string(),
            organizations: orgs.iter().map(|o| o.to_string()).collect(),
            sans: sans.to_vec(),
            usage,
            validity: LEAF_VALIDITY,
        };
        let node = spec.node_name.as_str();
        Ok(vec![
            LeafPlan {
                cert: self.apiserver_cert_path(),
                key: self.apiserver_key_path(),
                signer: Signer::Cluster,
                spec: leaf("kube-apiserver", &[], &apiserver_sans, Usage::Server),
            },
            LeafPlan {
                cert: self.apiserver_kubelet_client_cert_path(),
                key: self.apiserver_kubelet_client_key_path(),
                signer: Signer::Cluster,
                // system:masters: the apiserver must reach every kubelet's logs/exec endpoints.
                spec: leaf(
                    "kube-apiserver-kubelet-client",
                    &["system:masters"],
                    &[],
                    Usage::Client,
                ),
            },
            LeafPlan {
                cert: self.apiserver_etcd_client_cert_path(),
                key: self.apiserver_etcd_client_key_path(),
                signer: Signer::Etcd,
                spec: leaf("kube-apiserver-etcd-client", &[], &[], Usage::Client),
            },
            LeafPlan {
                cert: self.etcd_server_cert_path(),
                key: self.etcd_server_key_path(),
                signer: Signer::Etcd,
                spec: leaf(node, &[], &etcd_sans, Usage::ServerAndClient),
            },
            LeafPlan {
                cert: self.etcd_peer_cert_path(),
                key: self.etcd_peer_key_path(),
                signer: Signer::Etcd,
                spec: leaf(node, &[], &etcd_sans, Usage::ServerAndClient),
            },
            LeafPlan {
                cert: self.etcd_healthcheck_client_cert_path(),
                key: self.etcd_healthcheck_client_key_path(),
                signer: Signer::Etcd,
                spec: leaf("kube-etcd-healthcheck-client", &[], &[], Usage::Client),
            },
        ])
    }

    /// The service-account signing pair. Not a certificate: the apiserver signs tokens with
    /// `sa.key` and verifies them with `sa.pub`, so losing or replacing the key invalidates
    /// every issued token.
    fn ensure_sa(&self, report: &mut EnsureReport) -> Result<()> {
        let (key_path, pub_path) = (self.sa_key_path(), self.sa_pub_path());
        match (fsutil::exists(&key_path)?, fsutil::exists(&pub_path)?) {
            (false, false) => {
                let key = KeyPair::generate().map_err(Error::cert("service-account key"))?;
                fsutil::write_atomic(&key_path, key.serialize_pem().as_bytes(), PRIVATE_FILE_MODE)?;
                fsutil::write_atomic(&pub_path, key.public_key_pem().as_bytes(), PUBLIC_FILE_MODE)?;
                report.created.extend([key_path, pub_path]);
            }
            (false, true) => {
                return Err(Error::Existing {
                    problem: format!("exists but its private key {} is missing", key_path.display()),
                    remedy: "restore sa.key from a backup, or delete sa.pub to generate a new pair (issued service-account tokens then stop working)".into(),
                    path: pub_path,
                });
            }
            (true, has_pub) => {
                let existing = |problem: String| {
                    Error::Existing {
                    path: key_path.clone(),
                    problem,
                    remedy: "restore it from a backup, or delete sa.key and sa.pub to generate a new pair (issued service-account tokens then stop working)".into(),
                }
                };
                let key = KeyPair::from_pem(&fsutil::read_string(&key_path)?)
                    .map_err(|e| existing(format!("is not a usable private key: {e}")))?;
                if has_pub {
                    let pem = fsutil::read_string(&pub_path)?;
                    if !public_key_matches(&pem, &key) {
                        return Err(existing(format!(
                            "does not match the public key in {}",
                            pub_path.display()
                        )));
                    }
                    report.kept.extend([key_path, pub_path]);
                } else {
                    // sa.pub is derived data: regenerate it from the key we have.
                    fsutil::write_atomic(
                        &pub_path,
                        key.public_key_pem().as_bytes(),
                        PUBLIC_FILE_MODE,
                    )?;
                    report.kept.push(key_path);
                    report.created.push(pub_path);
                }
            }
        }
        Ok(())
    }
}

/// The DER of a PEM certificate, for comparing CA bundles regardless of PEM line wrapping.
pub(crate) fn ca_der(pem: &str) -> Result<Vec<u8>> {
    ca::pem_to_der(pem, "ca certificate")
}

/// Why a client certificate (e.g. one embedded in a kubeconfig) is unusable with `ca`, if it is.
pub(crate) fn check_client_cert(pem: &str, ca: &CertificateAuthority) -> Result<(), String> {
    let der = ca::pem_to_der(pem, "client certificate").map_err(|e| e.to_string())?;
    let cert = ca::parse_der(&der, "client certificate").map_err(|e| e.to_string())?;
    if !ca.signed(&cert) {
        return Err("has a client certificate not signed by the current cluster ca".into());
    }
    match expiry_problem(&cert) {
        Some(problem) => Err(format!("has a client certificate that {problem}")),
        None => Ok(()),
    }
}

/// Whether a `PUBLIC KEY` PEM holds the public half of `key`.
fn public_key_matches(pub_pem: &str, key: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    use x509_parser::prelude::FromDer;
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(pub_pem.as_bytes()) else {
        return false;
    };
    if block.label != "PUBLIC KEY" {
        return false;
    }
    match x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents) {
        Ok((_, spki)) => spki.subject_public_key.data.as_ref() == key.der_bytes(),
        Err(_) => false,
    }
}

/// Loads the CA at (cert, key), or creates it when absent.
fn ensure_ca(
    common_name: &str,
    cert_path: &Path,
    key_path: &Path,
    report: &mut EnsureReport,
) -> Result<CertificateAuthority> {
    const REMEDY: &str = "restore the ca from a backup, or delete the ca and every certificate it signed and re-run to create a new one";
    match (fsutil::exists(cert_path)?, fsutil::exists(key_path)?) {
        (true, true) => {
            let existing = |problem: String| Error::Existing {
                path: cert_path.to_path_buf(),
                problem,
                remedy: REMEDY.into(),
            };
            let ca = CertificateAuthority::load(cert_path, key_path).map_err(|e| match e {
                Error::Parse { reason, .. } => existing(format!(
                    "is not usable with {}: {reason}",
                    key_path.display()
                )),
                other => other,
            })?;
            let cert = ca::parse_der(ca.cert_der(), "ca certificate")?;
            if let Some(problem) = expiry_problem(&cert) {
                // Restoring an expired CA does not help; only a new one does.
                return Err(Error::Existing {
                    path: cert_path.to_path_buf(),
                    problem,
                    remedy: "a new ca is needed: delete the ca and every certificate and kubeconfig it signed, then re-run".into(),
                });
            }
            report
                .kept
                .extend([cert_path.to_path_buf(), key_path.to_path_buf()]);
            Ok(ca)
        }
        (true, false) => Err(Error::Existing {
            path: cert_path.to_path_buf(),
            problem: format!(
                "exists but its private key {} is missing (an external ca is not supported)",
                key_path.display()
            ),
            remedy: REMEDY.into(),
        }),
        (false, _) => {
            let ca = CertificateAuthority::generate(common_name, CA_VALIDITY)?;
            // Key first: a crash in between leaves a key without a certificate, which the next
            // run treats as absent; the reverse would look like a CA whose key was lost.
            fsutil::write_atomic(key_path, ca.key_pem().as_bytes(), PRIVATE_FILE_MODE)?;
            fsutil::write_atomic(cert_path, ca.cert_pem().as_bytes(), PUBLIC_FILE_MODE)?;
            report
                .created
                .extend([cert_path.to_path_buf(), key_path.to_path_buf()]);
            Ok(ca)
        }
    }
}

/// Keeps a valid existing leaf, or issues it when absent.
fn ensure_leaf(
    plan: &LeafPlan,
    ca: &CertificateAuthority,
    ca_path: &Path,
    report: &mut EnsureReport,
) -> Result<()> {
    match (fsutil::exists(&plan.cert)?, fsutil::exists(&plan.key)?) {
        (true, true) => {
            if let Some(problem) = leaf_problem(plan, ca, ca_path)? {
                return Err(Error::Existing {
                    path: plan.cert.clone(),
                    problem,
                    remedy: format!(
                        "delete it and {} and re-run to issue a new one",
                        plan.key.display()
                    ),
                });
            }
            report.kept.extend([plan.cert.clone(), plan.key.clone()]);
        }
        (true, false) => {
            return Err(Error::Existing {
                path: plan.cert.clone(),
                problem: format!("exists but its key {} is missing", plan.key.display()),
                remedy: "delete the certificate and re-run to issue a new pair".into(),
            });
        }
        (false, _) => {
            let issued = ca.issue(&plan.spec)?;
            // Key first, for the same crash-ordering reason as the CA.
            fsutil::write_atomic(&plan.key, issued.key_pem.as_bytes(), PRIVATE_FILE_MODE)?;
            fsutil::write_atomic(&plan.cert, issued.cert_pem.as_bytes(), PUBLIC_FILE_MODE)?;
            report.created.extend([plan.cert.clone(), plan.key.clone()]);
        }
    }
    Ok(())
}

/// Why an existing leaf cannot be kept, or `None` if it can.
fn leaf_problem(
    plan: &LeafPlan,
    ca: &CertificateAuthority,
    ca_path: &Path,
) -> Result<Option<String>> {
    let pem = fsutil::read_string(&plan.cert)?;
    let der = match ca::pem_to_der(&pem, "certificate") {
        Ok(der) => der,
        Err(e) => return Ok(Some(format!("cannot be read: {e}"))),
    };
    let cert = match ca::parse_der(&der, "certificate") {
        Ok(cert) => cert,
        Err(e) => return Ok(Some(format!("cannot be read: {e}"))),
    };
    let key = match KeyPair::from_pem(&fsutil::read_string(&plan.key)?) {
        Ok(key) => key,
        Err(e) => {
            return Ok(Some(format!(
                "has an unusable key {}: {e}",
                plan.key.display()
            )));
        }
    };
    if !ca::key_matches(&cert, &key) {
        return Ok(Some(format!(
            "does not match its key {}",
            plan.key.display()
        )));
    }
    if !ca.signed(&cert) {
        return Ok(Some(format!(
            "is not signed by the ca in {}",
            ca_path.display()
        )));
    }
    if let Some(problem) = expiry_problem(&cert) {
        return Ok(Some(problem));
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    if cn != Some(plan.spec.common_name.as_str()) {
        return Ok(Some(format!(
            "has common name {:?}, expected {:?}",
            cn.unwrap_or_default(),
            plan.spec.common_name
        )));
    }
    let present = cert_sans(&cert);
    let missing: Vec<String> = plan
        .spec
        .sans
        .iter()
        .filter(|s| !present.contains(s))
        .map(|s| s.to_string())
        .collect();
    if !missing.is_empty() {
        return Ok(Some(format!(
            "lacks the subject alternative names {}",
            missing.join(", ")
        )));
    }
    Ok(None)
}

/// "expired on …" when the certificate's not_after has passed.
fn expiry_problem(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let not_after = cert.validity().not_after;
    let now = x509_parser::time::ASN1Time::now();
    (not_after <= now).then(|| format!("expired on {not_after}"))
}

/// The DNS and IP SANs of a certificate, in our comparable form.
fn cert_sans(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<San> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(d) => Some(San::Dns(d.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| San::Ip(IpAddr::from(b))),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| San::Ip(IpAddr::from(b))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
