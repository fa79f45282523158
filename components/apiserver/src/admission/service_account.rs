//! ServiceAccount: every new pod runs as a service account of its namespace (`default`
//! unless it names one), that account must exist, and unless the pod or the account
//! opts out the pod gets the account's API credentials as the projected volume
//! `kube-api-access-<random>` (a bound token, the cluster CA from the `kube-root-ca.crt`
//! ConfigMap, the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and init container.
//! Mirror pods (static pods the kubelet reports) may not use accounts or secrets at all.

use std::time::Duration;

use kadm_apimachinery::ApiError;
use rand::Rng;
use serde_json::{Value, json};

use super::{Operation, Request, lookup};
use crate::server::State;

/// The account a pod without `spec.serviceAccountName` runs as.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where the credentials are mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume name prefix (the rest is five random characters).
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap every namespace has with the cluster CA (root-ca-cert-publisher).
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Kubernetes' `WarnOnlyBoundTokenExpirationSeconds`: one hour plus seven seconds, the
/// marker by which the apiserver recognizes kubelet-requested tokens it may extend.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
pub use crate::authz::graph::MIRROR_POD_ANNOTATION;
/// Lookups of the `default` account retry this often, as it is created by a controller
/// right after its namespace and a pod may come in between (Kubernetes: 10 tries).
const DEFAULT_ACCOUNT_ATTEMPTS: usize = 10;

/// Characters of generated name suffixes (Kubernetes' `SimpleNameGenerator`).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn applies(req: &Request<'_>) -> bool {
    req.operation == Operation::Create && req.is_core("pods")
}

fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

fn account_name(pod: &Value) -> &str {
    pod.pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The mutating half: default the account, mount its token, copy its image pull secrets.
pub async fn mutate(state: &State, req: &Request<'_>, pod: &mut Value) -> Result<(), ApiError> {
    if !applies(req) {
        return Ok(());
    }
    if is_mirror_pod(pod) {
        return validate(state, req, pod).await;
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec.insert("serviceAccountName".into(), json!(DEFAULT_SERVICE_ACCOUNT));
    }
    let name = account_name(pod).to_string();
    let account = find_account(state, req, &name).await?;
    if automount(&account, pod) {
        mount_token(pod, &random_suffix());
    }
    copy_pull_secrets(&account, pod);
    // Kubernetes' Admit ends with Validate, whose only check for a pod that is not a
    // mirror pod is that the account exists: it was just found.
    Ok(())
}

/// The validating half: mirror pods reference no account or secret; any other pod's
/// account exists.
pub async fn validate(state: &State, req: &Request<'_>, pod: &Value) -> Result<(), ApiError> {
    if !applies(req) {
        return Ok(());
    }
    if is_mirror_pod(pod) {
        return validate_mirror_pod(req, pod);
    }
    find_account(state, req, account_name(pod))
        .await
        .map(|_| ())
}

fn forbidden(req: &Request<'_>, detail: &str) -> ApiError {
    ApiError::forbidden(req.res.group, req.res.plural, req.name, detail)
}

fn validate_mirror_pod(req: &Request<'_>, pod: &Value) -> Result<(), ApiError> {
    if !account_name(pod).is_empty() {
        return Err(forbidden(
            req,
            "a mirror pod may not reference service accounts",
        ));
    }
    if references_secrets(pod) {
        return Err(forbidden(req, "a mirror pod may not reference secrets"));
    }
    let projects_token = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
        .flatten()
        .any(|s| s.get("serviceAccountToken").is_some());
    if projects_token {
        return Err(forbidden(
            req,
            "a mirror pod may not use ServiceAccountToken volume projections",
        ));
    }
    Ok(())
}

/// `VisitPodSecretNames` visits anything (the Node authorizer's graph knows where pods
/// name secrets).
fn references_secrets(pod: &Value) -> bool {
    crate::authz::graph::references_secrets(pod.get("spec").unwrap_or(&Value::Null))
}

/// The pod's account, from the watch cache, then etcd (the `default` account a few times,
/// as its controller may be about to create it). Missing: Kubernetes' 403.
async fn find_account(state: &State, req: &Request<'_>, name: &str) -> Result<Value, ApiError> {
    let accounts = lookup::resource("", "serviceaccounts")?;
    let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    // 100–200 ms between tries, as Kubernetes waits.
    let pause = Duration::from_millis(rand::rng().random_range(100..200));
    for attempt in 0..attempts {
        let found = if attempt == 0 {
            lookup::get(state, accounts, req.namespace, name).await?
        } else {
            tokio::time::sleep(pause).await;
            lookup::get_live(state, accounts, req.namespace, name).await?
        };
        if let Some(sa) = found {
            return Ok(sa);
        }
    }
    Err(forbidden(
        req,
        &format!(
            "error looking up service account {}/{name}: serviceaccount \"{name}\" not found",
            req.namespace
        ),
    ))
}

/// The pod's `automountServiceAccountToken` wins, then the account's; default yes.
fn automount(account: &Value, pod: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true)
}

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect()
}

