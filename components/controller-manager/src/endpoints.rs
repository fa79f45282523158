//! The endpoints controller: one `Endpoints` object per Service with a selector, listing the
//! addresses of the pods it selects — ready ones under `addresses`, the others under
//! `notReadyAddresses` (all under `addresses` with `publishNotReadyAddresses`) — with each
//! Service port resolved to the pod's port number (named ports looked up per pod; a pod
//! without the named port is left out of that port).
//!
//! ```text
//!  Service watch ─► store ─────────────────────────────┐
//!  pod watch ─► store, and pod → Services it matches(ed) ┤
//!  Endpoints watch ─► store, deletions → their Service  ┤  (and, once at start, every
//!                                                       ▼   Endpoints: leftovers)
//!  reconcile(svc): selector? ─► subsets from the matching pods ─► unchanged? stop
//!                 ─► create / update (labels, trigger time, over-capacity)
//!  Service gone ─► delete its Endpoints
//! ```
//!
//! Services without a selector are left alone: their Endpoints are written by someone else.

pub mod membership;
pub mod subsets;
pub mod triggers;
pub mod triggertime;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::controllers::ENDPOINTS;
use crate::error::{Error, Result, api_code};
use crate::workload::events::{Events, Kind};
use crate::workload::pods;
use crate::workload::runner::{Retry, Runner, key};
use membership::HEADLESS_LABEL;
use subsets::{OVER_CAPACITY_ANNOTATION, Packer};
use triggertime::Tracker;

/// The component name Kubernetes' endpoints controller records events under.
pub const EVENT_SOURCE: &str = "endpoint-controller";
/// Endpoints holding a leader-election record (old-style locks) are never leftovers.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Attempts at deleting the Endpoints of a deleted Service.
const DELETE_ATTEMPTS: u32 = 3;

/// The endpoints controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Services synced at once (`--concurrent-endpoint-syncs`).
    pub concurrency: u16,
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub pods: Store<Pod>,
    pub endpoints: Store<Endpoints>,
    tracker: Tracker,
    events: Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(controller = ENDPOINTS, "starting controller");
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let (ep_store, ep_writer) = reflector::store::<Endpoints>();
    // Deleted Services must reach the controller too (their Endpoints go with them), which
    // `Controller::new` does not do: feed it every touched Service.
    let (services, svc_writer) = reflector::store::<Service>();
    let svc_events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(svc_writer)
    .touched_objects();
    let controller = Controller::for_stream(svc_events, services.clone());
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer);
    let pod_triggers = triggers::from_pod_events(pod_events, services);
    let ep_events = watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(ep_writer);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_store,
        endpoints: ep_store,
        tracker: Tracker::default(),
        events: Events::start(client.clone(), EVENT_SOURCE),
    });
    let controller = controller
        .reconcile_on(pod_triggers)
        .reconcile_on(endpoints_triggers(ep_events));
    // The Service is gone (or never was, for leftover Endpoints).
    let gone = |ctx: Arc<Ctx>, svc: ObjectRef<DynamicObject>| async move {
        let ns = svc.namespace.clone().unwrap_or_default();
        delete_endpoints(&ctx, &ns, &svc.name).await;
    };
    Runner::new(ENDPOINTS, config.concurrency, Retry::default_rate_limiter())
        .on_gone(gone)
        .run(controller, reconcile, ctx, shutdown)
        .await;
}

/// Endpoints events that concern their Service: deletions (made again if the Service still
/// wants them) and, from the first list only, every Endpoints object — one whose Service is
/// gone is a leftover from a time this controller was not running, and is deleted.
fn endpoints_triggers<S>(
    events: S,
) -> impl futures::Stream<Item = ObjectRef<Service>> + Send + 'static
where
    S: futures::Stream<Item = std::result::Result<watcher::Event<Endpoints>, watcher::Error>>
        + Send
        + 'static,
{
    let mut first_list = true;
    let service_of = |ep: &Endpoints| {
        ep.namespace()
            .map(|ns| ObjectRef::<Service>::new(&ep.name_any()).within(&ns))
    };
    events.filter_map(move |ev| {
        let out = match ev {
            Ok(watcher::Event::Delete(ep)) => service_of(&ep),
            Ok(watcher::Event::InitApply(ep))
                if first_list && !ep.annotations().contains_key(LEADER_ANNOTATION) =>
            {
                service_of(&ep)
            }
            Ok(watcher::Event::InitDone) => {
                first_list = false;
                None
            }
            _ => None,
        };
        future::ready(out)
    })
}

