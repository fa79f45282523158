//! `secretbox`: XSalsa20-Poly1305 (NaCl's secretbox) with a random 24-byte nonce, stored as
//! nonce, Poly1305 tag, ciphertext — NaCl's combined layout after the nonce, as
//! kube-apiserver writes it. No additional data: Kubernetes' secretbox does not bind the
//! etcd key.

use crypto_secretbox::aead::{AeadInPlace, KeyInit};
use crypto_secretbox::{Nonce, Tag, XSalsa20Poly1305};
use rand::RngCore;

pub(super) const PROVIDER: &str = "secretbox";
pub(super) const KEY_SIZES: &[usize] = &[32];
const NONCE: usize = 24;
const TAG: usize = 16;

pub(super) struct Secretbox(Box<XSalsa20Poly1305>);

impl Secretbox {
    pub(super) fn new(key: &[u8]) -> Option<Secretbox> {
        if key.len() != 32 {
            return None;
        }
        Some(Secretbox(Box::new(
            XSalsa20Poly1305::new_from_slice(key).ok()?,
        )))
    }

    /// Appends nonce, tag and ciphertext of `plain` to `out`.
    pub(super) fn seal(&self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        let mut nonce = [0u8; NONCE];
        rand::rng().fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let tag_at = out.len();
        out.extend_from_slice(&[0u8; TAG]);
        out.extend_from_slice(plain);
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut out[tag_at + TAG..])
            .map_err(|_| "the value is too large for secretbox")?;
        out[tag_at..tag_at + TAG].copy_from_slice(&tag);
        Ok(())
    }

    pub(super) fn open(&self, data: &[u8]) -> Result<Vec<u8>, &'static str> {
        if data.len() < NONCE + TAG {
            return Err("the stored data was shorter than the required size");
        }
        let (nonce, rest) = data.split_at(NONCE);
        let (tag, sealed) = rest.split_at(TAG);
        let mut buf = sealed.to_vec();
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                b"",
                &mut buf,
                Tag::from_slice(tag),
            )
            .map_err(|_| "message authentication failed")?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_secretbox::aead::Aead;

    #[test]
    fn roundtrip_and_layout() {
        let c = Secretbox::new(&[5u8; 32]).expect("key");
        for len in [0, 1, 64, 1000] {
            let plain = vec![0x33u8; len];
            let mut out = Vec::new();
            c.seal(&plain, &mut out).expect("seal");
            assert_eq!(out.len(), NONCE + TAG + len);
            assert_eq!(c.open(&out).expect("open"), plain);
        }
        assert!(Secretbox::new(&[0u8; 16]).is_none());
    }

    #[test]
    fn tag_comes_before_the_ciphertext_as_in_nacl() {
        // The crate's combined `encrypt` is NaCl's `crypto_secretbox` output (tag first):
        // what follows our nonce must be exactly that.
        let key = [8u8; 32];
        let c = Secretbox::new(&key).expect("key");
        let mut out = Vec::new();
        c.seal(b"payload", &mut out).expect("seal");
        let nonce = Nonce::from_slice(&out[..NONCE]);
        let nacl = XSalsa20Poly1305::new_from_slice(&key)
            .expect("key")
            .encrypt(nonce, &b"payload"[..])
            .expect("encrypt");
        assert_eq!(&out[NONCE..], &nacl[..]);
    }

    #[test]
    fn tampering_and_wrong_key_fail() {
        let c = Secretbox::new(&[5u8; 32]).expect("key");
        let mut out = Vec::new();
        c.seal(br#"{"kind":"Secret"}"#, &mut out).expect("seal");
        let mut tampered = out.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x80;
        assert_eq!(c.open(&tampered), Err("message authentication failed"));
        let other = Secretbox::new(&[6u8; 32]).expect("key");
        assert_eq!(other.open(&out), Err("message authentication failed"));
        assert_eq!(
            c.open(&out[..30]),
            Err("the stored data was shorter than the required size")
        );
    }
}
