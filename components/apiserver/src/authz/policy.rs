//! The default RBAC policy (`bootstrap_policy.yaml`): created at every start and
//! reconciled as Kubernetes' `rbac/bootstrap-roles` post-start hook does — a missing role or
//! binding is created; an existing one whose `rbac.authorization.kubernetes.io/autoupdate`
//! annotation is not `"false"` gets the rules, aggregation selectors, subjects, labels and
//! annotations it lacks (nothing is removed, so operators' additions survive upgrades); a
//! binding whose roleRef changed is replaced, since roleRef is immutable.

use kadm_apimachinery::{meta, registry};
use serde_json::{Value, json};

use super::rbac::GROUP;
use super::rules::{self, Rule};
use crate::error::{Error, Result};
use crate::storage::{Store, StoreError, WriteOutcome};
use crate::strategy;

pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";

const POLICY: &str = include_str!("bootstrap_policy.yaml");

/// The default ClusterRoles and ClusterRoleBindings, complete objects ready to store.
pub fn defaults() -> Result<(Vec<Value>, Vec<Value>)> {
    let doc: Value = serde_yaml::from_str(POLICY)
        .map_err(|e| Error::Config(format!("built-in rbac policy does not parse: {e}")))?;
    let complete = |kind: &str, items: Option<&Value>| -> Vec<Value> {
        items
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut o| {
                o["apiVersion"] = json!(format!("{GROUP}/v1"));
                o["kind"] = json!(kind);
                o["metadata"]["labels"][BOOTSTRAPPING_LABEL] = json!("rbac-defaults");
                o["metadata"]["annotations"][AUTOUPDATE] = json!("true");
                o
            })
            .collect()
    };
    Ok((
        complete("ClusterRole", doc.get("clusterRoles")),
        complete("ClusterRoleBinding", doc.get("clusterRoleBindings")),
    ))
}

/// Creates or reconciles every default role and binding. Idempotent; safe on every start
/// and with several apiservers.
pub async fn ensure(store: &Store) -> Result<()> {
    let (roles, bindings) = defaults()?;
    let role_res = lookup("clusterroles")?;
    let binding_res = lookup("clusterrolebindings")?;
    for wanted in roles {
        reconcile(store, role_res, wanted, merge_role).await?;
    }
    for wanted in bindings {
        reconcile(store, binding_res, wanted, merge_binding).await?;
    }
    Ok(())
}

fn lookup(plural: &str) -> Result<&'static kadm_apimachinery::ResourceInfo> {
    registry::lookup(GROUP, "v1", plural)
        .ok_or_else(|| Error::Config(format!("{plural} not registered")))
}

/// What to do with an existing object.
enum Merge {
    Keep,
    Update(Value),
    Replace,
}

async fn reconcile(
    store: &Store,
    res: &'static kadm_apimachinery::ResourceInfo,
    wanted: Value,
    merge: fn(&Value, &Value) -> Merge,
) -> Result<()> {
    let name = meta::name(&wanted).to_string();
    let key = res.etcd_key("", &name);
    // Bounded: each round either finishes or lost a race with another writer.
    for _ in 0..5 {
        let existing = store.get(&key).await.map_err(store_err)?;
        let outcome = match existing {
            None => {
                let mut obj = wanted.clone();
                strategy::prepare_create(res, &mut obj);
                let o = store.create(&key, &obj).await.map_err(store_err)?;
                if matches!(o, WriteOutcome::Written(_)) {
                    tracing::info!(kind = res.kind, name = %name, "created default rbac object");
                }
                o
            }
            Some(cur) => {
                if cur
                    .object
                    .pointer("/metadata/annotations")
                    .and_then(|a| a.get(AUTOUPDATE))
                    .and_then(Value::as_str)
                    == Some("false")
                {
                    return Ok(());
                }
                match merge(&cur.object, &wanted) {
                    Merge::Keep => return Ok(()),
                    Merge::Update(obj) => {
                        let o = store
                            .update(&key, &obj, cur.mod_revision)
                            .await
                            .map_err(store_err)?;
                        if matches!(o, WriteOutcome::Written(_)) {
                            tracing::info!(kind = res.kind, name = %name, "reconciled default rbac object");
                        }
                        o
                    }
                    Merge::Replace => {
                        match store
                            .delete(&key, cur.mod_revision)
                            .await
                            .map_err(store_err)?
                        {
                            WriteOutcome::Written(_) => {
                                tracing::info!(kind = res.kind, name = %name, "replacing default rbac binding whose roleRef changed");
                                continue;
                            }
                            WriteOutcome::Conflict => WriteOutcome::Conflict,
                        }
                    }
                }
            }
        };
        if matches!(outcome, WriteOutcome::Written(_)) {
            return Ok(());
        }
    }
    tracing::warn!(kind = res.kind, name = %name, "default rbac object kept changing; left as is");
    Ok(())
}

