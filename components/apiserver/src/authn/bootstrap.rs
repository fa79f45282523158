//! Bootstrap tokens (`<id>.<secret>`, `[a-z0-9]{6}.[a-z0-9]{16}`): what a joining node
//! presents before it has a certificate. The token is valid while the kube-system Secret
//! `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` holds the same id and
//! secret, says `usage-bootstrap-authentication: "true"`, is not being deleted and has not
//! reached its `expiration` (RFC 3339; unparseable counts as expired). The user is
//! `system:bootstrap:<id>` in `system:bootstrappers` plus the Secret's `auth-extra-groups`
//! (each `system:bootstrappers:…`), as Kubernetes' bootstrap authenticator has it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::tls::UserInfo;

pub const SECRET_PREFIX: &str = "bootstrap-token-";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const USER_PREFIX: &str = "system:bootstrap:";
pub const DEFAULT_GROUP: &str = "system:bootstrappers";
/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";

/// The id and secret of a token of the bootstrap form, or `None`.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// A `data` value of the Secret, decoded (missing or undecodable: empty, as Go's `GetData`).
fn data(secret: &Value, key: &str) -> String {
    secret
        .pointer(&format!(
            "/data/{}",
            key.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .and_then(|v| STANDARD.decode(v).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Whether a group name may be added by `auth-extra-groups`:
/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
pub fn valid_extra_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let Some(last) = rest.bytes().last() else {
        return false;
    };
    rest.len() <= 256
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
}

/// The user a bootstrap token authenticates as, given the Secret found for its id, or
/// why the Secret does not vouch for it (logged, never shown to the client).
pub fn authenticate(
    id: &str,
    token_secret: &str,
    secret: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<UserInfo, String> {
    if secret
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Err("is deleted and awaiting removal".into());
    }
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE)
        || secret.get("data").is_none_or(Value::is_null)
    {
        return Err(format!("has invalid type, expected {SECRET_TYPE}"));
    }
    if !constant_time_eq(
        data(secret, "token-secret").as_bytes(),
        token_secret.as_bytes(),
    ) {
        return Err("has invalid value for key token-secret".into());
    }
    if data(secret, "token-id") != id {
        return Err("has invalid value for key token-id".into());
    }
    let expiration = data(secret, "expiration");
    if !expiration.is_empty() {
        match chrono::DateTime::parse_from_rfc3339(&expiration) {
            Ok(t) if t > now => {}
            Ok(_) => return Err(format!("expired at {expiration}")),
            Err(_) => return Err(format!("has an unparseable expiration {expiration:?}")),
        }
    }
    if data(secret, "usage-bootstrap-authentication") != "true" {
        return Err("not marked usage-bootstrap-authentication=true".into());
    }
    let mut groups = vec![DEFAULT_GROUP.to_string()];
    let extra = data(secret, "auth-extra-groups");
    if !extra.is_empty() {
        for g in extra.split(',') {
            if !valid_extra_group(g) {
                return Err(format!(
                    "has invalid value for key auth-extra-groups: {g:?} does not match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"
                ));
            }
            groups.push(g.to_string());
        }
    }
    // Kubernetes returns the groups as a sorted set.
    groups.sort();
    groups.dedup();
    groups.push("system:authenticated".into());
    Ok(UserInfo {
        name: format!("{USER_PREFIX}{id}"),
        groups,
        ..Default::default()
    })
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = json!({
            "token-id": b64("abcdef"),
            "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
        });
        for (k, v) in extra {
            data[*k] = json!(b64(v));
        }
        json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "type": SECRET_TYPE, "data": data})
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .into()
    }

    #[test]
    fn token_form_is_six_dot_sixteen_lowercase_alphanumerics() {
        assert_eq!(
            parse_token("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        for bad in [
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "abcdef0123456789abcdef",
            "abcdef.0123456789abcdef.",
            "abcdef.0123456789abcdeF",
            "",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_matching_secret_authenticates_with_sorted_extra_groups() {
        let s = secret(&[
            (
                "auth-extra-groups",
                "system:bootstrappers:kadm:default-node-token,system:bootstrappers:a",
            ),
            ("expiration", "2030-01-02T00:00:00Z"),
        ]);
        let u = authenticate("abcdef", "0123456789abcdef", &s, now()).expect("valid");
        assert_eq!(u.name, "system:bootstrap:abcdef");
        assert_eq!(
            u.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:a",
                "system:bootstrappers:kadm:default-node-token",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn expired_wrong_or_unusable_secrets_do_not_authenticate() {
        let ok = |s: &Value| authenticate("abcdef", "0123456789abcdef", s, now());
        assert!(
            ok(&secret(&[("expiration", "2029-12-31T23:59:59Z")]))
                .unwrap_err()
                .starts_with("expired")
        );
        assert!(ok(&secret(&[("expiration", "tomorrow")])).is_err());
        assert!(authenticate("abcdef", "0123456789abcdeg", &secret(&[]), now()).is_err());
        assert!(ok(&secret(&[("token-id", "abcdeg")])).is_err());
        assert!(ok(&secret(&[("usage-bootstrap-authentication", "false")])).is_err());
        assert!(ok(&secret(&[("auth-extra-groups", "system:masters")])).is_err());
        assert!(ok(&secret(&[("auth-extra-groups", "system:bootstrappers:")])).is_err());
        let mut opaque = secret(&[]);
        opaque["type"] = json!("Opaque");
        assert!(ok(&opaque).is_err());
        let mut deleting = secret(&[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2029-01-01T00:00:00Z");
        assert!(ok(&deleting).is_err());
        let mut unused = secret(&[]);
        unused["data"]
            .as_object_mut()
            .unwrap()
            .remove("usage-bootstrap-authentication");
        assert!(ok(&unused).is_err());
    }

    #[test]
    fn extra_group_names_follow_kubernetes_pattern() {
        assert!(valid_extra_group("system:bootstrappers:worker"));
        assert!(valid_extra_group("system:bootstrappers:a-b:c1"));
        assert!(!valid_extra_group("system:bootstrappers:Worker"));
        assert!(!valid_extra_group("system:bootstrappers:worker-"));
        assert!(!valid_extra_group("system:nodes"));
        assert!(!valid_extra_group(&format!(
            "system:bootstrappers:{}",
            "a".repeat(257)
        )));
    }
}
