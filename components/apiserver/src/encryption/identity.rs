//! `identity`: values stored as they are. As a fallback after an encrypting provider it
//! keeps values written before encryption was enabled readable; it refuses to hand out
//! encrypted bytes as if they were the object (the `k8s:enc:` prefix is reserved for them).

/// The start of every encrypted value, whatever the provider.
pub(super) const ENCRYPTED_MARKER: &[u8] = b"k8s:enc:";

/// The stored bytes when they are plaintext.
pub(super) fn read(data: &[u8]) -> Result<&[u8], &'static str> {
    if data.starts_with(ENCRYPTED_MARKER) {
        return Err("identity transformer tried to read encrypted data");
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plaintext_and_refuses_ciphertext() {
        assert_eq!(read(b"{\"a\":1}"), Ok(&b"{\"a\":1}"[..]));
        assert_eq!(
            read(b"k8s:enc:aescbc:v1:key1:xyz"),
            Err("identity transformer tried to read encrypted data")
        );
    }
}
