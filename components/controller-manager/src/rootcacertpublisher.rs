//! The root CA certificate publisher: every namespace has a `kube-root-ca.crt` ConfigMap
//! with the cluster CA (`ca.crt`), which pods' `kube-api-access-*` volumes project so that
//! workloads can verify the apiserver. Made when a namespace appears, and put back when
//! someone deletes or edits it (Kubernetes' `root-ca-certificate-publisher-controller`).
//!
//! ```text
//!  namespace watch ──────────────────────────┐
//!                                            ▼
//!  kube-root-ca.crt watch ─► store, changes ─► their namespace
//!                                            ▼
//!  reconcile(ns): missing ─► create (namespace gone or terminating: done)
//!                 data or description differ ─► update
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::backoff::Failures;
use crate::controllers::ROOT_CA_CERT_PUBLISHER;
use crate::error::{Error, Result, api_code};

/// The ConfigMap's name in every namespace.
pub const CONFIGMAP_NAME: &str = "kube-root-ca.crt";
/// The key of the CA bundle in it.
pub const CA_KEY: &str = "ca.crt";
/// The annotation that says what the ConfigMap is for, and its text (Kubernetes').
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// First retry delay after a failed sync.
const BACKOFF_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay after failed syncs.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How soon a sync that found the ConfigMap cache unfilled runs again.
const CACHE_WAIT: Duration = Duration::from_millis(100);

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    /// The PEM bundle published.
    pub root_ca: String,
    pub configmaps: Store<ConfigMap>,
    failures: Failures,
}

/// The CA bundle to publish: `--root-ca-file` when given, else the CA the controller
/// manager's kubeconfig trusts for the apiserver (as kube-controller-manager falls back
/// to its client config's CA data).
pub fn root_ca(root_ca_file: Option<&Path>, kubeconfig: &Path) -> Result<String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| Error::RootCa {
            source_name: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    if let Some(path) = root_ca_file {
        return read(path);
    }
    let invalid = |reason: String| Error::RootCa {
        source_name: kubeconfig.display().to_string(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| invalid(e.to_string()))?;
    let context_cluster = kc.current_context.as_ref().and_then(|current| {
        kc.contexts
            .iter()
            .find(|c| &c.name == current)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    });
    let cluster = kc
        .clusters
        .iter()
        .find(|c| context_cluster.as_ref().is_none_or(|name| &c.name == name))
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| invalid("it names no cluster for its current context".into()))?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| invalid(format!("certificate-authority-data is not base64: {e}")))?;
        return String::from_utf8(pem)
            .map_err(|_| invalid("certificate-authority-data is not PEM text".into()));
    }
    if let Some(path) = &cluster.certificate_authority {
        let path = Path::new(path);
        // A relative path is relative to the kubeconfig, as kubectl reads it.
        let path = if path.is_relative() {
            kubeconfig.parent().unwrap_or(Path::new(".")).join(path)
        } else {
            path.to_path_buf()
        };
        return read(&path);
    }
    Err(invalid(
        "its cluster has no certificate authority; pass --root-ca-file".into(),
    ))
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    root_ca: String,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = ROOT_CA_CERT_PUBLISHER, "starting controller");
    let (store, writer) = reflector::store::<ConfigMap>();
    let changed = watcher(
        Api::<ConfigMap>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}")),
    )
    .default_backoff()
    .reflect(writer)
    .filter_map(|ev| async move {
        match ev {
            Ok(watcher::Event::Apply(cm) | watcher::Event::Delete(cm)) => Some(Ok(cm)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        root_ca,
        configmaps: store,
        failures: Failures::default(),
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .watches_stream(changed, |cm: ConfigMap| {
            cm.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::trace!(namespace = %obj.name, "synced"),
                Err(controller::Error::ReconcilerFailed(_, _)) => {}
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(namespace = %obj.name, "namespace gone before its sync");
                }
                Err(e) => {
                    tracing::warn!(controller = ROOT_CA_CERT_PUBLISHER, error = %e, "watch trouble, retrying")
                }
            }
        })
        .await;
    tracing::info!(controller = ROOT_CA_CERT_PUBLISHER, "controller stopped");
}

/// The data the ConfigMap must hold.
fn wanted_data(root_ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CA_KEY.to_string(), root_ca.to_string())])
}

/// Whether a present ConfigMap needs rewriting: other data, or no description.
pub fn needs_update(cm: &ConfigMap, root_ca: &str) -> bool {
    cm.data.as_ref() != Some(&wanted_data(root_ca))
        || cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
            .is_none_or(String::is_empty)
}

