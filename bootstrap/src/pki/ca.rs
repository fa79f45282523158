//! Certificate authorities: generating them, loading them from disk, signing leaves with them.
//!
//! `kadm init` generates the CAs once; everything after (leaf certificates, kubeconfigs, later
//! `kadm join` and renewals) loads the CA from its PEM files and signs through
//! [`CertificateAuthority`], so there is exactly one signing path to get right.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use super::fsutil;
use super::sans::San;
use crate::error::{Error, Result};

/// How far in the past certificates start, so a host whose clock is a little behind the
/// issuer's still accepts a certificate issued "now".
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// What a leaf certificate may be used for; becomes its extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server only (the apiserver).
    Server,
    /// TLS client only (components authenticating to the apiserver or to etcd).
    Client,
    /// Both: etcd members serve clients and dial their peers with the same certificate.
    ServerAndClient,
}

impl Usage {
    fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        match self {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        }
    }
}

/// What to put into a leaf certificate.
///
/// Kubernetes reads identity from the subject: the common name is the user name and the
/// organization is the group (`system:masters` grants cluster-admin), so these fields are
/// authorization decisions, not decoration.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub common_name: String,
    /// At most one: rcgen keeps one value per attribute type, see [`CertificateAuthority::issue`].
    pub organizations: Vec<String>,
    pub sans: Vec<San>,
    pub usage: Usage,
    pub validity: Duration,
}

/// A freshly issued certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    /// Keeps the private key out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A CA certificate with its private key, ready to sign.
#[derive(Debug)]
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// Creates a new self-signed CA with a fresh ECDSA P-256 key.
    ///
    /// The result goes through [`CertificateAuthority::from_pem`] so a generated CA and one
    /// loaded from disk are the same thing and sign the same way.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Self> {
        let what = || format!("ca {common_name:?}");
        let key = KeyPair::generate().map_err(Error::cert(what()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        (params.not_before, params.not_after) = validity_window(validity, &what())?;
        let cert = params.self_signed(&key).map_err(Error::cert(what()))?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a CA from its certificate and key files (as `kadm join` and renewals will).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self> {
        let cert_pem = fsutil::read_string(cert_path)?;
        let key_pem = fsutil::read_string(key_path)?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            Error::Parse { what, reason } => Error::Parse {
                what: format!("{what} ({} + {})", cert_path.display(), key_path.display()),
                reason,
            },
            other => other,
        })
    }

    /// Builds a CA from PEM text.
    ///
    /// Checks that the certificate is a CA and that the key belongs to it: signing with the
    /// wrong key yields certificates that look fine but that no client will ever verify.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let cert_der = pem_to_der(cert_pem, "ca certificate")?;
        let cert = parse_der(&cert_der, "ca certificate")?;
        if !cert.is_ca() {
            return Err(Error::parse(
                "ca certificate",
                "it is not a ca (basic constraints ca:false or missing)",
            ));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| Error::parse("ca key", e))?;
        if !key_matches(&cert, &key) {
            return Err(Error::parse(
                "ca key",
                "it does not belong to the ca certificate",
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(|e| Error::parse("ca certificate", e))?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            cert_der,
            issuer,
        })
    }

    /// The CA certificate, PEM; what clients put in their trust bundle.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM, for writing it out after [`CertificateAuthority::generate`].
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf certificate with a fresh ECDSA P-256 key.
    ///
    /// Leaves get `CA:FALSE`, digitalSignature + keyEncipherment (what Go clients and kubeadm
    /// expect), the extended key usage of `spec.usage`, an authority key identifier so
    /// verifiers can find the CA quickly, and a random serial so two certificates for the same
    /// subject never collide.
    ///
    /// Only one organization is supported: rcgen's `DistinguishedName` holds one value per
    /// attribute type, and silently dropping a group would be worse than refusing.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert> {
        let what = || format!("certificate {:?}", spec.common_name);
        if spec.organizations.len() > 1 {
            return Err(Error::InvalidCert {
                what: what(),
                reason: format!(
                    "{} organizations given, at most one is supported",
                    spec.organizations.len()
                ),
            });
        }
        let key = KeyPair::generate().map_err(Error::cert(what()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&spec.common_name, &spec.organizations);
        params.subject_alt_names = spec
            .sans
            .iter()
            .map(to_rcgen_san)
            .collect::<Result<Vec<_>>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = spec.usage.extended_key_usages();
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        (params.not_before, params.not_after) = validity_window(spec.validity, &what())?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(Error::cert(what()))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether `cert` carries a valid signature by this CA's key.
    pub(crate) fn signed(&self, cert: &X509Certificate<'_>) -> bool {
        match parse_der(&self.cert_der, "ca certificate") {
            Ok(ca) => cert.verify_signature(Some(ca.public_key())).is_ok(),
            Err(_) => false,
        }
    }
}

