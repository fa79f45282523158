//! Authentication: who is calling, as Kubernetes' authenticator chain decides it.
//!
//! 1. **x509**: a client certificate verified against the cluster CA at the TLS handshake
//!    (`tls::user_from_cert`: CN → user, O → groups). A request with one is that user,
//!    whatever else it carries.
//! 2. **Bearer tokens** (`Authorization: Bearer <token>`): a JWT naming one of our
//!    issuers is a [`serviceaccount`] token; `<id>.<secret>` is a [`bootstrap`] token.
//!    A token that no authenticator accepts is a 401 `Unauthorized`, even on the public
//!    paths: Kubernetes lets a request be anonymous only when it presented no credential.
//! 3. Nothing: anonymous (`system:anonymous`), which the server allows only on the public
//!    health and version paths.
//!
//! Also here: the TokenRequest API that issues service-account tokens ([`tokenrequest`]),
//! TokenReview ([`tokenreview`]) and the OIDC discovery documents ([`oidc`]).

pub mod bootstrap;
pub mod jwt;
pub mod keys;
pub mod oidc;
pub mod serviceaccount;
pub mod tokenrequest;
pub mod tokenreview;

use std::sync::Arc;

use http::{HeaderMap, header};
use kadm_apimachinery::{ApiError, registry};
use serde_json::Value;

use crate::cache::WatchCache;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::Store;
use crate::tls::UserInfo;
use serviceaccount::Tokens;

/// The message of a bearer token no authenticator recognises (Kubernetes' `invalidToken`).
pub const INVALID_TOKEN: &str = "invalid bearer token";

/// The authenticators after x509, with what they read.
pub struct Authenticator {
    store: Store,
    cache: Arc<WatchCache>,
    /// Service-account tokens; `None` when the apiserver has no service-account key.
    pub tokens: Option<Tokens>,
}

/// The token of an `Authorization: Bearer <token>` header (Kubernetes: the scheme is case
/// insensitive, the token is the second space-separated part, an empty one is ignored).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Authenticator {
    /// Reads the service-account keys the flags name. `advertise` (host:port) makes the
    /// default JWKS URI.
    pub fn new(
        cfg: &Config,
        store: Store,
        cache: Arc<WatchCache>,
        advertise: &str,
    ) -> Result<Authenticator> {
        Ok(Authenticator {
            store,
            cache,
            tokens: tokens_from_config(cfg, advertise)?,
        })
    }

    /// The audiences the apiserver identifies as (`--api-audiences`).
    pub fn api_audiences(&self) -> &[String] {
        self.tokens
            .as_ref()
            .map(|t| t.api_audiences.as_slice())
            .unwrap_or_default()
    }

    /// The user of a request: the certificate's when it has one, else its bearer token's
    /// (401 when the token is not valid), else `None` (anonymous).
    pub async fn authenticate(
        &self,
        cert_user: Option<UserInfo>,
        headers: &HeaderMap,
    ) -> std::result::Result<Option<UserInfo>, ApiError> {
        if cert_user.is_some() {
            return Ok(cert_user);
        }
        let Some(token) = bearer_token(headers) else {
            return Ok(None);
        };
        match self.authenticate_token(token, None).await {
            Ok((user, _)) => Ok(Some(user)),
            Err(reason) => {
                tracing::debug!(%reason, "bearer token rejected");
                Err(ApiError::unauthorized())
            }
        }
    }

    /// Who `token` stands for and the audiences it is valid for, or why it is not valid.
    /// `audiences` are those the caller serves (TokenReview); `None` means the apiserver.
    pub async fn authenticate_token(
        &self,
        token: &str,
        audiences: Option<&[String]>,
    ) -> std::result::Result<(UserInfo, Vec<String>), String> {
        if let Some(tokens) = &self.tokens
            && tokens.is_ours(token)
        {
            let (claims, auds) = tokens.verify(token, audiences)?;
            let user =
                serviceaccount::validate(&claims, chrono::Utc::now().timestamp(), self).await?;
            return Ok((user, auds));
        }
        if let Some((id, secret)) = bootstrap::parse_token(token) {
            // Bootstrap tokens know no audiences: they are for the apiserver only.
            let auds: Vec<String> = match audiences {
                None => Vec::new(),
                Some(wanted) => {
                    let common: Vec<String> = self
                        .api_audiences()
                        .iter()
                        .filter(|a| wanted.contains(a))
                        .cloned()
                        .collect();
                    if common.is_empty() {
                        return Err(INVALID_TOKEN.into());
                    }
                    common
                }
            };
            let name = format!("{}{id}", bootstrap::SECRET_PREFIX);
            let Some(obj) = self
                .object("secrets", bootstrap::NAMESPACE, &name, false)
                .await?
            else {
                tracing::debug!(secret = %name, "no secret matches the bootstrap token");
                return Err(INVALID_TOKEN.into());
            };
            return match bootstrap::authenticate(id, secret, &obj, chrono::Utc::now()) {
                Ok(user) => Ok((user, auds)),
                Err(why) => {
                    tracing::debug!(secret = %name, reason = %why, "bootstrap secret matching bearer token does not vouch for it");
                    Err(INVALID_TOKEN.into())
                }
            };
        }
        Err(INVALID_TOKEN.into())
    }

    /// An object of a core/v1 resource: from the watch cache once it is loaded, from etcd
    /// before that and, when `live_on_miss`, for what the cache does not hold (yet).
    /// Kubernetes' service-account getter falls back to a live read so; its bootstrap
    /// authenticator reads only its informer, so a made-up token id costs no etcd read.
    async fn object(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        live_on_miss: bool,
    ) -> std::result::Result<Option<Value>, String> {
        let res =
            registry::lookup("", "v1", plural).ok_or_else(|| format!("{plural} are not served"))?;
        let key = res.etcd_key(namespace, name);
        if self.cache.is_ready()
            && let Some(c) = self.cache.cacher(res)
        {
            match c.get(&key) {
                Some(entry) => return Ok(Some(entry.value())),
                None if !live_on_miss => return Ok(None),
                None => {}
            }
        }
        self.store
            .get(&key)
            .await
            .map(|s| s.map(|s| s.object))
            .map_err(|e| e.to_string())
    }
}

