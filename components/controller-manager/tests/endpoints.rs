//! The endpoints and EndpointSlice controllers against real etcd and the real
//! kadm-apiserver: one pod runs on a hollow node (Running and Ready by its kubelet), two are
//! never scheduled and get their status from the test, so readiness can be flipped at will.
//! Named target ports resolve per pod; a pod without the named port is left out of that
//! port; readiness moves addresses between `notReadyAddresses` and `addresses` (and the
//! slice condition); a deleted pod leaves; a deleted Service takes its Endpoints and (via
//! the garbage collector) its slices along.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::wait_for;
use common::workload::{self, Started, hollow};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kadm_e2e::hollow::HollowSpec;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "ep";
const WAIT: Duration = Duration::from_secs(60);

/// Per pod (target name): (ready?, sorted "name=port" list) as the Endpoints object says.
fn endpoints_view(ep: &Endpoints) -> BTreeMap<String, (bool, Vec<String>)> {
    let mut out: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    for s in ep.subsets.iter().flatten() {
        let ports: Vec<String> = s
            .ports
            .iter()
            .flatten()
            .map(|p| format!("{}={}", p.name.clone().unwrap_or_default(), p.port))
            .collect();
        for (ready, list) in [(true, &s.addresses), (false, &s.not_ready_addresses)] {
            for a in list.iter().flatten() {
                let name = a
                    .target_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default();
                let e = out.entry(name).or_insert((ready, Vec::new()));
                e.0 = ready;
                e.1.extend(ports.iter().cloned());
                e.1.sort();
            }
        }
    }
    out
}

/// Per pod: (ready, serving, terminating, nodeName, zone, sorted ports) over all slices.
type SliceView = BTreeMap<
    String,
    (
        bool,
        bool,
        bool,
        Option<String>,
        Option<String>,
        Vec<String>,
    ),
>;

fn slices_view(slices: &[EndpointSlice]) -> SliceView {
    let mut out = SliceView::new();
    for s in slices {
        let mut ports: Vec<String> = s
            .ports
            .iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}={}",
                    p.name.clone().unwrap_or_default(),
                    p.port.unwrap_or(0)
                )
            })
            .collect();
        ports.sort();
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let name = e
                .target_ref
                .as_ref()
                .and_then(|r| r.name.clone())
                .unwrap_or_default();
            out.insert(
                name,
                (
                    c.ready == Some(true),
                    c.serving == Some(true),
                    c.terminating == Some(true),
                    e.node_name.clone(),
                    e.zone.clone(),
                    ports.clone(),
                ),
            );
        }
    }
    out
}

async fn slices(api: &Api<EndpointSlice>) -> Vec<EndpointSlice> {
    api.list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Writes a kubelet-like status for an unscheduled pod.
async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    let status = if ready { "True" } else { "False" };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}})),
    )
    .await?;
    Ok(())
}

