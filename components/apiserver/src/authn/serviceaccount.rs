//! Service-account tokens: bound JWTs as Kubernetes issues and checks them.
//!
//! A token names its issuer (`--service-account-issuer`), subject
//! (`system:serviceaccount:<ns>:<name>`), audiences, `iat`/`nbf`/`exp`, a `jti`, and in the
//! private `kubernetes.io` claim the ServiceAccount (name, uid) and at most one bound
//! object — a Pod (with the Node it runs on), a Secret or a Node. It authenticates while
//! the signature verifies with a `--service-account-key-file` key, the issuer is one of
//! ours, an audience is one the apiserver accepts (`--api-audiences`), the time is within
//! `nbf`…`exp` (60 s leeway, go-jose's), and the ServiceAccount and the bound object
//! still exist with the uids in the token and were not deleted more than 60 s ago: a
//! token bound to a pod stops working when the pod is deleted.

use std::future::Future;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::jwt;
use super::keys::{PublicKey, SigningKey};
use crate::tls::UserInfo;

/// kubeadm's issuer, the default of `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The expiration kubelets ask for projected tokens; such pod-bound tokens are issued for
/// [`EXPIRATION_EXTENSION_SECONDS`] with `warnafter` at the requested time, so clients
/// that do not reload their token keep working (`--service-account-extend-token-expiration`).
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
pub const EXPIRATION_EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;
/// Clock skew tolerated on `nbf`, `iat`, `exp` and deletion times (go-jose's DefaultLeeway).
pub const LEEWAY_SECONDS: i64 = 60;

pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Keys of `UserInfo.extra` Kubernetes sets for service-account tokens.
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// `system:serviceaccount:<ns>:<name>`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A name and uid in the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl ObjectRef {
    pub fn of(obj: &Value) -> ObjectRef {
        let m = |k: &str| {
            obj.pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        ObjectRef {
            name: m("name"),
            uid: m("uid"),
        }
    }
}

/// The private `kubernetes.io` claim. Fields are in the order Kubernetes' tokens show them
/// (go-jose merges claims through a map, so keys come out sorted).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KubernetesClaims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default)]
    pub serviceaccount: ObjectRef,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub warnafter: Option<i64>,
}

/// The claims of a service-account token, keys sorted as in Kubernetes' tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    #[serde(default, deserialize_with = "audience")]
    pub aud: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub exp: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(rename = "kubernetes.io", default)]
    pub kubernetes: KubernetesClaims,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
}

/// JWT NumericDate: seconds since the epoch, integral or not.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|f| f as i64))
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
fn audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => Vec::new(),
        Some(Aud::One(s)) => vec![s],
        Some(Aud::Many(v)) => v,
    })
}

/// What a token is bound to besides its ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    None,
    /// A pod, and the node it was scheduled to when the token was issued (uid empty when
    /// the Node object did not exist).
    Pod {
        pod: ObjectRef,
        node: Option<ObjectRef>,
    },
    Secret(ObjectRef),
    Node(ObjectRef),
}

/// What a new token says; `now` and `jti` come from the caller so tests can fix them.
pub struct Request<'a> {
    pub issuer: &'a str,
    pub namespace: &'a str,
    pub service_account: ObjectRef,
    pub bound: Bound,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// Seconds after `now` of `warnafter` (0: none).
    pub warn_after_seconds: i64,
    pub now: i64,
    pub jti: String,
}

/// The claims Kubernetes' `serviceaccount.Claims` builds.
pub fn claims(r: Request<'_>) -> Claims {
    let mut k = KubernetesClaims {
        namespace: r.namespace.to_string(),
        serviceaccount: r.service_account.clone(),
        warnafter: (r.warn_after_seconds != 0).then(|| r.now + r.warn_after_seconds),
        ..Default::default()
    };
    match r.bound {
        Bound::None => {}
        Bound::Pod { pod, node } => {
            k.pod = Some(pod);
            k.node = node;
        }
        Bound::Secret(s) => k.secret = Some(s),
        Bound::Node(n) => k.node = Some(n),
    }
    Claims {
        aud: r.audiences,
        exp: Some(r.now + r.expiration_seconds),
        iat: Some(r.now),
        iss: r.issuer.to_string(),
        jti: r.jti,
        kubernetes: k,
        nbf: Some(r.now),
        sub: username(r.namespace, &r.service_account.name),
    }
}