/// The projected volume Kubernetes mounts (`TokenVolumeSource`), field order as
/// Kubernetes serializes it.
fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ],
            "defaultMode": 420
        }
    })
}

/// Mounts the token volume into every init container and container that has nothing at
/// the mount path yet, adding the volume if one of them needed it. A volume already
/// named `kube-api-access-*` is reused.
fn mount_token(pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(String::from);
    let has_volume = existing.is_some();
    let volume = existing.unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !taken {
                mounts.push(mount.clone());
                mounted = true;
            }
        }
    }
    if mounted && !has_volume {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = volumes.as_array_mut() {
            v.push(token_volume(&volume));
        }
    }
}

/// A pod that names no image pull secrets gets its account's.
fn copy_pull_secrets(account: &Value, pod: &mut Value) {
    let from_account: Vec<Value> = account
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .map(|n| json!({"name": n}))
        .collect();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let has_own = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_own && !from_account.is_empty() {
        spec.insert("imagePullSecrets".into(), Value::Array(from_account));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn token_is_mounted_in_every_container_once() {
        let mut p = pod(json!({
            "initContainers": [{"name": "init", "image": "x"}],
            "containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "x", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}));
        mount_token(&mut p, "abcde");
        let spec = &p["spec"];
        let expected_mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            spec["initContainers"][0]["volumeMounts"],
            json!([expected_mount])
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"],
            json!([expected_mount])
        );
        assert_eq!(
            spec["containers"][1]["volumeMounts"],
            json!([{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]),
            "a container with its own mount at the path keeps it"
        );
        assert_eq!(spec["volumes"][1], token_volume("kube-api-access-abcde"));
        assert_eq!(
            spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        // Again (an admitted pod): nothing more.
        let again = p.clone();
        mount_token(&mut p, "zzzzz");
        assert_eq!(p, again);
    }

    #[test]
    fn no_volume_when_every_container_mounts_the_path_itself() {
        let mut p = pod(json!({"containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}]}));
        mount_token(&mut p, "abcde");
        assert!(p["spec"].get("volumes").is_none());
    }

    #[test]
    fn pod_choice_beats_account_choice() {
        let no = json!({"automountServiceAccountToken": false});
        let yes = json!({"automountServiceAccountToken": true});
        assert!(!automount(&no, &pod(json!({}))));
        assert!(automount(
            &no,
            &pod(json!({"automountServiceAccountToken": true}))
        ));
        assert!(!automount(
            &yes,
            &pod(json!({"automountServiceAccountToken": false}))
        ));
        assert!(automount(&json!({}), &pod(json!({}))));
    }

    #[test]
    fn pull_secrets_come_from_the_account_unless_the_pod_has_some() {
        let sa = json!({"imagePullSecrets": [{"name": "regcred"}]});
        let mut p = pod(json!({}));
        copy_pull_secrets(&sa, &mut p);
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
        let mut own = pod(json!({"imagePullSecrets": [{"name": "mine"}]}));
        copy_pull_secrets(&sa, &mut own);
        assert_eq!(own["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
    }

    #[test]
    fn mirror_pods_use_no_accounts_or_secrets() {
        assert!(is_mirror_pod(
            &json!({"metadata": {"annotations": {MIRROR_POD_ANNOTATION: "x"}}})
        ));
        assert!(references_secrets(&pod(
            json!({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]})
        )));
        assert!(references_secrets(&pod(
            json!({"containers": [{"name": "c",
            "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]})
        )));
        assert!(!references_secrets(&pod(
            json!({"containers": [{"name": "c"}],
            "volumes": [{"name": "c", "configMap": {"name": "x"}}]})
        )));
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
    }
}
