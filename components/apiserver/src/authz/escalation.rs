//! RBAC's escalation prevention, checked on every write of a role or binding: a writer
//! cannot grant permissions it does not hold. A Role or ClusterRole write passes if the
//! writer may `escalate` it or holds every rule it contains (an `aggregationRule` needs
//! everything: it can gather anything); a binding passes if the writer may `bind` the
//! referenced role or holds all of its rules. Members of `system:masters` always pass.
//! Writes that leave the rules (or roleRef and subjects) alone — the garbage collector
//! removing a finalizer — are not checked, as in Kubernetes.

use kadm_apimachinery::{ApiError, meta};
use serde_json::Value;

use super::rbac::{GROUP, RoleRef};
use super::rules::{self, Rule};
use super::{Attributes, Authorizer, Decision, PRIVILEGED_GROUP, go_quoted_list};
use crate::tls::UserInfo;

/// Checks a create (`old` None) or update of `new` in `namespace` by `user`.
pub async fn check(
    authz: &Authorizer,
    user: &UserInfo,
    resource: &str,
    group: &str,
    namespace: &str,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if group != GROUP || user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    let name = meta::name(new).to_string();
    match resource {
        "roles" | "clusterroles" => {
            if let Some(old) = old
                && old.get("rules") == new.get("rules")
                && old.get("aggregationRule") == new.get("aggregationRule")
            {
                return Ok(());
            }
            let ask = Attributes::of(user, "escalate", GROUP, resource, namespace, &name);
            if authz.authorize(&ask).await.0 == Decision::Allow {
                return Ok(());
            }
            let forbidden = |msg: String| ApiError::forbidden(GROUP, resource, &name, &msg);
            confirm_no_escalation(authz, user, namespace, &Rule::list_from(new))
                .map_err(forbidden)?;
            let aggregates = |o: &Value| {
                o.pointer("/aggregationRule/clusterRoleSelectors")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            };
            if aggregates(new) || old.is_some_and(aggregates) {
                let everything = [
                    Rule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Rule::default()
                    },
                    Rule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Rule::default()
                    },
                ];
                confirm_no_escalation(authz, user, namespace, &everything).map_err(|_| {
                    forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    )
                })?;
            }
            Ok(())
        }
        "rolebindings" | "clusterrolebindings" => {
            if let Some(old) = old
                && old.get("roleRef") == new.get("roleRef")
                && old.get("subjects") == new.get("subjects")
            {
                return Ok(());
            }
            let binding = super::rbac::Binding::from_json(new);
            let (kind, role) = match &binding.role {
                RoleRef::Role(n) => ("roles", n.clone()),
                RoleRef::ClusterRole(n) => ("clusterroles", n.clone()),
            };
            let ask = Attributes::of(user, "bind", GROUP, kind, namespace, &role);
            if authz.authorize(&ask).await.0 == Decision::Allow {
                return Ok(());
            }
            let forbidden = |msg: String| ApiError::forbidden(GROUP, resource, &name, &msg);
            let index = authz.rbac.index();
            let granted = match &binding.role {
                RoleRef::Role(n) => index.roles.get(&(namespace.to_string(), n.clone())),
                RoleRef::ClusterRole(n) => index.cluster_roles.get(n),
            };
            let Some(granted) = granted else {
                let what = if kind == "roles" {
                    "role"
                } else {
                    "clusterrole"
                };
                return Err(forbidden(format!("{what}.{GROUP} {role:?} not found")));
            };
            confirm_no_escalation(authz, user, namespace, granted).map_err(forbidden)
        }
        _ => Ok(()),
    }
}

/// Kubernetes' `ConfirmNoEscalation`: the error lists what the user lacks, compacted.
fn confirm_no_escalation(
    authz: &Authorizer,
    user: &UserInfo,
    namespace: &str,
    wanted: &[Rule],
) -> Result<(), String> {
    let (held, errors) = authz.rules_for(user, namespace);
    let missing = rules::uncovered(&held, wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = compact(missing).iter().map(Rule::compact_string).collect();
    lines.sort();
    lines.dedup();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted_list(&user.groups),
        lines.join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!(
            "; resolution errors: {}",
            go_quoted_list(&errors).replace('"', "")
        ));
    }
    Err(msg)
}

/// Merges single-verb pieces that differ only in their verb (Kubernetes' `CompactRules`).
fn compact(pieces: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for p in pieces {
        match out.iter_mut().find(|o| {
            o.api_groups == p.api_groups
                && o.resources == p.resources
                && o.resource_names == p.resource_names
                && o.non_resource_urls == p.non_resource_urls
        }) {
            Some(o) => {
                for v in p.verbs {
                    if !o.verbs.contains(&v) {
                        o.verbs.push(v);
                    }
                }
            }
            None => out.push(p),
        }
    }
    out
}

/// [`check`] for a handler's write: the request's user, resource and namespace.
pub async fn check_request(
    ctx: &crate::handlers::Ctx,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    let res = ctx.res();
    if !ctx.req.subresource.is_empty() {
        return Ok(());
    }
    check(
        &ctx.state.authz,
        &ctx.user,
        res.plural,
        res.group,
        &ctx.req.namespace,
        old,
        new,
    )
    .await
}