/// Objects bound to tokens are read as [`Authenticator::object`] describes.
impl serviceaccount::Objects for Authenticator {
    async fn get(
        &self,
        plural: &'static str,
        namespace: &str,
        name: &str,
    ) -> std::result::Result<Option<Value>, String> {
        self.object(plural, namespace, name, true).await
    }
}

/// The service-account token settings from the flags; `None` without any key.
fn tokens_from_config(cfg: &Config, advertise: &str) -> Result<Option<Tokens>> {
    let signing = cfg
        .service_account_signing_key_file
        .as_deref()
        .map(keys::load_signing_key)
        .transpose()?;
    let mut verification = Vec::new();
    for f in &cfg.service_account_key_file {
        verification.extend(keys::load_public_keys(f)?);
    }
    if verification.is_empty() {
        match &signing {
            // Tokens we sign must verify.
            Some(s) => verification.push(s.public.clone()),
            None => return Ok(None),
        }
    } else if let Some(s) = &signing
        && !verification.contains(&s.public)
    {
        tracing::warn!(
            "the --service-account-signing-key-file key is not among the --service-account-key-file keys: the tokens this apiserver issues will not authenticate"
        );
    }
    let issuers: Vec<String> = cfg
        .service_account_issuer
        .iter()
        .filter(|i| !i.is_empty())
        .cloned()
        .collect();
    if issuers.is_empty() {
        return Err(Error::Config(
            "--service-account-issuer must name an issuer, e.g. https://kubernetes.default.svc.cluster.local".into(),
        ));
    }
    let api_audiences = if cfg.api_audiences.is_empty() {
        vec![issuers[0].clone()]
    } else {
        cfg.api_audiences.clone()
    };
    let max = cfg
        .service_account_max_token_expiration
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if max != 0 && !(3600..=1 << 32).contains(&max) {
        return Err(Error::Config(
            "--service-account-max-token-expiration must be between 1 hour and 2^32 seconds".into(),
        ));
    }
    let jwks_uri = cfg
        .service_account_jwks_uri
        .clone()
        .unwrap_or_else(|| format!("https://{advertise}{}", oidc::JWKS_PATH));
    Ok(Some(Tokens {
        issuers,
        api_audiences,
        keys: verification,
        signing,
        max_expiration_seconds: max,
        extend_expiration: cfg.service_account_extend_token_expiration,
        jwks_uri,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(extra: &[&str]) -> Config {
        let mut args = vec![
            "kadm-apiserver",
            "--tls-cert-file=c",
            "--tls-private-key-file=k",
            "--client-ca-file=ca",
        ];
        args.extend_from_slice(extra);
        Config::try_parse_from(args).expect("flags parse")
    }

    fn testdata(name: &str) -> String {
        format!("{}/src/authn/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn service_account_flags_default_as_kube_apiserver() {
        assert!(
            tokens_from_config(&config(&[]), "10.0.0.1:6443")
                .unwrap()
                .is_none()
        );
        let key = format!(
            "--service-account-signing-key-file={}",
            testdata("ec-p256.key")
        );
        let t = tokens_from_config(&config(&[&key]), "10.0.0.1:6443")
            .unwrap()
            .expect("tokens");
        assert_eq!(t.issuers, [serviceaccount::DEFAULT_ISSUER]);
        assert_eq!(t.api_audiences, [serviceaccount::DEFAULT_ISSUER]);
        assert_eq!(t.keys, [t.signing.as_ref().unwrap().public.clone()]);
        assert_eq!(t.jwks_uri, "https://10.0.0.1:6443/openid/v1/jwks");
        assert!(t.extend_expiration);
        assert_eq!(t.max_expiration_seconds, 0);

        let verify = format!("--service-account-key-file={}", testdata("rsa-2048.pub"));
        let t = tokens_from_config(
            &config(&[
                &verify,
                "--service-account-key-file",
                &testdata("ec-p256.pub"),
                "--service-account-issuer=https://a",
                "--service-account-issuer=https://b",
                "--api-audiences=x,y",
                "--service-account-max-token-expiration=48h",
                "--service-account-extend-token-expiration=false",
            ]),
            "h:1",
        )
        .unwrap()
        .expect("tokens");
        assert_eq!(t.keys.len(), 2);
        assert!(t.signing.is_none());
        assert_eq!(t.issuers, ["https://a", "https://b"]);
        assert_eq!(t.api_audiences, ["x", "y"]);
        assert_eq!(t.max_expiration_seconds, 48 * 3600);
        assert!(!t.extend_expiration);
        assert!(
            config(&["--service-account-extend-token-expiration"])
                .service_account_extend_token_expiration
        );

        let short = tokens_from_config(
            &config(&[&key, "--service-account-max-token-expiration=30m"]),
            "h:1",
        );
        assert!(short.unwrap_err().to_string().contains("between 1 hour"));
        let missing = tokens_from_config(
            &config(&["--service-account-key-file=/nonexistent/sa.pub"]),
            "h:1",
        );
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/sa.pub")
        );
    }

    #[test]
    fn bearer_tokens_are_read_as_kubernetes_reads_them() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert_eq!(bearer_token(&h("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&h("  Bearer abc extra")), Some("abc"));
        assert_eq!(bearer_token(&h("Bearer ")), None);
        assert_eq!(bearer_token(&h("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