/// A subject with a common name and optional organization, in the order Go prints them.
fn subject(common_name: &str, organizations: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for org in organizations {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn to_rcgen_san(san: &San) -> Result<SanType> {
    Ok(match san {
        San::Ip(ip) => SanType::IpAddress(*ip),
        San::Dns(name) => {
            SanType::DnsName(name.clone().try_into().map_err(|e| Error::InvalidSan {
                san: name.clone(),
                reason: format!("{e}"),
            })?)
        }
    })
}

/// 16 random bytes, top bit cleared (serials are positive) and second bit set (so the
/// encoding always has the full length and is never zero), as RFC 5280 recommends for
/// unpredictable serials.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// (not_before, not_after): starting [`CLOCK_SKEW`] ago, ending `validity` from now.
fn validity_window(validity: Duration, what: &str) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let now = OffsetDateTime::now_utc();
    let too_long = || Error::InvalidCert {
        what: format!("validity of {what}"),
        reason: format!("{validity:?} is out of range"),
    };
    let not_after = time::Duration::try_from(validity)
        .ok()
        .and_then(|d| now.checked_add(d))
        .ok_or_else(too_long)?;
    let skew = time::Duration::try_from(CLOCK_SKEW).map_err(|_| too_long())?;
    Ok((now - skew, not_after))
}

/// Whether the private key is the one of the certificate: compares the raw public keys, which
/// is immune to harmless differences in how the algorithm parameters were encoded.
pub(crate) fn key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> bool {
    use rcgen::PublicKeyData;
    cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
}

/// The DER of the first `CERTIFICATE` block in `pem`.
pub(crate) fn pem_to_der(pem: &str, what: &str) -> Result<Vec<u8>> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| Error::parse(what, e))?;
    if block.label != "CERTIFICATE" {
        return Err(Error::parse(
            what,
            format!("expected a CERTIFICATE pem block, found {}", block.label),
        ));
    }
    Ok(block.contents)
}

/// Parses one DER certificate, rejecting trailing garbage.
pub(crate) fn parse_der<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| Error::parse(what, e))?;
    if !rest.is_empty() {
        return Err(Error::parse(what, "trailing bytes after the certificate"));
    }
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn leaf(cn: &str, usage: Usage) -> LeafSpec {
        LeafSpec {
            common_name: cn.into(),
            organizations: vec!["system:masters".into()],
            sans: vec![
                San::parse("127.0.0.1").unwrap(),
                San::parse("localhost").unwrap(),
            ],
            usage,
            validity: 365 * DAY,
        }
    }

    #[test]
    fn generated_ca_is_ca_and_round_trips_through_pem() {
        let ca = CertificateAuthority::generate("test-ca", 10 * 365 * DAY).unwrap();
        let again = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der());
        let cert = parse_der(ca.cert_der(), "ca").unwrap();
        assert!(cert.is_ca());
        assert_eq!(cert.subject().to_string(), "CN=test-ca");
        assert!(
            ca.signed(&cert),
            "a self-signed CA verifies with its own key"
        );
    }

    #[test]
    fn from_pem_rejects_foreign_key_and_leaf_certs() {
        let a = CertificateAuthority::generate("a", DAY).unwrap();
        let b = CertificateAuthority::generate("b", DAY).unwrap();
        let err = CertificateAuthority::from_pem(a.cert_pem(), &b.key_pem()).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");

        let issued = a.issue(&leaf("x", Usage::Client)).unwrap();
        let err = CertificateAuthority::from_pem(&issued.cert_pem, &issued.key_pem).unwrap_err();
        assert!(err.to_string().contains("not a ca"), "{err}");
    }

    #[test]
    fn issued_leaf_has_subject_usage_and_signature() {
        let ca = CertificateAuthority::generate("test-ca", DAY).unwrap();
        let other = CertificateAuthority::generate("other-ca", DAY).unwrap();
        let issued = ca.issue(&leaf("kubernetes-admin", Usage::Client)).unwrap();
        let der = pem_to_der(&issued.cert_pem, "leaf").unwrap();
        let cert = parse_der(&der, "leaf").unwrap();
        assert_eq!(
            cert.subject().to_string(),
            "O=system:masters, CN=kubernetes-admin"
        );
        assert_eq!(cert.issuer().to_string(), "CN=test-ca");
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        assert!(ca.signed(&cert));
        assert!(
            !other.signed(&cert),
            "must not verify under an unrelated CA"
        );
        let key = KeyPair::from_pem(&issued.key_pem).unwrap();
        assert!(key_matches(&cert, &key));
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn serials_are_random_positive_16_bytes() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert_eq!(a[0] & 0xc0, 0x40);
    }

    #[test]
    fn not_before_allows_clock_skew() {
        let ca = CertificateAuthority::generate("skew", DAY).unwrap();
        let cert = parse_der(ca.cert_der(), "ca").unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let nb = cert.validity().not_before.timestamp();
        assert!(
            (now - nb - CLOCK_SKEW.as_secs() as i64).abs() < 60,
            "not_before {nb}, now {now}"
        );
    }

    #[test]
    fn issue_refuses_more_than_one_organization() {
        let ca = CertificateAuthority::generate("test-ca", DAY).unwrap();
        let mut spec = leaf("x", Usage::Client);
        spec.organizations = vec!["a".into(), "b".into()];
        assert!(matches!(
            ca.issue(&spec).unwrap_err(),
            Error::InvalidCert { .. }
        ));
        spec.organizations.clear();
        spec.validity = Duration::MAX;
        assert!(matches!(
            ca.issue(&spec).unwrap_err(),
            Error::InvalidCert { .. }
        ));
    }
}
