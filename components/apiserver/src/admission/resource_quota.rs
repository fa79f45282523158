//! ResourceQuota: a write that would take a namespace past one of its quotas is refused
//! (`exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2`), and one that
//! fits is charged to every quota it falls under before it is stored, so concurrent
//! creates cannot overshoot together.
//!
//! How the charge stays race-free (Kubernetes' way): each quota's `status.used` is
//! rewritten in etcd guarded by the quota's revision; a concurrent change makes the write
//! fail, the quota is read again and the request re-checked against it (only the quotas
//! whose write failed, so nothing is charged twice). Within one apiserver, writes into
//! the same namespace are charged one at a time, so they do not collide with each other.
//! Dry runs are checked and never charged. Usage is only ever added here; what deletes
//! release is recounted by the resourcequota controller, which also fills `status.hard`
//! — a quota it has not seen yet (no `status.hard`) limits nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kadm_apimachinery::quota::{self, Evaluator, ResourceList};
use kadm_apimachinery::{ApiError, meta};
use serde_json::Value;

use super::{Operation, Request, lookup};
use crate::server::State;
use crate::storage::WriteOutcome;

/// Re-reads of quotas whose charge lost a race before the request fails with a conflict.
const MAX_ATTEMPTS: usize = 8;

/// The plugin's state: one charging lock per namespace.
#[derive(Debug, Clone, Default)]
pub struct QuotaAdmission {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl QuotaAdmission {
    fn lock_for(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Forget namespaces nobody is charging in right now, so the map stays small.
        if locks.len() > 64 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(namespace.to_string()).or_default().clone()
    }