async fn start() -> anyhow::Result<Started> {
    workload::start(
        &["--controllers", "endpoint,endpointslice,garbagecollector"],
        NS,
        HollowSpec {
            zones: 1,
            ..hollow("epnode", 1)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_pod_readiness_ports_and_deletion() -> anyhow::Result<()> {
    let (_cluster, client, _cm, _nodes) = start().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NS);
    let slices_api: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);

    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "web", "labels": {"tier": "fe"}},
                "spec": {"selector": {"app": "web"}, "ports": [
                    {"name": "http", "port": 80, "targetPort": "http"},
                    {"name": "metrics", "port": 9090, "targetPort": 9090}]}}),
            )?,
        )
        .await?;
    // A Service without a selector is left alone.
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "external"},
                "spec": {"ports": [{"port": 5432}]}}))?,
        )
        .await?;
    let pod = |name: &str, node: Option<&str>, port: Option<i32>| {
        let ports = port.map_or(json!([]), |p| json!([{"name": "http", "containerPort": p}]));
        let mut spec = json!({"containers": [{"name": "c", "image": "nginx:1", "ports": ports}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        serde_json::from_value::<Pod>(
            json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}),
        )
    };
    pods.create(
        &PostParams::default(),
        &pod("bound", Some("epnode-0"), Some(8080))?,
    )
    .await?;
    pods.create(&PostParams::default(), &pod("manual", None, Some(8081))?)
        .await?;
    pods.create(&PostParams::default(), &pod("noport", None, None)?)
        .await?;
    // Not selected at all.
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "other", "labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "pg:1"}]}}),
        )?,
    )
    .await?;
    set_status(&pods, "manual", "10.99.0.2", false).await?;
    set_status(&pods, "noport", "10.99.0.3", true).await?;
    set_status(&pods, "other", "10.99.0.4", true).await?;

    let expect_ep = |bound_ready: bool, manual_ready: bool| {
        let mut m = BTreeMap::new();
        m.insert(
            "bound".to_string(),
            (
                bound_ready,
                vec!["http=8080".to_string(), "metrics=9090".to_string()],
            ),
        );
        m.insert(
            "manual".to_string(),
            (
                manual_ready,
                vec!["http=8081".to_string(), "metrics=9090".to_string()],
            ),
        );
        m.insert(
            "noport".to_string(),
            (true, vec!["metrics=9090".to_string()]),
        );
        m
    };
    let ep = wait_for("endpoints with all three pods", WAIT, || async {
        let ep = endpoints.get_opt("web").await.ok()??;
        (endpoints_view(&ep) == expect_ep(true, false)).then_some(ep)
    })
    .await;
    assert_eq!(ep.labels().get("tier").map(String::as_str), Some("fe"));
    assert!(
        ep.annotations()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time"),
        "{:?}",
        ep.annotations()
    );
    let bound_addr = ep
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.target_ref.as_ref().and_then(|r| r.name.as_deref()) == Some("bound"))
        .cloned()
        .expect("bound address");
    assert_eq!(bound_addr.node_name.as_deref(), Some("epnode-0"));

    // The slices say the same, with conditions, node and zone.
    let view = wait_for("slices with all three pods", WAIT, || async {
        let v = slices_view(&slices(&slices_api).await);
        (v.len() == 3 && v.get("manual").is_some_and(|m| !m.0)).then_some(v)
    })
    .await;
    assert_eq!(
        view["bound"],
        (
            true,
            true,
            false,
            Some("epnode-0".into()),
            Some("zone-0".into()),
            vec!["http=8080".into(), "metrics=9090".into()]
        )
    );
    assert_eq!(view["noport"].5, vec!["metrics=9090".to_string()]);
    for s in slices(&slices_api).await {
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(
            s.labels()
                .get("endpointslice.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("endpointslice-controller.k8s.io")
        );
        assert_eq!(s.labels().get("tier").map(String::as_str), Some("fe"));
        let owner = &s.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Service", "web", Some(true))
        );
        assert!(s.name_any().starts_with("web-"), "{}", s.name_any());
    }
    // One slice per distinct port list: http resolves to 8080 and 8081, and noport has
    // metrics only.
    assert_eq!(slices(&slices_api).await.len(), 3);

    // Readiness: manual becomes ready.
    set_status(&pods, "manual", "10.99.0.2", true).await?;
    wait_for("manual ready in endpoints", WAIT, || async {
        let ep = endpoints.get_opt("web").await.ok()??;
        (endpoints_view(&ep) == expect_ep(true, true)).then_some(())
    })
    .await;
    wait_for("manual ready in slices", WAIT, || async {
        let v = slices_view(&slices(&slices_api).await);
        v.get("manual").is_some_and(|m| m.0 && m.1).then_some(())
    })
    .await;

    // Deletion: the hollow kubelet finishes the graceful deletion, the pod leaves.
    pods.delete("bound", &DeleteParams::default()).await?;
    wait_for("bound gone from endpoints", WAIT, || async {
        let ep = endpoints.get_opt("web").await.ok()??;
        let v = endpoints_view(&ep);
        (v.len() == 2 && !v.contains_key("bound")).then_some(())
    })
    .await;
    wait_for("bound gone from slices", WAIT, || async {
        let v = slices_view(&slices(&slices_api).await);
        (v.len() == 2 && !v.contains_key("bound")).then_some(())
    })
    .await;

    // Deleted Endpoints come back.
    endpoints.delete("web", &DeleteParams::default()).await?;
    wait_for("endpoints recreated", WAIT, || async {
        let ep = endpoints.get_opt("web").await.ok()??;
        (endpoints_view(&ep).len() == 2).then_some(())
    })
    .await;

    // Nothing was written for the Service without a selector.
    assert!(endpoints.get_opt("external").await?.is_none());

    // The Service goes: its Endpoints and slices follow.
    services.delete("web", &DeleteParams::default()).await?;
    wait_for("endpoints deleted with the service", WAIT, || async {
        matches!(endpoints.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
    wait_for("slices deleted with the service", WAIT, || async {
        slices(&slices_api).await.is_empty().then_some(())
    })
    .await;
    Ok(())
}
