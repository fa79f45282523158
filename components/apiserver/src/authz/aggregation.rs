//! The ClusterRole aggregation controller, run inside the apiserver (Kubernetes runs it
//! in kube-controller-manager as `clusterrole-aggregation-controller`): a ClusterRole with
//! an `aggregationRule` gets, as its `rules`, the distinct rules of every other ClusterRole
//! its selectors match, in name order. It follows ClusterRole changes through the watch
//! cache and writes only roles whose rules differ.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use kadm_apimachinery::registry;
use kadm_apimachinery::selector::LabelSelector;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::rbac::GROUP;
use crate::cache::{Cacher, WatchCache, WatchFrom};
use crate::storage::{Store, WriteOutcome};

/// Starts the controller; it runs until the process ends.
pub fn start(store: Store, cache: Arc<WatchCache>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(res) = registry::lookup(GROUP, "v1", "clusterroles") else {
            return;
        };
        loop {
            if !cache.wait_ready(Duration::from_secs(30)).await {
                continue;
            }
            let Some(cacher) = cache.cacher(res) else {
                return;
            };
            let mut live = match cacher.watch(&cacher.prefix, WatchFrom::Latest) {
                Ok(start) => start.live,
                Err(_) => continue,
            };
            sync(&store, cacher).await;
            // Ends when the cache re-lists (the broadcast closes): then follow it again.
            while let Ok(_) | Err(RecvError::Lagged(_)) = live.recv().await {
                // Let a burst of changes settle, then aggregate once.
                tokio::time::sleep(Duration::from_millis(50)).await;
                while live.try_recv().is_ok() {}
                sync(&store, cacher).await;
            }
        }
    })
}

/// The rules an aggregated role should have, given every ClusterRole (name, labels, rules).
pub fn aggregate(role: &Value, all: &[Value]) -> Option<Vec<Value>> {
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)?;
    let selectors: Vec<LabelSelector> = selectors
        .iter()
        .filter_map(|s| serde_json::from_value::<metav1::LabelSelector>(s.clone()).ok())
        .filter_map(|s| LabelSelector::from_label_selector(&s).ok())
        .collect();
    let name = kadm_apimachinery::meta::name(role);
    let mut sources: Vec<&Value> = all
        .iter()
        .filter(|o| kadm_apimachinery::meta::name(o) != name)
        .filter(|o| {
            let labels = kadm_apimachinery::meta::labels(o)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            selectors.iter().any(|s| s.matches(&labels))
        })
        .collect();
    sources.sort_by_key(|o| kadm_apimachinery::meta::name(o).to_string());
    let mut rules: Vec<Value> = Vec::new();
    for s in sources {
        for r in s
            .get("rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
        }
    }
    Some(rules)
}

fn rules_of(o: &Value) -> Vec<Value> {
    o.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

async fn sync(store: &Store, cacher: &Cacher) {
    let all: Vec<Value> = cacher
        .list(&cacher.prefix, 0, |_| true)
        .items
        .iter()
        .map(|e| e.value())
        .collect();
    for role in &all {
        let Some(wanted) = aggregate(role, &all) else {
            continue;
        };
        if rules_of(role) == wanted {
            continue;
        }
        let key = format!("{}{}", cacher.prefix, kadm_apimachinery::meta::name(role));
        // Read etcd, not the cache: the cache may not show this controller's last write yet.
        for _ in 0..3 {
            let current = match store.get(&key).await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e.to_api().message, "aggregation: read failed");
                    break;
                }
            };
            let Some(wanted) = aggregate(&current.object, &all) else {
                break;
            };
            if rules_of(&current.object) == wanted {
                break;
            }
            let mut obj = current.object.clone();
            obj["rules"] = Value::Array(wanted);
            match store.update(&key, &obj, current.mod_revision).await {
                Ok(WriteOutcome::Written(rev)) => {
                    tracing::info!(clusterrole = %kadm_apimachinery::meta::name(&obj), revision = rev, "aggregated clusterrole rules updated");
                    break;
                }
                Ok(WriteOutcome::Conflict) => continue,
                Err(e) => {
                    tracing::warn!(key = %key, error = %e.to_api().message, "aggregation: write failed");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregates_distinct_rules_of_matching_roles_in_name_order() {
        let agg = json!({"metadata": {"name": "agg"}, "aggregationRule": {"clusterRoleSelectors": [
            {"matchLabels": {"a": "true"}}, {"matchLabels": {"b": "true"}}]}});
        let r1 = json!({"metadata": {"name": "z", "labels": {"a": "true"}}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let r2 = json!({"metadata": {"name": "m", "labels": {"b": "true"}}, "rules": [
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let other = json!({"metadata": {"name": "o", "labels": {"c": "true"}}, "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]});
        let all = vec![agg.clone(), r1, r2, other];
        let rules = aggregate(&agg, &all).expect("aggregated");
        assert_eq!(
            rules,
            vec![
                json!({"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}),
                json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}),
            ]
        );
        assert!(aggregate(&all[1], &all).is_none());
    }
}
