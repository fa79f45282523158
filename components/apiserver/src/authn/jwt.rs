//! JSON Web Tokens in JWS compact serialization: `base64url(header).base64url(claims).
//! base64url(signature)`, with the header Kubernetes writes (`{"alg":…,"kid":…}`).
//! Only the algorithms of [`Algorithm`] are accepted: a token claiming `none` or an HMAC
//! algorithm never verifies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::keys::{Algorithm, PublicKey, SigningKey};

/// Signs `claims` with `key`.
pub fn encode(key: &SigningKey, claims: &Value) -> Result<String, String> {
    let header = json!({"alg": key.public.alg.name(), "kid": key.public.kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// A token split into its parts; nothing in it is trusted before [`Jws::verify`].
#[derive(Debug)]
pub struct Jws {
    pub alg: String,
    pub kid: String,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// The claims of a compact JWS without checking its signature (to route a token to the
/// authenticator whose issuer it names), or `None` when it is not one.
pub fn peek_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Splits a compact JWS; `None` when it is not one.
pub fn decode(token: &str) -> Option<Jws> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (header, _, sig, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let claims = peek_claims(token)?;
    let signature = URL_SAFE_NO_PAD.decode(sig).ok()?;
    let field = |k: &str| {
        header
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(Jws {
        alg: field("alg"),
        kid: field("kid"),
        claims,
        signing_input: token[..token.rfind('.')?].to_string(),
        signature,
    })
}

impl Jws {
    /// Checks the signature against `keys`: those with the token's key id when it names
    /// one (as Kubernetes picks them), else every key.
    pub fn verify(&self, keys: &[PublicKey]) -> Result<(), String> {
        let alg = match self.alg.as_str() {
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            "RS256" => Algorithm::Rs256,
            other => return Err(format!("unsupported signature algorithm {other:?}")),
        };
        let candidates: Vec<&PublicKey> = keys
            .iter()
            .filter(|k| self.kid.is_empty() || k.kid == self.kid)
            .collect();
        if candidates.is_empty() {
            return Err("invalid signature, no keys found".into());
        }
        if candidates
            .iter()
            .any(|k| k.verify(alg, self.signing_input.as_bytes(), &self.signature))
        {
            Ok(())
        } else {
            Err("invalid signature".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::keys::tests::{EC_KEY, RSA_KEY};

    #[test]
    fn encoded_tokens_decode_and_verify_with_their_key_only() {
        let ec = SigningKey::from_pem(EC_KEY.as_bytes()).unwrap();
        let rsa = SigningKey::from_pem(RSA_KEY.as_bytes()).unwrap();
        let token = encode(&ec, &json!({"sub": "x", "n": 1})).unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": ec.public.kid}));
        let jws = decode(&token).expect("jws");
        assert_eq!(jws.claims["sub"], "x");
        assert_eq!(jws.kid, ec.public.kid);
        jws.verify(std::slice::from_ref(&ec.public))
            .expect("verifies");
        assert_eq!(
            jws.verify(std::slice::from_ref(&rsa.public)).unwrap_err(),
            "invalid signature, no keys found"
        );
        let rsa_token = encode(&rsa, &json!({"sub": "y"})).unwrap();
        decode(&rsa_token)
            .unwrap()
            .verify(&[ec.public.clone(), rsa.public.clone()])
            .expect("rsa verifies");
    }

    #[test]
    fn tampered_and_unsigned_tokens_are_rejected() {
        let ec = SigningKey::from_pem(EC_KEY.as_bytes()).unwrap();
        let token = encode(&ec, &json!({"sub": "x"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#),
            parts[2]
        );
        let keys = std::slice::from_ref(&ec.public);
        assert_eq!(
            decode(&forged).unwrap().verify(keys).unwrap_err(),
            "invalid signature"
        );
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#)
        );
        assert!(decode(&none).unwrap().verify(keys).is_err());
        assert!(decode("a.b").is_none());
        assert!(decode("a.b.c.d").is_none());
        assert!(peek_claims("abcdef.0123456789abcdef").is_none());
    }
}