    /// The validating phase (ResourceQuota runs last, on the object that will be stored).
    pub async fn validate(
        &self,
        state: &State,
        req: &Request<'_>,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if !req.subresource.is_empty() || req.namespace.is_empty() || !req.res.namespaced() {
            return Ok(());
        }
        let Some(evaluator) = Evaluator::for_resource(req.res.group, req.res.plural) else {
            return Ok(());
        };
        let handles = match req.operation {
            Operation::Create => true,
            Operation::Update => evaluator.charges_updates(),
            Operation::Delete => false,
        };
        if !handles {
            return Ok(());
        }
        let quotas_res = lookup::resource("", "resourcequotas")?;
        // The common case, a namespace without quotas, costs one look at the cache.
        if lookup::list(state, quotas_res, req.namespace)
            .await?
            .is_empty()
        {
            return Ok(());
        }
        let lock = self.lock_for(req.namespace);
        let _charging = if req.dry_run {
            None
        } else {
            Some(lock.lock().await)
        };
        let now = std::time::SystemTime::now();
        let mut only: Option<BTreeSet<String>> = None;
        let mut last_conflict = String::new();
        for _ in 0..MAX_ATTEMPTS {
            let quotas: Vec<(Value, i64)> = state
                .store
                .list(&quotas_res.etcd_key(req.namespace, ""), None, 0, 0)
                .await?
                .items
                .into_iter()
                .filter(|s| {
                    only.as_ref()
                        .is_none_or(|names| names.contains(meta::name(&s.object)))
                })
                .map(|s| (s.object, s.mod_revision))
                .collect();
            let charged = check_request(&evaluator, req, obj, &quotas, now)?;
            if req.dry_run || charged.is_empty() {
                return Ok(());
            }
            let mut failed = BTreeSet::new();
            for (quota, rev) in charged {
                let name = meta::name(&quota).to_string();
                let key = quotas_res.etcd_key(req.namespace, &name);
                match state.store.update(&key, &quota, rev).await? {
                    WriteOutcome::Written(_) => {
                        tracing::debug!(namespace = req.namespace, quota = %name, resource = req.res.plural, "charged quota");
                    }
                    WriteOutcome::Conflict => {
                        last_conflict = name.clone();
                        failed.insert(name);
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            only = Some(failed);
        }
        Err(ApiError::stale_resource_version(
            "",
            "resourcequotas",
            &last_conflict,
        ))
    }
}

fn forbidden(req: &Request<'_>, detail: &str) -> ApiError {
    ApiError::forbidden(req.res.group, req.res.plural, req.name, detail)
}

/// Kubernetes' `CheckRequest`: the quotas (with their revisions) whose `status.used`
/// must grow for this request, already grown, or the reason it does not fit.
fn check_request(
    evaluator: &Evaluator,
    req: &Request<'_>,
    obj: &Value,
    quotas: &[(Value, i64)],
    now: std::time::SystemTime,
) -> Result<Vec<(Value, i64)>, ApiError> {
    let mut interesting = Vec::new();
    for (i, (q, _)) in quotas.iter().enumerate() {
        if !evaluator.matches(q, obj) {
            continue;
        }
        let name = meta::name(q);
        let hard = quota::parse_list(q.pointer("/status/hard"));
        let hard_names: Vec<&String> = hard.keys().collect();
        let restricted = evaluator.matching_resources(&hard_names);
        if let Err(e) = evaluator.constraints(&restricted, obj) {
            return Err(forbidden(req, &format!("failed quota: {name}: {e}")));
        }
        let used = quota::parse_list(q.pointer("/status/used"));
        if restricted.iter().any(|r| !used.contains_key(r)) {
            let names: Vec<&str> = restricted
                .iter()
                .map(String::as_str)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            return Err(forbidden(
                req,
                &format!(
                    "status unknown for quota: {name}, resources: {}",
                    names.join(",")
                ),
            ));
        }
        interesting.push(i);
    }
    let mut delta = evaluator.usage(obj, now);
    let negative = quota::negative_names(&delta);
    if !negative.is_empty() {
        return Err(forbidden(
            req,
            &format!(
                "quota usage is negative for resource(s): {}",
                negative.join(",")
            ),
        ));
    }
    if req.operation == Operation::Update {
        let Some(old) = req.old else {
            return Err(forbidden(
                req,
                "unable to get previous usage since prior version of object was not found",
            ));
        };
        delta = quota::subtract_non_negative(&delta, &evaluator.usage(old, now));
    }
    let delta = quota::remove_zeros(&delta);
    if delta.is_empty() || interesting.is_empty() {
        return Ok(Vec::new());
    }
    let mut charged = Vec::new();
    for i in interesting {
        let (q, rev) = &quotas[i];
        let name = meta::name(q);
        let hard = quota::parse_list(q.pointer("/status/hard"));
        let used = quota::parse_list(q.pointer("/status/used"));
        let hard_names: Vec<&String> = hard.keys().collect();
        let requested = quota::mask(&delta, &hard_names);
        let new_used = quota::add(&used, &requested);
        let requested_names: Vec<&String> = requested.keys().collect();
        let (fits, exceeded) =
            quota::less_than_or_equal(&quota::mask(&new_used, &requested_names), &hard);
        if !fits {
            return Err(forbidden(
                req,
                &format!(
                    "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                    quota::pretty_print(&quota::mask(&requested, &exceeded)),
                    quota::pretty_print(&quota::mask(&used, &exceeded)),
                    quota::pretty_print(&quota::mask(&hard, &exceeded)),
                ),
            ));
        }
        if !quota::equals(&used, &new_used) {
            charged.push((with_used(q, &new_used), *rev));
        }
    }
    Ok(charged)
}

/// The quota with `status.used` replaced.
fn with_used(q: &Value, used: &ResourceList) -> Value {
    let mut out = q.clone();
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        status.insert("used".into(), quota::to_json(used));
    }
    meta::remove(&mut out, "resourceVersion");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::UserInfo;
    use kadm_apimachinery::registry::lookup as registry_lookup;
    use serde_json::json;

    fn user() -> UserInfo {
        UserInfo {
            name: "u".into(),
            groups: vec![],
            ..Default::default()
        }
    }

    fn request<'a>(
        plural: &str,
        op: Operation,
        user: &'a UserInfo,
        old: Option<&'a Value>,
    ) -> Request<'a> {
        Request {
            res: registry_lookup("", "v1", plural).expect("resource"),
            subresource: "",
            operation: op,
            namespace: "ns",
            name: "p3",
            user,
            old,
            dry_run: false,
        }
    }

