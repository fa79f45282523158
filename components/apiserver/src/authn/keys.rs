//! Service-account keys: the private key that signs tokens (`--service-account-signing-key-file`)
//! and the public keys that verify them (`--service-account-key-file`), read from PEM as
//! kube-apiserver reads them: PKCS#8 (`PRIVATE KEY`, what `kadm init` writes as `sa.key`),
//! PKCS#1 (`RSA PRIVATE KEY`, kubeadm's), SEC1 (`EC PRIVATE KEY`, openssl's) and
//! SubjectPublicKeyInfo (`PUBLIC KEY`, `sa.pub`); a private key in a verification file
//! contributes its public half.
//!
//! Key ids are Kubernetes' (`keyIDFromPublicKey`): the unpadded base64url SHA-256 of the
//! public key's PKIX DER. Relying parties that fetched the JWKS pick keys by that id, so it
//! must match Kubernetes' bit for bit; the DER is re-encoded canonically before hashing.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result};

/// A JWS signature algorithm kadm signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Es256,
    Es384,
    Rs256,
}

impl Algorithm {
    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::Rs256 => "RS256",
        }
    }

    fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

/// A key that verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Kubernetes' key id (the JWS `kid` header and the JWK `kid`).
    pub kid: String,
    pub alg: Algorithm,
    /// What ring verifies with: the uncompressed EC point, or PKCS#1 `RSAPublicKey` DER.
    raw: Vec<u8>,
}

// DER encodings of the object identifiers in SubjectPublicKeyInfo.
const OID_EC_PUBLIC_KEY_DER: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256_DER: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384_DER: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_RSA_DER: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const DER_NULL: &[u8] = &[0x05, 0x00];

/// One DER TLV.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn bit_string(content: &[u8]) -> Vec<u8> {
    der(0x03, &[&[0u8][..], content].concat())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Big-endian integer bytes without leading zeros (as JWK `n`/`e` want them).
fn unsigned(mut b: &[u8]) -> &[u8] {
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    b
}

impl PublicKey {
    fn new(alg: Algorithm, raw: Vec<u8>) -> PublicKey {
        let mut key = PublicKey {
            kid: String::new(),
            alg,
            raw,
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, &key.spki_der());
        key.kid = b64(digest.as_ref());
        key
    }

    /// The key from a DER SubjectPublicKeyInfo: EC P-256, P-384 or RSA.
    pub fn from_spki(spki: &[u8]) -> std::result::Result<PublicKey, String> {
        let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
            .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
        let raw = info.subject_public_key.data.to_vec();
        let alg = &info.algorithm.algorithm;
        if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => Ok(PublicKey::new(Algorithm::Es256, raw)),
                Some(c) if c == OID_NIST_EC_P384 => Ok(PublicKey::new(Algorithm::Es384, raw)),
                _ => Err("unsupported elliptic curve: use P-256 or P-384".into()),
            }
        } else if *alg == OID_PKCS1_RSAENCRYPTION {
            Ok(PublicKey::new(Algorithm::Rs256, raw))
        } else {
            Err(format!(
                "unsupported public key algorithm {alg}: use ECDSA or RSA"
            ))
        }
    }

    /// The PKIX DER Go's `x509.MarshalPKIXPublicKey` writes for this key.
    pub fn spki_der(&self) -> Vec<u8> {
        let algorithm = match self.alg {
            Algorithm::Es256 => sequence(&[OID_EC_PUBLIC_KEY_DER, OID_P256_DER]),
            Algorithm::Es384 => sequence(&[OID_EC_PUBLIC_KEY_DER, OID_P384_DER]),
            Algorithm::Rs256 => sequence(&[OID_RSA_DER, DER_NULL]),
        };
        sequence(&[&algorithm, &bit_string(&self.raw)])
    }

    /// Whether `sig` is this key's `alg` signature of `message`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], sig: &[u8]) -> bool {
        alg == self.alg
            && signature::UnparsedPublicKey::new(self.alg.verification(), &self.raw)
                .verify(message, sig)
                .is_ok()
    }

    /// The JSON Web Key Kubernetes publishes at `/openid/v1/jwks`, fields in go-jose's order.
    pub fn jwk(&self) -> Value {
        match self.alg {
            Algorithm::Es256 | Algorithm::Es384 => {
                let coords = self.raw.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                let crv = if self.alg == Algorithm::Es256 {
                    "P-256"
                } else {
                    "P-384"
                };
                json!({"use": "sig", "kty": "EC", "kid": self.kid, "crv": crv,
                    "alg": self.alg.name(), "x": b64(x), "y": b64(y)})
            }
            Algorithm::Rs256 => {
                let (n, e) = match x509_parser::public_key::RSAPublicKey::from_der(&self.raw) {
                    Ok((_, k)) => (unsigned(k.modulus).to_vec(), unsigned(k.exponent).to_vec()),
                    Err(_) => (Vec::new(), Vec::new()),
                };
                json!({"use": "sig", "kty": "RSA", "kid": self.kid, "alg": self.alg.name(),
                    "n": b64(&n), "e": b64(&e)})
            }
        }
    }
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The private key that signs service-account tokens.
pub struct SigningKey {
    pub public: PublicKey,
    signer: Signer,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// A SEC1 `ECPrivateKey` wrapped as PKCS#8 for the named curve (ring reads only PKCS#8).
fn sec1_to_pkcs8(sec1: &[u8], curve_oid: &[u8]) -> Vec<u8> {
    sequence(&[
        &[0x02, 0x01, 0x00],
        &sequence(&[OID_EC_PUBLIC_KEY_DER, curve_oid]),
        &der(0x04, sec1),
    ])
}

impl SigningKey {
    fn ecdsa(kp: EcdsaKeyPair, alg: Algorithm, rng: SystemRandom) -> SigningKey {
        SigningKey {
            public: PublicKey::new(alg, kp.public_key().as_ref().to_vec()),
            signer: Signer::Ecdsa(kp),
            rng,
        }
    }