/// The service-account token configuration: who we are, whom tokens are for, the keys.
#[derive(Debug)]
pub struct Tokens {
    /// `--service-account-issuer`: the first signs, all are accepted.
    pub issuers: Vec<String>,
    /// `--api-audiences` (default: the first issuer).
    pub api_audiences: Vec<String>,
    /// `--service-account-key-file` keys (or the signing key's public half).
    pub keys: Vec<PublicKey>,
    /// `--service-account-signing-key-file`: without it, no TokenRequest.
    pub signing: Option<SigningKey>,
    /// `--service-account-max-token-expiration` in seconds (0: no limit).
    pub max_expiration_seconds: i64,
    /// `--service-account-extend-token-expiration`.
    pub extend_expiration: bool,
    /// Where the OIDC discovery document says the keys are.
    pub jwks_uri: String,
}

/// Go's `%q` of a string slice.
fn quoted(v: &[String]) -> String {
    crate::authz::go_quoted_list(v)
}

impl Tokens {
    /// Whether the token claims one of our issuers (before anything is verified), as
    /// Kubernetes routes tokens to its service-account authenticator.
    pub fn is_ours(&self, token: &str) -> bool {
        if token.trim_start().starts_with('{') {
            return false;
        }
        jwt::peek_claims(token)
            .and_then(|c| c.get("iss").and_then(Value::as_str).map(str::to_string))
            .is_some_and(|iss| self.issuers.contains(&iss))
    }

    /// Signs a token (the TokenRequest API).
    pub fn issue(&self, claims: &Claims) -> Result<String, String> {
        let key = self
            .signing
            .as_ref()
            .ok_or("the apiserver has no --service-account-signing-key-file")?;
        let value = serde_json::to_value(claims).map_err(|e| e.to_string())?;
        jwt::encode(key, &value)
    }

    /// The checks that need no stored object: signature, issuer and audience. `requested`
    /// are the audiences the caller serves (TokenReview's `spec.audiences`), default the
    /// apiserver's own. Returns the claims and the audiences both sides accept.
    pub fn verify(
        &self,
        token: &str,
        requested: Option<&[String]>,
    ) -> Result<(Claims, Vec<String>), String> {
        let jws = jwt::decode(token).ok_or("service account token is not a valid jwt")?;
        jws.verify(&self.keys)?;
        let claims: Claims = serde_json::from_value(Value::Object(jws.claims))
            .map_err(|e| format!("service account token claims could not be decoded: {e}"))?;
        if !self.issuers.contains(&claims.iss) {
            return Err(format!("token issuer {:?} is invalid", claims.iss));
        }
        // A token without audiences (legacy) is for the apiserver.
        let token_auds = if claims.aud.is_empty() {
            self.api_audiences.clone()
        } else {
            claims.aud.clone()
        };
        let target = requested.unwrap_or(&self.api_audiences);
        let auds: Vec<String> = token_auds
            .iter()
            .filter(|a| target.contains(a))
            .cloned()
            .collect();
        if auds.is_empty() && !self.api_audiences.is_empty() {
            return Err(format!(
                "token audiences {} is invalid for the target audiences {}",
                quoted(&token_auds),
                quoted(target)
            ));
        }
        Ok((claims, auds))
    }
}

/// `nbf`, `iat` and `exp` against `now`, with the leeway.
pub fn check_times(c: &Claims, now: i64) -> Result<(), String> {
    if c.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
        return Err("service account token is not valid yet".into());
    }
    if c.exp.is_some_and(|exp| now - LEEWAY_SECONDS > exp) {
        return Err("service account token has expired".into());
    }
    if c.iat.is_some_and(|iat| now + LEEWAY_SECONDS < iat) {
        return Err("service account token is issued in the future".into());
    }
    Ok(())
}

