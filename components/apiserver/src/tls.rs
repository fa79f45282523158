//! HTTPS for the apiserver: TLS 1.2+, client certificates requested but optional
//! (requests without one are anonymous and get 401 outside the public endpoints),
//! and the x509 authenticator that turns a verified client cert into a user.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::error::{Error, Result};

/// Who is calling, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
    /// Set by service-account tokens (the ServiceAccount's uid) and `Impersonate-Uid`.
    pub uid: String,
    /// Kubernetes' `extra`: e.g. `authentication.kubernetes.io/pod-name` and `pod-uid` of a
    /// pod-bound service-account token, `credential-id` (its `jti`).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// A user named `name` in `groups`, for tests.
#[cfg(test)]
pub(crate) fn test_user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    }
}

/// A PEM file's bytes (certificates, TLS and service-account keys); the error names it.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read(path)?;
    rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("parse certificates in {}: {e}", path.display())))
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| Error::Tls(format!("parse private key in {}: {e}", path.display())))?
        .ok_or_else(|| Error::Tls(format!("no private key found in {}", path.display())))
}

/// The server's rustls config: serving cert/key, client CA, ALPN h2 + http/1.1, TLS
/// `min_version`+ with forward-secret AEAD suites only ([`modern_provider`]).
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: &Path,
    min_version: MinVersion,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(modern_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(client_ca_file)? {
        roots
            .add(c)
            .map_err(|e| Error::Tls(format!("client ca {}: {e}", client_ca_file.display())))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(min_version.versions())
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_file)?, key(key_file)?)
        .map_err(|e| Error::Tls(format!("serving certificate {}: {e}", cert_file.display())))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `--tls-min-version`, in Kubernetes' spelling. TLS 1.0 and 1.1 are refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

impl MinVersion {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "VersionTLS12" => Ok(MinVersion::Tls12),
            "VersionTLS13" => Ok(MinVersion::Tls13),
            "VersionTLS10" | "VersionTLS11" => Err(format!(
                "{s} is not supported: kadm serves TLS 1.2 and 1.3 only; use VersionTLS12 or VersionTLS13"
            )),
            other => Err(format!(
                "unknown TLS version {other:?}; use VersionTLS12 or VersionTLS13"
            )),
        }
    }

    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS12_AND_13: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => &TLS12_AND_13,
            MinVersion::Tls13 => &TLS13_ONLY,
        }
    }
}

/// Whether a cipher suite is forward secret with authenticated encryption: every TLS 1.3
/// suite, and TLS 1.2's ECDHE suites with AES-GCM or ChaCha20-Poly1305.
fn is_modern(suite: &rustls::SupportedCipherSuite) -> bool {
    match suite {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(s) => {
            let name = format!("{:?}", s.common.suite);
            name.starts_with("TLS_ECDHE_") && (name.contains("_GCM_") || name.contains("CHACHA20"))
        }
    }
}

/// ring's provider restricted to [`is_modern`] suites. ring's defaults already are; the
/// filter keeps it so if a later rustls adds weaker ones.
pub fn modern_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(is_modern);
    provider
}

/// The user a verified client certificate names: CN → name, O → groups.
/// rustls has already checked the chain against the client CA before this runs.
pub fn user_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}

#[cfg(test)]
mod tls_version_tests {
    use super::*;

    #[test]
    fn only_forward_secret_aead_suites_are_offered() {
        let names: Vec<String> = modern_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        for want in [
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        for n in &names {
            assert!(
                !n.contains("CBC") && !n.contains("_SHA ") && !n.starts_with("TLS_RSA_"),
                "{n}"
            );
        }
    }

    #[test]
    fn tls_min_version_takes_kubernetes_names_and_refuses_old_versions() {
        assert_eq!(MinVersion::parse("VersionTLS12"), Ok(MinVersion::Tls12));
        assert_eq!(MinVersion::parse("VersionTLS13"), Ok(MinVersion::Tls13));
        assert!(
            MinVersion::parse("VersionTLS11")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(MinVersion::parse("VersionTLS10").is_err());
        assert!(
            MinVersion::parse("tls1.2")
                .unwrap_err()
                .contains("VersionTLS12")
        );
        assert_eq!(MinVersion::Tls13.versions().len(), 1);
        assert_eq!(
            MinVersion::Tls13.versions()[0].version,
            rustls::ProtocolVersion::TLSv1_3
        );
    }
}
