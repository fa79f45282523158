//! User impersonation (`kubectl --as`, `--as-group`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` headers replace the
//! caller with the named user, once the caller is authorized to `impersonate` each of them
//! (users, groups and uids by name, service accounts in their namespace, extras by key).

use http::HeaderMap;
use kadm_apimachinery::ApiError;

use super::{Attributes, Authorizer};
use crate::tls::UserInfo;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The user to act as: `Ok(None)` without impersonation headers; 403 when the caller may
/// not impersonate what it asked for.
pub async fn impersonate(
    authz: &Authorizer,
    caller: &UserInfo,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let user = values(headers, USER).first().map(|s| s.to_string());
    let groups: Vec<String> = values(headers, GROUP)
        .into_iter()
        .map(str::to_string)
        .collect();
    let uid = values(headers, UID).first().map(|s| s.to_string());
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix(EXTRA_PREFIX)?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(name) = user else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::internal(
            "requested impersonation of groups, uid or extra fields without impersonating a user; add Impersonate-User",
        ));
    };
    let check = |verb_target: Attributes| async move { authz.allowed(&verb_target).await };
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => {
            check(Attributes::of(
                caller,
                "impersonate",
                "",
                "serviceaccounts",
                ns,
                sa,
            ))
            .await?
        }
        None => {
            check(Attributes::of(
                caller,
                "impersonate",
                "",
                "users",
                "",
                &name,
            ))
            .await?
        }
    }
    for g in &groups {
        check(Attributes::of(caller, "impersonate", "", "groups", "", g)).await?;
    }
    if let Some(uid) = &uid {
        check(Attributes::of(
            caller,
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            uid,
        ))
        .await?;
    }
    for (key, value) in &extras {
        let mut a = Attributes::of(
            caller,
            "impersonate",
            "authentication.k8s.io",
            "userextras",
            "",
            value,
        );
        a.subresource = key.clone();
        check(a).await?;
    }
    let mut all_groups = groups.clone();
    if groups.is_empty()
        && let Some((ns, _)) = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
    {
        all_groups.push("system:serviceaccounts".into());
        all_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if name != "system:anonymous"
        && !all_groups
            .iter()
            .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        all_groups.push("system:authenticated".into());
    }
    tracing::debug!(caller = %caller.name, user = %name, groups = ?all_groups, "impersonating");
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (key, value) in extras {
        extra.entry(key).or_default().push(value);
    }
    Ok(Some(UserInfo {
        name,
        groups: all_groups,
        uid: uid.unwrap_or_default(),
        extra,
    }))
}