/// Reads core/v1 objects for the bound-object checks (the watch cache, then etcd).
pub(crate) trait Objects {
    /// The object, `Ok(None)` when it does not exist, `Err` when it could not be read.
    fn get(
        &self,
        plural: &'static str,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Value>, String>> + Send;
}

/// Whether an object was deleted (deletionTimestamp) more than the leeway before `now`.
fn deleted_before_leeway(obj: &Value, now: i64) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.timestamp() < now - LEEWAY_SECONDS)
}

fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A bound object (`kind` as Kubernetes' messages name it) must still exist with the
/// claim's uid and not have been deleted more than the leeway ago; an unreadable one
/// invalidates the token.
async fn check_bound(
    objects: &impl Objects,
    plural: &'static str,
    kind: &str,
    namespace: &str,
    claim: &ObjectRef,
    now: i64,
) -> Result<(), String> {
    let invalidated = || "service account token has been invalidated".to_string();
    let obj = objects
        .get(plural, namespace, &claim.name)
        .await
        .ok()
        .flatten()
        .ok_or_else(invalidated)?;
    if uid(&obj) != claim.uid {
        return Err(format!(
            "{kind} UID ({}) does not match service account {kind} ref claim ({})",
            uid(&obj),
            claim.uid
        ));
    }
    if deleted_before_leeway(&obj, now) {
        return Err(invalidated());
    }
    Ok(())
}

/// Kubernetes' `validator.Validate`: times, then the ServiceAccount and the bound object
/// (same uid, not deleted); the user the token stands for.
pub(crate) async fn validate(
    c: &Claims,
    now: i64,
    objects: &impl Objects,
) -> Result<UserInfo, String> {
    check_times(c, now)?;
    let k = &c.kubernetes;
    let ns = k.namespace.as_str();
    let sa = &k.serviceaccount;
    let account = objects
        .get("serviceaccounts", ns, &sa.name)
        .await?
        .ok_or_else(|| format!("serviceaccounts {:?} not found", sa.name))?;
    if uid(&account) != sa.uid {
        return Err(format!(
            "service account UID ({}) does not match claim ({})",
            uid(&account),
            sa.uid
        ));
    }
    if deleted_before_leeway(&account, now) {
        return Err(format!("service account {ns}/{} has been deleted", sa.name));
    }
    if let Some(secret) = &k.secret {
        check_bound(objects, "secrets", "secret", ns, secret, now).await?;
    }
    let mut extra = std::collections::BTreeMap::new();
    if let Some(pod) = &k.pod {
        check_bound(objects, "pods", "pod", ns, pod, now).await?;
        if !pod.name.is_empty() && !pod.uid.is_empty() {
            extra.insert(POD_NAME_KEY.to_string(), vec![pod.name.clone()]);
            extra.insert(POD_UID_KEY.to_string(), vec![pod.uid.clone()]);
        }
    }
    if let Some(node) = &k.node {
        if k.pod.is_none() {
            // Bound to the Node itself: it must still exist.
            check_bound(objects, "nodes", "node", "", node, now).await?;
        }
        // For pod-bound tokens the node is information only.
        if !node.name.is_empty() {
            extra.insert(NODE_NAME_KEY.to_string(), vec![node.name.clone()]);
            if !node.uid.is_empty() {
                extra.insert(NODE_UID_KEY.to_string(), vec![node.uid.clone()]);
            }
        }
    }
    if !c.jti.is_empty() {
        extra.insert(
            CREDENTIAL_ID_KEY.to_string(),
            vec![format!("JTI={}", c.jti)],
        );
    }
    Ok(UserInfo {
        name: username(ns, &sa.name),
        uid: sa.uid.clone(),
        groups: vec![
            ALL_SERVICE_ACCOUNTS_GROUP.to_string(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".to_string(),
        ],
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::keys::tests::{EC_KEY, RSA_KEY};
    use serde_json::json;
    use std::collections::HashMap;

    const NOW: i64 = 1_900_000_000;

    fn tokens() -> Tokens {
        let signing = SigningKey::from_pem(EC_KEY.as_bytes()).unwrap();
        Tokens {
            issuers: vec![DEFAULT_ISSUER.into()],
            api_audiences: vec![DEFAULT_ISSUER.into()],
            keys: vec![signing.public.clone()],
            signing: Some(signing),
            max_expiration_seconds: 0,
            extend_expiration: true,
            jwks_uri: "https://127.0.0.1:6443/openid/v1/jwks".into(),
        }
    }

    fn request(bound: Bound) -> Request<'static> {
        Request {
            issuer: DEFAULT_ISSUER,
            namespace: "x",
            service_account: ObjectRef {
                name: "default".into(),
                uid: "sa-uid".into(),
            },
            bound,
            audiences: vec![DEFAULT_ISSUER.into()],
            expiration_seconds: 3600,
            warn_after_seconds: 0,
            now: NOW,
            jti: "jti-1".into(),
        }
    }

    fn pod_bound() -> Bound {
        Bound::Pod {
            pod: ObjectRef {
                name: "web".into(),
                uid: "pod-uid".into(),
            },
            node: Some(ObjectRef {
                name: "n1".into(),
                uid: "node-uid".into(),
            }),
        }
    }

    /// Objects by (plural, namespace, name).
    #[derive(Default)]
    struct Store(HashMap<(&'static str, String, String), Value>);

    impl Store {
        fn with(mut self, plural: &'static str, ns: &str, name: &str, uid: &str) -> Store {
            self.0.insert(
                (plural, ns.into(), name.into()),
                json!({"metadata": {"name": name, "namespace": ns, "uid": uid}}),
            );
            self
        }
    }

    impl Objects for Store {
        async fn get(
            &self,
            plural: &'static str,
            namespace: &str,
            name: &str,
        ) -> Result<Option<Value>, String> {
            Ok(self
                .0
                .get(&(plural, namespace.to_string(), name.to_string()))
                .cloned())
        }
    }

    fn objects() -> Store {
        Store::default()
            .with("serviceaccounts", "x", "default", "sa-uid")
            .with("pods", "x", "web", "pod-uid")
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn claims_are_kubernetes_shape_in_kubernetes_order() {
        let mut r = request(pod_bound());
        r.warn_after_seconds = 3607;
        let v = serde_json::to_value(claims(r)).unwrap();
        assert_eq!(
            v.to_string(),
            json!({
                "aud": [DEFAULT_ISSUER],
                "exp": NOW + 3600,
                "iat": NOW,
                "iss": DEFAULT_ISSUER,
                "jti": "jti-1",
                "kubernetes.io": {
                    "namespace": "x",
                    "node": {"name": "n1", "uid": "node-uid"},
                    "pod": {"name": "web", "uid": "pod-uid"},
                    "serviceaccount": {"name": "default", "uid": "sa-uid"},
                    "warnafter": NOW + 3607,
                },
                "nbf": NOW,
                "sub": "system:serviceaccount:x:default",
            })
            .to_string()
        );
    }

    #[test]
    fn an_issued_token_verifies_and_names_the_pod_it_is_bound_to() {
        let t = tokens();
        let token = t.issue(&claims(request(pod_bound()))).unwrap();
        assert!(t.is_ours(&token));
        let (c, auds) = t.verify(&token, None).expect("verifies");
        assert_eq!(auds, [DEFAULT_ISSUER]);
        let user = block_on(validate(&c, NOW + 10, &objects())).expect("valid");
        assert_eq!(user.name, "system:serviceaccount:x:default");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:x",
                "system:authenticated"
            ]
        );
        assert_eq!(user.extra[POD_NAME_KEY], ["web"]);
        assert_eq!(user.extra[POD_UID_KEY], ["pod-uid"]);
        assert_eq!(user.extra[NODE_NAME_KEY], ["n1"]);
        assert_eq!(user.extra[NODE_UID_KEY], ["node-uid"]);
        assert_eq!(user.extra[CREDENTIAL_ID_KEY], ["JTI=jti-1"]);
    }

    #[test]
    fn pod_bound_token_stops_working_when_the_pod_is_gone_or_replaced() {
        let c = claims(request(pod_bound()));
        let gone = Store::default().with("serviceaccounts", "x", "default", "sa-uid");
        assert_eq!(
            block_on(validate(&c, NOW, &gone)).unwrap_err(),
            "service account token has been invalidated"
        );
        let replaced = gone.with("pods", "x", "web", "other-uid");
        assert_eq!(
            block_on(validate(&c, NOW, &replaced)).unwrap_err(),
            "pod UID (other-uid) does not match service account pod ref claim (pod-uid)"
        );
        let no_sa = Store::default().with("pods", "x", "web", "pod-uid");
        assert_eq!(
            block_on(validate(&c, NOW, &no_sa)).unwrap_err(),
            "serviceaccounts \"default\" not found"
        );
    }

    #[test]
    fn objects_being_deleted_keep_tokens_valid_for_the_leeway_only() {
        let c = claims(request(pod_bound()));
        let mut store = objects();
        let deleted_at = chrono::DateTime::from_timestamp(NOW, 0)
            .unwrap()
            .to_rfc3339();
        store
            .0
            .get_mut(&("pods", "x".into(), "web".into()))
            .unwrap()["metadata"]["deletionTimestamp"] = json!(deleted_at);
        assert!(block_on(validate(&c, NOW + 30, &store)).is_ok());
        assert!(block_on(validate(&c, NOW + 61, &store)).is_err());
    }

    #[test]
    fn secret_and_node_bound_tokens_check_their_object() {
        let secret = ObjectRef {
            name: "s".into(),
            uid: "secret-uid".into(),
        };
        let c = claims(request(Bound::Secret(secret)));
        assert!(block_on(validate(&c, NOW, &objects())).is_err());
        let with = objects().with("secrets", "x", "s", "secret-uid");
        assert!(block_on(validate(&c, NOW, &with)).is_ok());
        let node = ObjectRef {
            name: "n1".into(),
            uid: "node-uid".into(),
        };
        let c = claims(request(Bound::Node(node)));
        assert!(block_on(validate(&c, NOW, &objects())).is_err());
        let with = objects().with("nodes", "", "n1", "node-uid");
        let user = block_on(validate(&c, NOW, &with)).unwrap();
        assert_eq!(user.extra[NODE_NAME_KEY], ["n1"]);
        assert!(!user.extra.contains_key(POD_NAME_KEY));
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let c = claims(request(Bound::None));
        assert!(check_times(&c, NOW + 3600 + 60).is_ok());
        assert_eq!(
            check_times(&c, NOW + 3600 + 61).unwrap_err(),
            "service account token has expired"
        );
        assert_eq!(
            check_times(&c, NOW - 61).unwrap_err(),
            "service account token is not valid yet"
        );
        assert!(check_times(&c, NOW - 60).is_ok());
    }

    #[test]
    fn wrong_audience_issuer_or_key_is_rejected() {
        let t = tokens();
        let mut r = request(Bound::None);
        r.audiences = vec!["vault".into()];
        let token = t.issue(&claims(r)).unwrap();
        assert_eq!(
            t.verify(&token, None).unwrap_err(),
            format!(
                r#"token audiences ["vault"] is invalid for the target audiences ["{DEFAULT_ISSUER}"]"#
            )
        );
        // TokenReview on behalf of vault accepts it.
        let (_, auds) = t.verify(&token, Some(&["vault".to_string()])).unwrap();
        assert_eq!(auds, ["vault"]);

        let mut r = request(Bound::None);
        r.issuer = "https://elsewhere";
        let token = t.issue(&claims(r)).unwrap();
        assert!(!t.is_ours(&token));
        assert!(t.verify(&token, None).unwrap_err().contains("issuer"));

        let rsa = SigningKey::from_pem(RSA_KEY.as_bytes()).unwrap();
        let foreign = jwt::encode(
            &rsa,
            &serde_json::to_value(claims(request(Bound::None))).unwrap(),
        )
        .unwrap();
        assert!(t.is_ours(&foreign));
        assert!(t.verify(&foreign, None).is_err());
    }

    #[test]
    fn audience_may_be_a_single_string_and_dates_fractional() {
        let c: Claims = serde_json::from_value(json!({
            "aud": "a", "exp": 10.5, "iss": "i", "sub": "s",
            "kubernetes.io": {"namespace": "n", "serviceaccount": {"name": "d", "uid": "u"}}
        }))
        .unwrap();
        assert_eq!(c.aud, ["a"]);
        assert_eq!(c.exp, Some(10));
        assert_eq!(c.kubernetes.serviceaccount.name, "d");
    }
}