    fn quota_obj(name: &str, hard: Value, used: Value) -> (Value, i64) {
        (
            json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard.clone()},
                "status": {"hard": hard, "used": used}}),
            7,
        )
    }

    fn pod(cpu: Option<&str>) -> Value {
        let resources = match cpu {
            Some(c) => json!({"requests": {"cpu": c}, "limits": {"cpu": c}}),
            None => json!({}),
        };
        json!({"metadata": {"name": "p3"}, "spec": {"containers": [{"name": "c1", "resources": resources}]}})
    }

    #[test]
    fn a_pod_beyond_the_quota_gets_kubernetes_message() {
        let u = user();
        let req = request("pods", Operation::Create, &u, None);
        let quotas = [quota_obj("q1", json!({"pods": "2"}), json!({"pods": "2"}))];
        let e = check_request(
            &Evaluator::Pods,
            &req,
            &pod(None),
            &quotas,
            std::time::SystemTime::now(),
        )
        .expect_err("over quota");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p3\" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2"
        );
    }

    #[test]
    fn fitting_pods_are_charged_to_each_matching_quota() {
        let u = user();
        let req = request("pods", Operation::Create, &u, None);
        let quotas = [
            quota_obj(
                "q1",
                json!({"pods": "2", "requests.cpu": "1"}),
                json!({"pods": "1", "requests.cpu": "250m"}),
            ),
            quota_obj("best-effort", json!({"pods": "5"}), json!({"pods": "0"})),
            quota_obj(
                "objects",
                json!({"configmaps": "5"}),
                json!({"configmaps": "1"}),
            ),
        ];
        let mut scoped = quotas.clone();
        scoped[1].0["spec"]["scopes"] = json!(["BestEffort"]);
        let charged = check_request(
            &Evaluator::Pods,
            &req,
            &pod(Some("500m")),
            &scoped,
            std::time::SystemTime::now(),
        )
        .expect("fits");
        assert_eq!(charged.len(), 1, "only q1 applies to a burstable pod");
        assert_eq!(
            charged[0].0["status"]["used"],
            json!({"pods": "2", "requests.cpu": "750m"})
        );
        assert_eq!(charged[0].1, 7, "the write is guarded by the read revision");
        assert!(charged[0].0["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn compute_quotas_require_every_container_to_state_them() {
        let u = user();
        let req = request("pods", Operation::Create, &u, None);
        let quotas = [quota_obj(
            "q1",
            json!({"limits.cpu": "2"}),
            json!({"limits.cpu": "0"}),
        )];
        let e = check_request(
            &Evaluator::Pods,
            &req,
            &pod(None),
            &quotas,
            std::time::SystemTime::now(),
        )
        .expect_err("no limit");
        assert_eq!(
            e.message,
            "pods \"p3\" is forbidden: failed quota: q1: must specify limits.cpu for: c1"
        );
    }

    #[test]
    fn quotas_without_usage_refuse_and_without_status_limit_nothing() {
        let u = user();
        let req = request("pods", Operation::Create, &u, None);
        let unknown = [quota_obj("q1", json!({"pods": "2"}), json!({}))];
        let e = check_request(
            &Evaluator::Pods,
            &req,
            &pod(None),
            &unknown,
            std::time::SystemTime::now(),
        )
        .expect_err("unknown");
        assert_eq!(
            e.message,
            "pods \"p3\" is forbidden: status unknown for quota: q1, resources: pods"
        );
        let fresh = [(
            json!({"metadata": {"name": "q1"}, "spec": {"hard": {"pods": "0"}}}),
            3,
        )];
        assert!(
            check_request(
                &Evaluator::Pods,
                &req,
                &pod(None),
                &fresh,
                std::time::SystemTime::now()
            )
            .expect("fresh")
            .is_empty()
        );
    }

    #[test]
    fn service_updates_are_charged_by_their_difference() {
        let u = user();
        let old = json!({"metadata": {"name": "s", "resourceVersion": "5"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let req = request("services", Operation::Update, &u, Some(&old));
        let new = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let quotas = [quota_obj(
            "q",
            json!({"services": "1", "services.nodeports": "0"}),
            json!({"services": "1", "services.nodeports": "0"}),
        )];
        let e = check_request(
            &Evaluator::Services,
            &req,
            &new,
            &quotas,
            std::time::SystemTime::now(),
        )
        .expect_err("no node ports left");
        assert!(
            e.message.ends_with("exceeded quota: q, requested: services.nodeports=1, used: services.nodeports=0, limited: services.nodeports=0"),
            "{}",
            e.message
        );
    }
}
