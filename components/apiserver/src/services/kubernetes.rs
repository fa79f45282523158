//! The `default/kubernetes` Service and its Endpoints and EndpointSlice, kept by the
//! apiserver as Kubernetes' bootstrap controller keeps them: the Service holds the
//! range's first address and port 443 (`https`), the endpoints name this apiserver's
//! advertise address and secure port. Checked at start and every 10 s, so a deleted or
//! edited object comes back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kadm_apimachinery::{ApiError, ResourceInfo, meta, registry};
use serde_json::{Value, json};

use super::Allocator;
use crate::storage::{Store, WriteOutcome};
use crate::strategy;

const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
/// How often the objects are checked (Kubernetes: `--endpoint-reconciler` interval 10 s).
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Where this apiserver is reached.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

fn resource(group: &str, version: &str, plural: &str) -> Result<&'static ResourceInfo, ApiError> {
    registry::lookup(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not registered")))
}

fn ports(ep: Endpoint) -> Value {
    json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": ep.port}])
}

/// Runs the reconciler until `shutdown` flips.
pub fn start(
    store: Store,
    alloc: Arc<Allocator>,
    ep: Endpoint,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = reconcile(&store, &alloc, ep).await {
                tracing::warn!(error = %e.message, "kubernetes service: reconcile failed; retrying");
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
        }
    });
}

/// One pass: creates or corrects the Service, Endpoints and EndpointSlice.
pub async fn reconcile(store: &Store, alloc: &Allocator, ep: Endpoint) -> Result<(), ApiError> {
    ensure_service(store, alloc, ep).await?;
    let endpoints = resource("", "v1", "endpoints")?;
    let addresses = json!([{
        "addresses": [{"ip": ep.ip.to_string()}],
        "ports": [{"name": "https", "port": ep.port, "protocol": "TCP"}],
    }]);
    ensure(
        store,
        endpoints,
        json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": addresses}),
        &["subsets"],
    )
    .await?;
    let slices = resource("discovery.k8s.io", "v1", "endpointslices")?;
    let family = if ep.ip.is_ipv4() { "IPv4" } else { "IPv6" };
    ensure(
        store,
        slices,
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": NAME}},
            "addressType": family,
            "endpoints": [{"addresses": [ep.ip.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": ep.port, "protocol": "TCP"}]}),
        &["addressType", "endpoints", "ports"],
    )
    .await
}

async fn ensure_service(store: &Store, alloc: &Allocator, ep: Endpoint) -> Result<(), ApiError> {
    let services = resource("", "v1", "services")?;
    let key = services.etcd_key(NAMESPACE, NAME);
    match store.get(&key).await? {
        None => {
            let first = alloc.ips.first().to_string();
            let mut obj = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": NAME, "namespace": NAMESPACE,
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"type": "ClusterIP", "clusterIP": first, "clusterIPs": [first],
                    "sessionAffinity": "None", "ports": ports(ep)}});
            strategy::prepare_create(services, &mut obj);
            if let WriteOutcome::Written(rev) =
                alloc.write(store, &key, None, &mut obj, false).await?
            {
                tracing::info!(cluster_ip = %first, revision = rev, "created the kubernetes service");
            }
        }
        Some(current) => {
            let want = ports(ep);
            let mut have = current
                .object
                .pointer("/spec/ports")
                .cloned()
                .unwrap_or(json!([]));
            // Compare without fields the apiserver defaults (nodePort, appProtocol).
            if let Some(list) = have.as_array_mut() {
                for p in list.iter_mut().filter_map(Value::as_object_mut) {
                    p.retain(|k, _| {
                        ["name", "port", "protocol", "targetPort"].contains(&k.as_str())
                    });
                }
            }
            if have != want || current.object.pointer("/spec/type") != Some(&json!("ClusterIP")) {
                let mut obj = current.object.clone();
                obj["spec"]["ports"] = want;
                obj["spec"]["type"] = json!("ClusterIP");
                let old = current.object.clone();
                let outcome = alloc
                    .write(
                        store,
                        &key,
                        Some((&old, current.mod_revision)),
                        &mut obj,
                        false,
                    )
                    .await?;
                if let WriteOutcome::Written(rev) = outcome {
                    tracing::info!(revision = rev, "corrected the kubernetes service's ports");
                }
            }
        }
    }
    Ok(())
}

/// Creates `want` or rewrites the `fields` of the stored object that differ.
async fn ensure(
    store: &Store,
    res: &'static ResourceInfo,
    mut want: Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    let key = res.etcd_key(NAMESPACE, NAME);
    match store.get(&key).await? {
        None => {
            strategy::prepare_create(res, &mut want);
            if let WriteOutcome::Written(rev) = store.create(&key, &want).await? {
                tracing::info!(
                    resource = res.plural,
                    revision = rev,
                    "created the kubernetes service's endpoints"
                );
            }
        }
        Some(current) => {
            let mut obj = current.object.clone();
            let mut changed = false;
            for f in fields {
                if obj.get(*f) != want.get(*f) {
                    obj[*f] = want[*f].clone();
                    changed = true;
                }
            }
            let want_labels = want.pointer("/metadata/labels").and_then(Value::as_object);
            for (k, v) in want_labels.into_iter().flatten() {
                if obj.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1"))) != Some(v) {
                    if !obj["metadata"].get("labels").is_some_and(Value::is_object) {
                        obj["metadata"]["labels"] = json!({});
                    }
                    obj["metadata"]["labels"][k] = v.clone();
                    changed = true;
                }
            }
            if changed {
                meta::remove(&mut obj, "resourceVersion");
                store.update(&key, &obj, current.mod_revision).await?;
                tracing::info!(
                    resource = res.plural,
                    "corrected the kubernetes service's endpoints"
                );
            }
        }
    }
    Ok(())
}