/// Publishes the CA into one namespace.
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    let name = ns.name_any();
    // A sync on an unfilled cache would take every ConfigMap for missing, and the initial
    // list of ConfigMaps triggers no sync of its own: wait for it by requeueing. (Not by
    // awaiting `wait_until_ready`: its one-shot channel wakes only the last of several
    // concurrent waiters, and the other syncs would hang.)
    if !matches!(
        ctx.configmaps.wait_until_ready().now_or_never(),
        Some(Ok(()))
    ) {
        return Ok(Action::requeue(CACHE_WAIT));
    }
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &name);
    let cached = ctx
        .configmaps
        .get(&ObjectRef::new(CONFIGMAP_NAME).within(&name));
    let failed = |action: &'static str, source: kube::Error| Error::Workload {
        action,
        object: format!("configmap {name}/{CONFIGMAP_NAME}"),
        source: Box::new(source),
    };
    match cached {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIGMAP_NAME.into()),
                    namespace: Some(name.clone()),
                    annotations: Some(BTreeMap::from([(
                        DESCRIPTION_ANNOTATION.to_string(),
                        DESCRIPTION.to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(wanted_data(&ctx.root_ca)),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => tracing::info!(namespace = %name, "published the root CA"),
                // 404: the namespace is gone; 403: it is terminating. (409: the cache is
                // behind; retried like any failure, then the update path applies.)
                Err(e) if matches!(api_code(&e), Some(403 | 404)) => {}
                Err(e) => return Err(failed("create", e)),
            }
        }
        Some(cm) if needs_update(&cm, &ctx.root_ca) => {
            let mut cm = (*cm).clone();
            cm.data = Some(wanted_data(&ctx.root_ca));
            cm.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
            match api
                .replace(CONFIGMAP_NAME, &PostParams::default(), &cm)
                .await
            {
                Ok(_) => tracing::info!(namespace = %name, "restored the root CA"),
                Err(e) if matches!(api_code(&e), Some(404)) => {}
                Err(e) => return Err(failed("update", e)),
            }
        }
        Some(_) => {}
    }
    ctx.failures.forget(&name);
    Ok(Action::await_change())
}

/// Requeues a failed namespace with exponential back-off.
pub fn error_policy(ns: Arc<Namespace>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let name = ns.name_any();
    let delay = crate::backoff::exponential(ctx.failures.record(&name), BACKOFF_BASE, BACKOFF_MAX);
    tracing::warn!(namespace = %name, error = %err, retry_in_ms = delay.as_millis() as u64, "root CA publication failed");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edited_or_undescribed_configmaps_are_rewritten() {
        let cm = |v| serde_json::from_value::<ConfigMap>(v).expect("configmap");
        let good = cm(json!({"metadata": {"name": CONFIGMAP_NAME,
            "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}, "data": {"ca.crt": "PEM"}}));
        assert!(!needs_update(&good, "PEM"));
        assert!(needs_update(&good, "OTHER"));
        let bare = cm(json!({"metadata": {"name": CONFIGMAP_NAME}, "data": {"ca.crt": "PEM"}}));
        assert!(needs_update(&bare, "PEM"));
        let extra = cm(json!({"metadata": {"name": CONFIGMAP_NAME,
            "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}, "data": {"ca.crt": "PEM", "x": "y"}}));
        assert!(needs_update(&extra, "PEM"));
    }

    #[test]
    fn the_ca_comes_from_the_file_or_the_kubeconfig() {
        let dir = std::env::temp_dir().join(format!("kadm-rootca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let kc = dir.join("kubeconfig");
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        std::fs::write(
            &kc,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
                 clusters:\n- name: other\n  cluster: {{server: https://x}}\n- name: k\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {data}\n\
                 users:\n- name: u\n  user: {{}}\n"
            ),
        )
        .expect("write kubeconfig");
        assert_eq!(root_ca(None, &kc).expect("from kubeconfig"), pem);
        let file = dir.join("ca.crt");
        std::fs::write(&file, "FILE").expect("write ca");
        assert_eq!(root_ca(Some(&file), &kc).expect("from file"), "FILE");
        let bare = dir.join("bare");
        std::fs::write(
            &bare,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\nclusters:\n- name: k\n  cluster: {server: https://x}\n",
        )
        .expect("write bare");
        assert!(
            root_ca(None, &bare)
                .expect_err("no ca")
                .to_string()
                .contains("--root-ca-file")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