    fn rsa(kp: RsaKeyPair, rng: SystemRandom) -> SigningKey {
        SigningKey {
            public: PublicKey::new(Algorithm::Rs256, kp.public().as_ref().to_vec()),
            signer: Signer::Rsa(kp),
            rng,
        }
    }

    /// A key from PKCS#8 DER: EC P-256, EC P-384 or RSA.
    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let rng = SystemRandom::new();
        if let Ok(kp) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            return Some(SigningKey::ecdsa(kp, Algorithm::Es256, rng));
        }
        if let Ok(kp) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
        {
            return Some(SigningKey::ecdsa(kp, Algorithm::Es384, rng));
        }
        RsaKeyPair::from_pkcs8(der)
            .ok()
            .map(|kp| SigningKey::rsa(kp, rng))
    }

    /// The key of one PEM item: `None` when the item is no private key.
    fn from_item(item: &rustls_pemfile::Item) -> Option<std::result::Result<SigningKey, String>> {
        let key = match item {
            rustls_pemfile::Item::Pkcs8Key(k) => SigningKey::from_pkcs8(k.secret_pkcs8_der()),
            rustls_pemfile::Item::Pkcs1Key(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                .ok()
                .map(|kp| SigningKey::rsa(kp, SystemRandom::new())),
            rustls_pemfile::Item::Sec1Key(k) => [OID_P256_DER, OID_P384_DER]
                .iter()
                .find_map(|oid| SigningKey::from_pkcs8(&sec1_to_pkcs8(k.secret_sec1_der(), oid))),
            _ => return None,
        };
        Some(key.ok_or_else(|| {
            "holds a private key kadm cannot sign with: use an ECDSA P-256/P-384 or RSA (2048 bits or more) key".to_string()
        }))
    }

    /// The first private key in a PEM document.
    pub fn from_pem(pem: &[u8]) -> std::result::Result<SigningKey, String> {
        for item in rustls_pemfile::read_all(&mut &pem[..]) {
            let item = item.map_err(|e| format!("not valid PEM: {e}"))?;
            if let Some(key) = SigningKey::from_item(&item) {
                return key;
            }
        }
        Err("holds no private key".into())
    }

    /// This key's signature of `message` in JWS form (ECDSA: r‖s; RSA: PKCS#1 v1.5).
    pub fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, String> {
        match &self.signer {
            Signer::Ecdsa(kp) => kp
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ecdsa signing failed".to_string()),
            Signer::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| "rsa signing failed".to_string())?;
                Ok(sig)
            }
        }
    }
}

/// Every key in a PEM document that can verify: public keys, and private keys' public halves.
pub fn public_keys_from_pem(pem: &[u8]) -> std::result::Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    for item in rustls_pemfile::read_all(&mut &pem[..]) {
        let item = item.map_err(|e| format!("not valid PEM: {e}"))?;
        let key = match &item {
            rustls_pemfile::Item::SubjectPublicKeyInfo(spki) => {
                PublicKey::from_spki(spki.as_ref())?
            }
            other => match SigningKey::from_item(other) {
                Some(private) => private?.public,
                None => continue,
            },
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("holds no public or private key".into());
    }
    Ok(keys)
}

