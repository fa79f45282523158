//! `aesgcm`: AES-GCM with a random 12-byte nonce before the ciphertext and tag, and the
//! etcd key as additional authenticated data — kube-apiserver's layout, so a value copied
//! to another key does not decrypt there.
//!
//! Random 96-bit nonces wear a key out after about 2^32 writes; Kubernetes asks for
//! rotation every 200,000 writes, which `kadm secrets rotate-key` makes routine.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use rand::RngCore;

pub(super) const PROVIDER: &str = "aesgcm";
pub(super) const KEY_SIZES: &[usize] = &[16, 24, 32];
const NONCE: usize = 12;
const TAG: usize = 16;

type Aes192Gcm = AesGcm<aes::Aes192, U12>;

pub(super) enum AesGcmKey {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl AesGcmKey {
    pub(super) fn new(key: &[u8]) -> Option<AesGcmKey> {
        Some(match key.len() {
            16 => AesGcmKey::Aes128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            24 => AesGcmKey::Aes192(Box::new(Aes192Gcm::new_from_slice(key).ok()?)),
            32 => AesGcmKey::Aes256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            _ => return None,
        })
    }

    /// Appends nonce, ciphertext and tag of `plain`, bound to `aad`, to `out`.
    pub(super) fn seal(
        &self,
        plain: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        let nonce = Nonce::from_slice(&nonce);
        let buf = &mut out[start..];
        let tag = match self {
            AesGcmKey::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            AesGcmKey::Aes192(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            AesGcmKey::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        }
        .map_err(|_| "the value is too large for AES-GCM")?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// The plaintext of nonce + ciphertext + tag, checked against `aad`.
    pub(super) fn open(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, &'static str> {
        if data.len() < NONCE + TAG {
            return Err("the stored data was shorter than the required size");
        }
        let (nonce, sealed) = data.split_at(NONCE);
        let nonce = Nonce::from_slice(nonce);
        let mut buf = sealed.to_vec();
        match self {
            AesGcmKey::Aes128(c) => c.decrypt_in_place(nonce, aad, &mut buf),
            AesGcmKey::Aes192(c) => c.decrypt_in_place(nonce, aad, &mut buf),
            AesGcmKey::Aes256(c) => c.decrypt_in_place(nonce, aad, &mut buf),
        }
        .map_err(|_| "message authentication failed")?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"/registry/secrets/default/s1";

    #[test]
    fn roundtrip_for_every_key_size() {
        for size in KEY_SIZES {
            let c = AesGcmKey::new(&vec![9u8; *size]).expect("key");
            for len in [0, 1, 16, 1000] {
                let plain = vec![0x5au8; len];
                let mut out = Vec::new();
                c.seal(&plain, KEY, &mut out).expect("seal");
                assert_eq!(out.len(), NONCE + len + TAG);
                assert_eq!(c.open(&out, KEY).expect("open"), plain);
            }
        }
        assert!(AesGcmKey::new(&[0u8; 20]).is_none());
    }

    #[test]
    fn reads_what_an_independent_aes_gcm_wrote() {
        // AES-128-GCM of `{"kind":"Secret"}` under key 0x00..0x0f, nonce 0xc0..0xcb and the
        // etcd key as additional data, made with Python's `cryptography`.
        let stored = super::super::unhex(
            "c0c1c2c3c4c5c6c7c8c9cacbc406be6238739d2f1eadaff9847de62b3788c661935c88da02a93ee59529355233",
        );
        let key: Vec<u8> = (0u8..16).collect();
        let c = AesGcmKey::new(&key).expect("key");
        assert_eq!(c.open(&stored, KEY).expect("open"), br#"{"kind":"Secret"}"#);
    }

    #[test]
    fn tampering_wrong_key_and_moved_values_fail() {
        let c = AesGcmKey::new(&[3u8; 32]).expect("key");
        let mut out = Vec::new();
        c.seal(br#"{"kind":"Secret"}"#, KEY, &mut out)
            .expect("seal");
        let mut tampered = out.clone();
        tampered[NONCE + 2] ^= 1;
        assert_eq!(c.open(&tampered, KEY), Err("message authentication failed"));
        let other = AesGcmKey::new(&[4u8; 32]).expect("key");
        assert_eq!(other.open(&out, KEY), Err("message authentication failed"));
        // The etcd key is authenticated: the same bytes under another key are refused.
        assert_eq!(
            c.open(&out, b"/registry/secrets/default/s2"),
            Err("message authentication failed")
        );
        assert_eq!(
            c.open(&out[..20], KEY),
            Err("the stored data was shorter than the required size")
        );
    }
}