/// Deletes the Endpoints of a Service that no longer exists (already gone is fine).
async fn delete_endpoints(ctx: &Ctx, namespace: &str, name: &str) {
    ctx.tracker.forget(namespace, name);
    let present = ctx
        .endpoints
        .get(&ObjectRef::new(name).within(namespace))
        .is_some();
    if !present {
        return;
    }
    let api = Api::<Endpoints>::namespaced(ctx.client.clone(), namespace);
    for attempt in 1..=DELETE_ATTEMPTS {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(
                    namespace,
                    endpoints = name,
                    "deleted endpoints of a deleted service"
                );
                return;
            }
            Err(e) if api_code(&e) == Some(404) => return,
            Err(e) => {
                tracing::warn!(namespace, endpoints = name, attempt, error = %e, "could not delete the endpoints of a deleted service");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
}

/// Syncs the Endpoints of one Service.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    // Building endpoints before the pod cache is filled would empty them.
    if ctx.pods.wait_until_ready().await.is_err() || ctx.endpoints.wait_until_ready().await.is_err()
    {
        return Ok(Action::await_change());
    }
    sync(&svc, &ctx).await?;
    Ok(Action::await_change())
}

/// The labels the Endpoints of `svc` carry: the Service's, plus the headless marker.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if membership::has_cluster_ip(svc) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels
}

/// The packed subsets `svc` should have given the pods its selector matches.
pub fn desired_subsets<'a>(
    svc: &Service,
    matching: impl IntoIterator<Item = &'a Pod>,
) -> Vec<k8s_openapi::api::core::v1::EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.unwrap_or_default();
    let mut packer = Packer::default();
    for pod in matching {
        if !membership::should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = membership::pod_ip(pod, membership::service_family(svc, pod)) else {
            continue;
        };
        let pod_spec = pod.spec.as_ref();
        let address = EndpointAddress {
            ip,
            hostname: membership::should_set_hostname(pod, svc)
                .then(|| pod_spec.and_then(|s| s.hostname.clone()))
                .flatten(),
            node_name: pod_spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let ready = publish_not_ready || pods::is_ready(pod);
        if ports.is_empty() {
            // Only headless Services may have no ports; their addresses carry none.
            if headless {
                packer.add(address, ready, None);
            }
            continue;
        }
        for sp in &ports {
            let Some(number) = membership::find_port(pod, sp) else {
                tracing::debug!(service = %key(svc), pod = %pod.name_any(), port = ?sp.name, "pod has no such port; left out of it");
                continue;
            };
            packer.add(
                address.clone(),
                ready,
                Some(EndpointPort {
                    name: sp.name.clone(),
                    port: number,
                    protocol: sp.protocol.clone(),
                    app_protocol: sp.app_protocol.clone(),
                }),
            );
        }
    }
    packer.subsets()
}

