//! `aescbc`: AES-CBC with PKCS#7 padding. Stored as a random 16-byte IV followed by the
//! ciphertext, after the `k8s:enc:aescbc:v1:<key>:` prefix — the layout kube-apiserver
//! writes, so an etcd written by one can be read by the other with the same key.
//!
//! CBC has no authentication: a wrong key or tampered bytes are caught only when the
//! padding (or, after it, the JSON) does not make sense. Kubernetes recommends `secretbox`
//! or `aesgcm` with rotation over it; it stays kadm's default because it is what
//! operators know and what the Kubernetes task documents.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockCipher, BlockDecryptMut, BlockEncryptMut, InnerIvInit};
use aes::cipher::{KeyInit, consts::U16};
use rand::RngCore;

pub(super) const PROVIDER: &str = "aescbc";
/// AES accepts 16, 24 and 32-byte keys; Kubernetes validates aescbc keys against the same.
pub(super) const KEY_SIZES: &[usize] = &[16, 24, 32];
const BLOCK: usize = 16;

/// One expanded key.
#[derive(Clone)]
pub(super) enum AesCbc {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(aes::Aes256),
}

impl AesCbc {
    /// `None` when the key is not 16, 24 or 32 bytes (config validation says so first).
    pub(super) fn new(key: &[u8]) -> Option<AesCbc> {
        Some(match key.len() {
            16 => AesCbc::Aes128(aes::Aes128::new_from_slice(key).ok()?),
            24 => AesCbc::Aes192(aes::Aes192::new_from_slice(key).ok()?),
            32 => AesCbc::Aes256(aes::Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// Appends IV and ciphertext of `plain` to `out`.
    pub(super) fn seal(&self, plain: &[u8], out: &mut Vec<u8>) {
        let mut iv = [0u8; BLOCK];
        rand::rng().fill_bytes(&mut iv);
        out.extend_from_slice(&iv);
        let start = out.len();
        let padded = (plain.len() / BLOCK + 1) * BLOCK;
        out.extend_from_slice(plain);
        out.resize(start + padded, 0);
        let buf = &mut out[start..];
        match self {
            AesCbc::Aes128(c) => encrypt(c, &iv, buf, plain.len()),
            AesCbc::Aes192(c) => encrypt(c, &iv, buf, plain.len()),
            AesCbc::Aes256(c) => encrypt(c, &iv, buf, plain.len()),
        }
    }

    /// The plaintext of IV + ciphertext.
    pub(super) fn open(&self, data: &[u8]) -> Result<Vec<u8>, &'static str> {
        if data.len() < BLOCK {
            return Err("the stored data was shorter than the required size");
        }
        let (iv, sealed) = data.split_at(BLOCK);
        if sealed.len() % BLOCK != 0 {
            return Err("the stored data is not a multiple of the block size");
        }
        let mut buf = sealed.to_vec();
        let len = match self {
            AesCbc::Aes128(c) => decrypt(c, iv, &mut buf),
            AesCbc::Aes192(c) => decrypt(c, iv, &mut buf),
            AesCbc::Aes256(c) => decrypt(c, iv, &mut buf),
        }
        .ok_or("invalid padding on input")?;
        buf.truncate(len);
        Ok(buf)
    }
}

fn encrypt<C>(cipher: &C, iv: &[u8; BLOCK], buf: &mut [u8], len: usize)
where
    C: BlockCipher<BlockSize = U16> + BlockEncryptMut + Clone,
{
    let enc = cbc::Encryptor::<C>::inner_iv_init(cipher.clone(), iv.into());
    // The buffer was sized for the padding: this cannot fail.
    let _ = enc.encrypt_padded_mut::<Pkcs7>(buf, len);
}

/// The plaintext length, `None` when the padding is not PKCS#7.
fn decrypt<C>(cipher: &C, iv: &[u8], buf: &mut [u8]) -> Option<usize>
where
    C: BlockCipher<BlockSize = U16> + BlockDecryptMut + Clone,
{
    let dec = cbc::Decryptor::<C>::inner_iv_init(cipher.clone(), iv.into());
    dec.decrypt_padded_mut::<Pkcs7>(buf).ok().map(|p| p.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_for_every_key_size_and_length() {
        for size in KEY_SIZES {
            let c = AesCbc::new(&vec![7u8; *size]).expect("key");
            for len in [0, 1, 15, 16, 17, 100] {
                let plain = vec![0x41u8; len];
                let mut out = Vec::new();
                c.seal(&plain, &mut out);
                // IV, then whole blocks: a full block of padding when the length is a multiple.
                assert_eq!(out.len(), BLOCK + (len / BLOCK + 1) * BLOCK);
                assert_eq!(c.open(&out).expect("open"), plain);
            }
        }
        assert!(AesCbc::new(&[0u8; 31]).is_none());
    }

    #[test]
    fn random_iv_makes_equal_plaintexts_differ() {
        let c = AesCbc::new(&[1u8; 32]).expect("key");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c.seal(b"same", &mut a);
        c.seal(b"same", &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn reads_what_an_independent_aes_cbc_wrote() {
        // AES-256-CBC/PKCS#7 of `{"kind":"Secret"}` under key 0x00..0x1f and IV 0xa0..0xaf,
        // made with Python's `cryptography` (the layout kube-apiserver stores: IV, ciphertext).
        let key: Vec<u8> = (0u8..32).collect();
        let stored = super::super::unhex(FIXTURE);
        let c = AesCbc::new(&key).expect("key");
        assert_eq!(c.open(&stored).expect("open"), br#"{"kind":"Secret"}"#);
    }
    const FIXTURE: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafda54e881eafae68f34aa2ddb00e56b529066cf56a14d31a2be6e24349eab8782";

    #[test]
    fn wrong_key_or_bad_length_fails_cleanly() {
        let c = AesCbc::new(&[1u8; 32]).expect("key");
        let other = AesCbc::new(&[2u8; 32]).expect("key");
        let mut out = Vec::new();
        c.seal(br#"{"kind":"Secret","data":{"a":"b"}}"#, &mut out);
        // Without authentication a wrong key is caught by the padding check (or, in the rare
        // case the garbage pads correctly, by the JSON decode after it): it must not panic.
        match other.open(&out) {
            Err(e) => assert_eq!(e, "invalid padding on input"),
            Ok(p) => assert_ne!(p, br#"{"kind":"Secret","data":{"a":"b"}}"#),
        }
        assert_eq!(
            c.open(&out[..10]),
            Err("the stored data was shorter than the required size")
        );
        assert_eq!(
            c.open(&out[..out.len() - 1]),
            Err("the stored data is not a multiple of the block size")
        );
    }
}
