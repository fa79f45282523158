//! Reading certificates back: expiry inventory and the discovery hash.
//!
//! Operators need to know what expires when before it breaks the cluster (`kadm certs
//! check-expiration`), and joining nodes pin the cluster CA by hash before they trust anything
//! the apiserver says.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;

use super::ca::{parse_der, pem_to_der};
use super::fsutil;
use crate::error::{Error, Result};
use crate::kubeconfig::Kubeconfig;

/// One certificate as an operator wants to see it in an expiry report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Short name: the file's path under the PKI dir without `.crt`, `/` replaced by `-`
    /// (`apiserver`, `etcd-server`, `etcd-ca`), or the kubeconfig's file name (`admin.conf`).
    pub name: String,
    pub path: PathBuf,
    /// Subject common name (the full subject if it has none).
    pub subject: String,
    /// Issuer common name (the full issuer if it has none).
    pub issuer: String,
    pub not_after: DateTime<Utc>,
    pub is_ca: bool,
}

impl CertInfo {
    /// Time left until expiry; negative once expired. `now` is a parameter so reports and
    /// tests use one consistent instant.
    pub fn residual(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.not_after - now
    }

    pub(crate) fn from_pem(name: String, path: PathBuf, pem: &str) -> Result<Self> {
        let what = path.display().to_string();
        let der = pem_to_der(pem, &what)?;
        let cert = parse_der(&der, &what)?;
        Self::from_cert(name, path, &cert)
    }

    fn from_cert(name: String, path: PathBuf, cert: &X509Certificate<'_>) -> Result<Self> {
        let secs = cert.validity().not_after.timestamp();
        let not_after = DateTime::from_timestamp(secs, 0).ok_or_else(|| {
            Error::parse(
                path.display().to_string(),
                format!("not_after {secs} is out of range"),
            )
        })?;
        Ok(Self {
            name,
            path,
            subject: common_name(cert.subject()),
            issuer: common_name(cert.issuer()),
            not_after,
            is_ca: cert.is_ca(),
        })
    }
}

/// The CN of a name, or the whole name when there is no CN, so nothing shows up blank.
fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// Every `*.crt` under `dir` (recursively) followed by the client certificate embedded in each
/// kubeconfig.
///
/// Kubeconfigs that do not exist or carry no embedded client certificate (token or exec
/// users) are skipped, so callers can pass the standard list on any node; a kubeconfig that
/// exists but cannot be read or parsed is an error, since it would break its component too.
pub(crate) fn inventory(dir: &Path, kubeconfigs: &[PathBuf]) -> Result<Vec<CertInfo>> {
    let mut files = Vec::new();
    collect_crt_files(dir, &mut files)?;
    files.sort();
    let mut out = Vec::with_capacity(files.len() + kubeconfigs.len());
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        let name = rel
            .with_extension("")
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "-");
        let pem = fsutil::read_string(&path)?;
        out.push(CertInfo::from_pem(name, path, &pem)?);
    }
    for path in kubeconfigs {
        if !fsutil::exists(path)? {
            continue;
        }
        let kc = Kubeconfig::from_yaml(&fsutil::read_string(path)?).map_err(|e| match e {
            Error::Yaml { source, .. } => Error::parse(path.display().to_string(), source),
            other => other,
        })?;
        let Some(pem) = kc.client_cert_pem() else {
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        out.push(CertInfo::from_pem(name, path.clone(), &pem)?);
    }
    Ok(out)
}

fn collect_crt_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(Error::io("inspect", &path))?;
        if file_type.is_dir() {
            collect_crt_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "crt") {
            out.push(path);
        }
    }
    Ok(())
}

/// kubeadm's CA pin: `sha256:` + hex SHA-256 of the CA's DER SubjectPublicKeyInfo.
///
/// Same format as kubeadm's `--discovery-token-ca-cert-hash`, so operators can use the value
/// they know, and the hash survives re-issuing the CA certificate with the same key.
pub fn ca_cert_hash(ca_pem: &str) -> Result<String> {
    let der = pem_to_der(ca_pem, "ca certificate")?;
    let cert = parse_der(&der, "ca certificate")?;
    let spki = cert.public_key().raw;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}