/// `--service-account-signing-key-file`.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    SigningKey::from_pem(&crate::tls::read(path)?).map_err(|e| {
        Error::Config(format!(
            "--service-account-signing-key-file {}: {e}",
            path.display()
        ))
    })
}

/// One `--service-account-key-file`.
pub fn load_public_keys(path: &Path) -> Result<Vec<PublicKey>> {
    public_keys_from_pem(&crate::tls::read(path)?).map_err(|e| {
        Error::Config(format!(
            "--service-account-key-file {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An EC P-256 key in PKCS#8, as rcgen (and so `kadm init`) writes `sa.key`.
    pub(crate) const EC_KEY: &str = include_str!("testdata/ec-p256.key");
    pub(crate) const EC_PUB: &str = include_str!("testdata/ec-p256.pub");
    /// The same key in SEC1 (`openssl ecparam -genkey`).
    const EC_SEC1: &str = include_str!("testdata/ec-p256-sec1.key");
    /// PKCS#1, as kubeadm writes `sa.key`.
    pub(crate) const RSA_KEY: &str = include_str!("testdata/rsa-2048.key");
    const RSA_PUB: &str = include_str!("testdata/rsa-2048.pub");

    /// Kubernetes' key ids of the test keys, computed outside kadm:
    /// `openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | basenc --base64url`.
    const EC_KID: &str = "Y-wbxT7xiPUtsG1yVe3NYyfbzJ921sUYo3iQ_4Gzbmo";
    const RSA_KID: &str = "4sPXmwHAkkvqrBdw6Irn0bTQrp0gvkzb_4hJc8IuqFY";

    #[test]
    fn key_ids_are_kubernetes_sha256_of_the_pkix_der() {
        for (key, public, kid, alg) in [
            (EC_KEY, EC_PUB, EC_KID, Algorithm::Es256),
            (EC_SEC1, EC_PUB, EC_KID, Algorithm::Es256),
            (RSA_KEY, RSA_PUB, RSA_KID, Algorithm::Rs256),
        ] {
            let signing = SigningKey::from_pem(key.as_bytes()).expect("private key");
            let verifying = public_keys_from_pem(public.as_bytes()).expect("public key");
            assert_eq!(signing.public.kid, kid);
            assert_eq!(signing.public.alg, alg);
            assert_eq!(verifying, vec![signing.public.clone()]);
            let (_, block) = x509_parser::pem::parse_x509_pem(public.as_bytes()).expect("pem");
            assert_eq!(signing.public.spki_der(), block.contents);
        }
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_message_and_algorithm() {
        let ec = SigningKey::from_pem(EC_KEY.as_bytes()).expect("ec");
        let rsa = SigningKey::from_pem(RSA_KEY.as_bytes()).expect("rsa");
        let sig = ec.sign(b"payload").expect("sign");
        assert_eq!(sig.len(), 64, "JWS ECDSA signatures are r||s");
        assert!(ec.public.verify(Algorithm::Es256, b"payload", &sig));
        assert!(!ec.public.verify(Algorithm::Es256, b"other", &sig));
        assert!(!ec.public.verify(Algorithm::Rs256, b"payload", &sig));
        assert!(!rsa.public.verify(Algorithm::Es256, b"payload", &sig));
        let sig = rsa.sign(b"payload").expect("sign");
        assert_eq!(sig.len(), 256);
        assert!(rsa.public.verify(Algorithm::Rs256, b"payload", &sig));
        assert!(!ec.public.verify(Algorithm::Rs256, b"payload", &sig));
    }

    #[test]
    fn jwks_carry_the_coordinates_and_modulus() {
        let ec = SigningKey::from_pem(EC_KEY.as_bytes()).expect("ec");
        let jwk = ec.public.jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], EC_KID);
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        assert_eq!([&[4u8][..], &x, &y].concat(), ec.public.raw);
        let rsa = SigningKey::from_pem(RSA_KEY.as_bytes()).expect("rsa");
        let jwk = rsa.public.jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
    }

    #[test]
    fn private_keys_in_a_verification_file_contribute_their_public_half() {
        let both = format!("{EC_PUB}{RSA_KEY}");
        let keys = public_keys_from_pem(both.as_bytes()).expect("keys");
        assert_eq!(
            keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            [EC_KID, RSA_KID]
        );
        assert!(public_keys_from_pem(b"nothing here").is_err());
        assert!(SigningKey::from_pem(EC_PUB.as_bytes()).is_err());
    }

    #[test]
    fn long_der_lengths_use_the_long_form() {
        assert_eq!(der(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }
}