/// Adds the labels and annotations of `wanted` that `cur` lacks; true if any.
fn merge_metadata(obj: &mut Value, wanted: &Value) -> bool {
    let mut changed = false;
    for field in ["labels", "annotations"] {
        if let Some(w) = wanted["metadata"].get(field).and_then(Value::as_object) {
            for (k, v) in w {
                let slot = &mut obj["metadata"][field];
                if slot.get(k).is_none() {
                    slot[k] = v.clone();
                    changed = true;
                }
            }
        }
    }
    changed
}

fn merge_role(cur: &Value, wanted: &Value) -> Merge {
    let mut obj = cur.clone();
    let mut changed = merge_metadata(&mut obj, wanted);
    // Aggregated roles' rules belong to the aggregation controller.
    if let Some(selectors) = wanted
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
    {
        let have = obj
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut all = have.clone();
        for s in selectors {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        if all != have {
            obj["aggregationRule"] = json!({"clusterRoleSelectors": all});
            changed = true;
        }
    } else {
        let have = Rule::list_from(&obj);
        let missing = rules::uncovered(&have, &Rule::list_from(wanted));
        if !missing.is_empty() {
            let mut list = obj
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            list.extend(missing.iter().map(Rule::to_json));
            obj["rules"] = Value::Array(list);
            changed = true;
        }
    }
    if changed {
        Merge::Update(obj)
    } else {
        Merge::Keep
    }
}

fn merge_binding(cur: &Value, wanted: &Value) -> Merge {
    if cur.get("roleRef") != wanted.get("roleRef") {
        return Merge::Replace;
    }
    let mut obj = cur.clone();
    let mut changed = merge_metadata(&mut obj, wanted);
    let have = obj
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut all = have.clone();
    for s in wanted
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    if all != have {
        obj["subjects"] = Value::Array(all);
        changed = true;
    }
    if changed {
        Merge::Update(obj)
    } else {
        Merge::Keep
    }
}

fn store_err(e: StoreError) -> Error {
    match e {
        StoreError::Etcd(source) => Error::Etcd {
            endpoints: "etcd".into(),
            source,
        },
        StoreError::Other(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_validate_and_carry_bootstrap_metadata() {
        let (roles, bindings) = defaults().expect("policy");
        let role_res = lookup("clusterroles").expect("registered");
        let binding_res = lookup("clusterrolebindings").expect("registered");
        for r in &roles {
            assert!(
                kadm_apimachinery::validation::validate(role_res, r).is_empty(),
                "{r}"
            );
            assert_eq!(r["metadata"]["annotations"][AUTOUPDATE], "true");
        }
        for b in &bindings {
            assert!(
                kadm_apimachinery::validation::validate(binding_res, b).is_empty(),
                "{b}"
            );
            let role = b["roleRef"]["name"].as_str().expect("roleRef");
            assert!(
                roles.iter().any(|r| meta::name(r) == role),
                "binding {} refers to missing role {role}",
                meta::name(b)
            );
        }
        for name in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer",
            "system:node",
            "system:node-proxier",
            "system:kube-scheduler",
            "system:kube-controller-manager",
            "system:node-bootstrapper",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            "system:volume-scheduler",
        ] {
            assert!(roles.iter().any(|r| meta::name(r) == name), "{name}");
        }
    }

    #[test]
    fn reconciling_adds_missing_rules_and_subjects_only() {
        let (roles, bindings) = defaults().expect("policy");
        let view = roles
            .iter()
            .find(|r| meta::name(r) == "system:aggregate-to-view")
            .expect("view");
        let mut trimmed = view.clone();
        trimmed["rules"] = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}]);
        let Merge::Update(fixed) = merge_role(&trimmed, view) else {
            panic!("missing rules must be added")
        };
        assert!(rules::uncovered(&Rule::list_from(&fixed), &Rule::list_from(view)).is_empty());
        assert!(
            fixed["rules"].to_string().contains("widgets"),
            "an operator's extra rule survives"
        );
        assert!(matches!(merge_role(&fixed, view), Merge::Keep));
        let admin = bindings
            .iter()
            .find(|b| meta::name(b) == "cluster-admin")
            .expect("binding");
        let mut no_subjects = admin.clone();
        no_subjects["subjects"] = json!([]);
        assert!(matches!(
            merge_binding(&no_subjects, admin),
            Merge::Update(_)
        ));
        let mut other_role = admin.clone();
        other_role["roleRef"]["name"] = json!("view");
        assert!(matches!(merge_binding(&other_role, admin), Merge::Replace));
    }
}
