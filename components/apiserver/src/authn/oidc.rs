//! Service-account issuer discovery: the OpenID Provider configuration at
//! `/.well-known/openid-configuration` and the keys at `/openid/v1/jwks`, so that systems
//! outside the cluster (cloud IAM, Vault) can verify service-account tokens themselves.
//! As in Kubernetes they exist only with an `https` issuer, describe the first issuer,
//! and are readable by the `system:service-account-issuer-discovery` ClusterRole (bound
//! to every service account by default).

use http::{HeaderValue, Method, Response, StatusCode, header};
use kadm_apimachinery::{ApiError, Reason};
use serde_json::{Value, json};

use super::serviceaccount::Tokens;
use crate::response::{self, Body};

pub const CONFIG_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// How long clients may cache either document (Kubernetes: one hour).
const MAX_AGE_SECONDS: u32 = 3600;

pub fn is_oidc_path(path: &str) -> bool {
    path == CONFIG_PATH || path == JWKS_PATH
}

/// The provider configuration, fields in Kubernetes' order.
pub fn configuration(t: &Tokens) -> Value {
    let mut algs: Vec<&str> = t.keys.iter().map(|k| k.alg.name()).collect();
    algs.sort_unstable();
    algs.dedup();
    json!({
        "issuer": t.issuers[0],
        "jwks_uri": t.jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
    })
}

/// Every verification key as a JSON Web Key Set.
pub fn key_set(t: &Tokens) -> Value {
    json!({"keys": t.keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// Answers one of the two paths; 404 when the apiserver has no https issuer.
pub fn handle(tokens: Option<&Tokens>, method: &Method, path: &str) -> Response<Body> {
    let Some(t) = tokens.filter(|t| t.issuers[0].starts_with("https://")) else {
        return response::error(&ApiError::new(
            404,
            Reason::NotFound,
            "the server could not find the requested resource",
        ));
    };
    if method != Method::GET && method != Method::HEAD {
        return response::error(&ApiError::method_not_allowed());
    }
    let (doc, content_type) = if path == JWKS_PATH {
        (key_set(t), "application/jwk-set+json")
    } else {
        (configuration(t), "application/json")
    };
    let mut r = response::json(StatusCode::OK, &doc);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::keys::SigningKey;
    use crate::authn::keys::tests::{EC_KEY, RSA_KEY};
    use crate::authn::serviceaccount::DEFAULT_ISSUER;

    fn tokens(issuer: &str) -> Tokens {
        let ec = SigningKey::from_pem(EC_KEY.as_bytes()).unwrap();
        let rsa = SigningKey::from_pem(RSA_KEY.as_bytes()).unwrap();
        Tokens {
            issuers: vec![issuer.into()],
            api_audiences: vec![issuer.into()],
            keys: vec![ec.public.clone(), rsa.public.clone(), ec.public.clone()],
            signing: Some(ec),
            max_expiration_seconds: 0,
            extend_expiration: true,
            jwks_uri: "https://10.0.0.1:6443/openid/v1/jwks".into(),
        }
    }

    #[test]
    fn configuration_is_kubernetes_document() {
        let c = configuration(&tokens(DEFAULT_ISSUER));
        assert_eq!(
            c.to_string(),
            json!({
                "issuer": DEFAULT_ISSUER,
                "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            })
            .to_string()
        );
        assert_eq!(
            key_set(&tokens(DEFAULT_ISSUER))["keys"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn documents_need_an_https_issuer_and_a_get() {
        let t = tokens(DEFAULT_ISSUER);
        let r = handle(Some(&t), &Method::GET, JWKS_PATH);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/jwk-set+json"
        );
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=3600");
        assert_eq!(handle(Some(&t), &Method::POST, CONFIG_PATH).status(), 405);
        let plain = tokens("kubernetes/serviceaccount");
        assert_eq!(
            handle(Some(&plain), &Method::GET, CONFIG_PATH).status(),
            404
        );
        assert_eq!(handle(None, &Method::GET, CONFIG_PATH).status(), 404);
    }
}