async fn sync(svc: &Service, ctx: &Ctx) -> Result<()> {
    let Some(selector) = membership::selector(svc) else {
        return Ok(());
    };
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let matching: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| membership::selects(selector, p.metadata.labels.as_ref()))
        .collect();
    let (trigger, observed) = ctx.tracker.compute(svc, matching.iter().map(AsRef::as_ref));
    let mut subsets = desired_subsets(svc, matching.iter().map(AsRef::as_ref));
    let truncated = subsets::truncate(&mut subsets);
    let labels = desired_labels(svc);

    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    if let Some(cur) = &current {
        let same = cur.subsets.clone().unwrap_or_default() == subsets
            && *cur.labels() == labels
            && cur.annotations().contains_key(OVER_CAPACITY_ANNOTATION) == truncated;
        if same {
            ctx.tracker.commit(observed);
            return Ok(());
        }
    }
    let mut ep = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        subsets: None,
    });
    ep.subsets = Some(subsets).filter(|s| !s.is_empty());
    ep.metadata.labels = Some(labels);
    let annotations = ep.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => {
            annotations.insert(triggertime::ANNOTATION.to_string(), triggertime::format(t));
        }
        None => {
            annotations.remove(triggertime::ANNOTATION);
        }
    }
    if truncated {
        annotations.insert(
            OVER_CAPACITY_ANNOTATION.to_string(),
            "truncated".to_string(),
        );
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    let api = Api::<Endpoints>::namespaced(ctx.client.clone(), &ns);
    let creating = current.is_none();
    let result = if creating {
        api.create(&PostParams::default(), &ep).await
    } else {
        api.replace(&name, &PostParams::default(), &ep).await
    };
    match result {
        Ok(_) => {
            tracing::debug!(service = %key(svc), created = creating, "endpoints written");
            ctx.tracker.commit(observed);
            Ok(())
        }
        // The namespace is terminating: every create will fail, and that is fine.
        Err(e) if creating && api_code(&e) == Some(403) => Ok(()),
        Err(e) => {
            let (reason, note) = if creating {
                (
                    "FailedToCreateEndpoint",
                    format!(
                        "Failed to create endpoint for service {ns}/{name}: {}",
                        crate::error::api_message(&e)
                    ),
                )
            } else {
                (
                    "FailedToUpdateEndpoint",
                    format!(
                        "Failed to update endpoint {ns}/{name}: {}",
                        crate::error::api_message(&e)
                    ),
                )
            };
            // A conflict only means the cache was behind; the retry settles it.
            if api_code(&e) != Some(409) {
                ctx.events.record(
                    ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Endpoints".into()),
                        namespace: Some(ns.clone()),
                        name: Some(name.clone()),
                        uid: ep.metadata.uid.clone(),
                        ..Default::default()
                    },
                    Kind::Warning,
                    reason,
                    "Sync",
                    note,
                );
            }
            Err(Error::Workload {
                action: if creating {
                    "create endpoints"
                } else {
                    "update endpoints"
                },
                object: format!("{ns}/{name}"),
                source: Box::new(e),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).expect("svc")
    }

    fn pod(name: &str, ip: &str, ready: bool, extra: serde_json::Value) -> Pod {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "n", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                o.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn ready_and_not_ready_pods_split_and_named_ports_resolve() {
        let s = svc(
            json!({"metadata": {"name": "web", "namespace": "n", "labels": {"tier": "fe"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}),
        );
        let a = pod("a", "10.0.0.1", true, json!({}));
        let b = pod("b", "10.0.0.2", false, json!({}));
        // c has no port named "http": it is left out.
        let c = pod(
            "c",
            "10.0.0.3",
            true,
            json!({"spec": {"containers": [{"name": "c"}]}}),
        );
        let terminating = pod(
            "d",
            "10.0.0.4",
            true,
            json!({"metadata": {"name": "d", "namespace": "n",
            "labels": {"app": "web"}, "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        );
        let subsets = desired_subsets(&s, [&a, &b, &c, &terminating]);
        let v = serde_json::to_value(&subsets).expect("json");
        assert_eq!(
            v,
            json!([{
                "addresses": [{"ip": "10.0.0.1", "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "namespace": "n", "name": "a", "uid": "uid-a"}}],
                "notReadyAddresses": [{"ip": "10.0.0.2", "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "namespace": "n", "name": "b", "uid": "uid-b"}}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
            }])
        );
        assert_eq!(
            desired_labels(&s),
            BTreeMap::from([("tier".to_string(), "fe".to_string())])
        );
    }

    #[test]
    fn publish_not_ready_addresses_lists_everything_as_ready() {
        let s = svc(json!({"metadata": {"name": "db", "namespace": "n"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "None", "publishNotReadyAddresses": true}}));
        let b = pod("b", "10.0.0.2", false, json!({}));
        let terminating = pod(
            "d",
            "10.0.0.4",
            false,
            json!({"metadata": {"name": "d", "namespace": "n",
            "labels": {"app": "web"}, "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
        );
        let subsets = desired_subsets(&s, [&b, &terminating]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(2));
        assert!(subsets[0].not_ready_addresses.is_none());
        assert!(subsets[0].ports.is_none(), "headless without ports");
        assert_eq!(
            desired_labels(&s).get(HEADLESS_LABEL).map(String::as_str),
            Some("")
        );
    }
}
