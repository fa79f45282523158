//! The EndpointSlice controller: `discovery.k8s.io/v1` EndpointSlices for every Service with
//! a selector — at most `--max-endpoints-per-slice` endpoints each, one slice per distinct
//! port list, owned by the Service (so the garbage collector removes them with it) and
//! labelled `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`.
//!
//! ```text
//!  Service watch ─► store ──────────────────────────────┐
//!  pod watch ─► store, and pod → Services it matches(ed) ┤
//!  node watch ─► store (zones)                          ┤
//!  our EndpointSlice watch ─► the Service of each change ┤
//!                                                        ▼
//!  reconcile(svc): selector? ─► desired endpoints from the matching pods (conditions
//!     ready/serving/terminating, node, zone, hostname) ─► list the Service's slices
//!     (a consistent read) ─► reconciler::plan ─► create / update / delete
//! ```
//!
//! Unlike the Endpoints object, slices keep terminating pods (`terminating: true`,
//! `ready: false`) so that consumers can drain them.

pub mod reconciler;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use crate::controllers::ENDPOINTSLICE;
use crate::endpoints::membership::{self, HEADLESS_LABEL};
use crate::endpoints::triggers;
use crate::endpoints::triggertime::{self, Tracker};
use crate::error::{Error, Result, api_code, api_message};
use crate::workload::events::{Events, Kind};
use crate::workload::pods;
use crate::workload::runner::{Retry, Runner, key};
use reconciler::{Desired, Plan, SliceMeta};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`] (Kubernetes' controller's).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// The node label an endpoint's zone comes from.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The component name Kubernetes' EndpointSlice controller records events under.
pub const EVENT_SOURCE: &str = "endpoint-slice-controller";
/// Kubernetes' default and maximum for `--max-endpoints-per-slice`.
pub const DEFAULT_MAX_ENDPOINTS: usize = 100;
pub const MAX_MAX_ENDPOINTS: usize = 1000;

/// The EndpointSlice controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Services synced at once (`--concurrent-service-endpoint-syncs`).
    pub concurrency: u16,
    /// Most endpoints per slice (`--max-endpoints-per-slice`, 1–1000).
    pub max_endpoints_per_slice: usize,
}

/// What every sync shares.
pub struct Ctx {
    pub client: Client,
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    max: usize,
    tracker: Tracker,
    events: Events,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    tracing::info!(
        controller = ENDPOINTSLICE,
        max_endpoints_per_slice = config.max_endpoints_per_slice,
        "starting controller"
    );
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let (node_store, node_writer) = reflector::store::<Node>();
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(pod_writer);
    let pod_triggers = triggers::from_pod_events(pod_events, services);
    // The node store only feeds zones; driving it through the controller keeps it alive.
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(node_writer)
        .filter_map(|_| future::ready(None::<ObjectRef<Service>>));
    let slices = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(|r| {
        future::ready(r.ok().and_then(|s: EndpointSlice| {
            let ns = s.namespace()?;
            let svc = s.labels().get(SERVICE_NAME_LABEL)?.clone();
            Some(ObjectRef::<Service>::new(&svc).within(&ns))
        }))
    });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods: pod_store,
        nodes: node_store,
        max: config.max_endpoints_per_slice.clamp(1, MAX_MAX_ENDPOINTS),
        tracker: Tracker::default(),
        events: Events::start(client, EVENT_SOURCE),
    });
    let controller = controller
        .reconcile_on(pod_triggers)
        .reconcile_on(nodes)
        .reconcile_on(slices);
    // Its slices are owned by it: the garbage collector removes them.
    let gone = |ctx: Arc<Ctx>, svc: ObjectRef<DynamicObject>| {
        ctx.tracker
            .forget(svc.namespace.as_deref().unwrap_or_default(), &svc.name);
        future::ready(())
    };
    Runner::new(
        ENDPOINTSLICE,
        config.concurrency,
        Retry::default_rate_limiter(),
    )
    .on_gone(gone)
    .run(controller, reconcile, ctx, shutdown)
    .await;
}

/// Syncs the EndpointSlices of one Service.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    if ctx.pods.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    sync(&svc, &ctx).await?;
    Ok(Action::await_change())
}

/// The labels of a Service's slices: the Service's own (minus the reserved keys), the
/// headless marker, the Service name and the manager.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let reserved = [SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL];
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| !reserved.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !membership::has_cluster_ip(svc) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.to_string(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());
    labels
}

/// The endpoint and port list of one pod for `svc` (Kubernetes' `podToEndpoint` and
/// `getEndpointPorts`): `None` when the pod has no address in the Service's family.
pub fn pod_endpoint(
    svc: &Service,
    pod: &Pod,
    family: membership::Family,
    zone: Option<String>,
) -> Option<(Vec<EndpointPort>, Endpoint)> {
    let ip = membership::pod_ip(pod, family)?;
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let serving = publish_not_ready || pods::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // Never "ready" while terminating, unless not-ready addresses are published anyway.
    let ready = publish_not_ready || (serving && !terminating);
    let pod_spec = pod.spec.as_ref();
    let endpoint = Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: membership::should_set_hostname(pod, svc)
            .then(|| pod_spec.and_then(|s| s.hostname.clone()))
            .flatten(),
        node_name: pod_spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        zone,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .filter_map(|sp| {
            let number = membership::find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect();
    Some((ports, endpoint))
}

fn zone_of(nodes: &Store<Node>, pod: &Pod) -> Option<String> {
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    nodes
        .get(&ObjectRef::new(node))?
        .labels()
        .get(ZONE_LABEL)
        .cloned()
}

fn owner_ref(svc: &Service) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: Service::api_version(&()).into_owned(),
        kind: Service::kind(&()).into_owned(),
        name: svc.name_any(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

async fn sync(svc: &Service, ctx: &Ctx) -> Result<()> {
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
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

    let mut desired = Desired::default();
    let mut family = None;
    for pod in &matching {
        if !membership::should_be_in_endpoints(pod, true) {
            continue;
        }
        let f = *family.get_or_insert_with(|| membership::service_family(svc, pod));
        if let Some((ports, ep)) = pod_endpoint(svc, pod, f, zone_of(&ctx.nodes, pod)) {
            desired.add(ports, ep);
        }
    }
    let family = family.unwrap_or_else(|| {
        let no_pod = Pod::default();
        membership::service_family(svc, &no_pod)
    });

    let api = Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&format!(
        "{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
    ));
    let existing: Vec<EndpointSlice> = api
        .list(&lp)
        .await
        .map_err(|e| Error::Workload {
            action: "list endpointslices of",
            object: format!("service {ns}/{name}"),
            source: Box::new(e),
        })?
        .items
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    let meta = SliceMeta {
        namespace: ns.clone(),
        generate_name: format!("{name}-"),
        labels: slice_labels(svc),
        owner: owner_ref(svc),
        address_type: family.address_type().to_string(),
        max: ctx.max,
    };
    let plan = reconciler::plan(existing, desired, &meta);
    if !plan.is_empty() {
        apply(&api, svc, plan, trigger, ctx).await?;
    }
    ctx.tracker.commit(observed);
    Ok(())
}

fn stamp(slice: &mut EndpointSlice, trigger: Option<k8s_openapi::jiff::Timestamp>) {
    let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => {
            annotations.insert(triggertime::ANNOTATION.to_string(), triggertime::format(t));
        }
        None => {
            annotations.remove(triggertime::ANNOTATION);
        }
    }
    if annotations.is_empty() {
        slice.metadata.annotations = None;
    }
}

async fn apply(
    api: &Api<EndpointSlice>,
    svc: &Service,
    plan: Plan,
    trigger: Option<k8s_openapi::jiff::Timestamp>,
    ctx: &Ctx,
) -> Result<()> {
    let k = key(svc);
    tracing::debug!(service = %k, create = plan.create.len(), update = plan.update.len(), delete = plan.delete.len(), "writing endpointslices");
    let mut errors = Vec::new();
    for mut slice in plan.create {
        stamp(&mut slice, trigger);
        match api.create(&PostParams::default(), &slice).await {
            Ok(_) => {}
            // The namespace is terminating.
            Err(e) if api_code(&e) == Some(403) => return Ok(()),
            Err(e) => errors.push(format!(
                "failed to create EndpointSlice for Service {k}: {}",
                api_message(&e)
            )),
        }
    }
    for mut slice in plan.update {
        stamp(&mut slice, trigger);
        let slice_name = slice.name_any();
        if let Err(e) = api
            .replace(&slice_name, &PostParams::default(), &slice)
            .await
        {
            errors.push(format!(
                "failed to update {slice_name} EndpointSlice for Service {k}: {}",
                api_message(&e)
            ));
        }
    }
    for slice in plan.delete {
        let slice_name = slice.name_any();
        match api.delete(&slice_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => errors.push(format!(
                "failed to delete {slice_name} EndpointSlice for Service {k}: {}",
                api_message(&e)
            )),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    ctx.events.record(
        svc.object_ref(&()),
        Kind::Warning,
        "FailedToUpdateEndpointSlices",
        "Sync",
        format!(
            "Error updating Endpoint Slices for Service {k}: {}",
            errors.join("; ")
        ),
    );
    Err(Error::WorkloadErrors { errors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminating_pods_stay_as_serving_but_not_ready() {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "n", "uid": "s"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.1",
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                          {"name": "admin", "port": 81, "targetPort": "admin", "protocol": "TCP"}]}}))
        .expect("svc");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "n", "uid": "pa", "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .expect("pod");
        let (ports, ep) =
            pod_endpoint(&svc, &pod, membership::Family::V4, Some("z1".into())).expect("endpoint");
        // "admin" does not resolve on this pod: only "http".
        assert_eq!(
            serde_json::to_value(&ports).expect("json"),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            serde_json::to_value(&ep).expect("json"),
            json!({"addresses": ["10.0.0.1"],
                "conditions": {"ready": false, "serving": true, "terminating": true},
                "nodeName": "node-1", "zone": "z1",
                "targetRef": {"kind": "Pod", "namespace": "n", "name": "a", "uid": "pa"}})
        );
        let labels = slice_labels(&svc);
        assert_eq!(
            labels.get(SERVICE_NAME_LABEL).map(String::as_str),
            Some("web")
        );
        assert_eq!(
            labels.get(MANAGED_BY_LABEL).map(String::as_str),
            Some(MANAGED_BY)
        );
        assert!(!labels.contains_key(HEADLESS_LABEL));
    }
}
