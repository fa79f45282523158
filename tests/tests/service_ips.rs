//! Service cluster IPs and node ports allocated by kadm-apiserver, and the
//! `default/kubernetes` Service it keeps, checked through kubectl and kube-rs.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kadm_e2e::TestCluster;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const KUBECTL: Option<&str> = Some("1.33");

fn in_range(ip: &str) -> bool {
    // TestCluster keeps the default range, 10.96.0.0/12.
    let ip: Ipv4Addr = ip.parse().expect("an IPv4 cluster IP");
    let v = u32::from(ip);
    let base = u32::from(Ipv4Addr::new(10, 96, 0, 0));
    v > base + 1 && v < base + (1 << 20) - 1
}

async fn kubectl_out(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.kubectl_ok(KUBECTL, args).await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn svc(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name}, "spec": spec}))
    .expect("service")
}

async fn cluster_ip(api: &Api<Service>, name: &str) -> anyhow::Result<String> {
    let s = api.get(name).await?;
    Ok(s.spec.and_then(|s| s.cluster_ip).unwrap_or_default())
}

#[tokio::test]
async fn services_get_distinct_cluster_ips_and_node_ports_in_range() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let api: Api<Service> = Api::namespaced(cluster.kube_client().await?, "default");

    kubectl_out(
        &cluster,
        &["create", "service", "clusterip", "x", "--tcp=80"],
    )
    .await?;
    let ip = kubectl_out(
        &cluster,
        &["get", "svc", "x", "-o", "jsonpath={.spec.clusterIP}"],
    )
    .await?;
    assert!(in_range(&ip), "x got {ip:?}");
    let fields = kubectl_out(
        &cluster,
        &[
            "get",
            "svc",
            "x",
            "-o",
            "jsonpath={.spec.clusterIPs} {.spec.ipFamilies} {.spec.ipFamilyPolicy}",
        ],
    )
    .await?;
    assert_eq!(fields, format!("[\"{ip}\"] [\"IPv4\"] SingleStack"));

    // Concurrent creates never share an address.
    let creates = (0..20).map(|i| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &svc(&format!("c{i}"), json!({"ports": [{"port": 80}]})),
            )
            .await
        }
    });
    let mut seen = HashSet::from([ip.clone()]);
    for created in futures::future::join_all(creates).await {
        let ip = created?.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
        assert!(in_range(&ip), "{ip}");
        assert!(seen.insert(ip.clone()), "{ip} handed out twice");
    }

    // A requested address already held, and one outside the range: 422.
    let out = cluster
        .kubectl(
            KUBECTL,
            &[
                "create",
                "service",
                "clusterip",
                "dup",
                "--tcp=80",
                &format!("--clusterip={ip}"),
            ],
        )
        .await?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "spec.clusterIPs: Invalid value: [\"{ip}\"]: failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{err}"
    );
    let out = cluster
        .kubectl(
            KUBECTL,
            &[
                "create",
                "service",
                "clusterip",
                "far",
                "--tcp=80",
                "--clusterip=10.0.0.1",
            ],
        )
        .await?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.clusterIPs: Invalid value: [\"10.0.0.1\"]: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
        "{err}"
    );
    let e = api
        .create(
            &PostParams::default(),
            &svc(
                "far2",
                json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .expect_err("out of range");
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 422), "{e}");

    // The cluster IP cannot be changed.
    let out = cluster
        .kubectl(
            KUBECTL,
            &[
                "patch",
                "svc",
                "x",
                "-p",
                "{\"spec\":{\"clusterIP\":\"10.96.0.77\",\"clusterIPs\":[\"10.96.0.77\"]}}",
            ],
        )
        .await?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("may not change once set"), "{err}");

    // Deleting frees the address: a new Service may ask for it.
    kubectl_out(&cluster, &["delete", "svc", "x"]).await?;
    kubectl_out(
        &cluster,
        &[
            "create",
            "service",
            "clusterip",
            "again",
            "--tcp=80",
            &format!("--clusterip={ip}"),
        ],
    )
    .await?;
    assert_eq!(cluster_ip(&api, "again").await?, ip);

    // Headless and ExternalName Services get none.
    kubectl_out(
        &cluster,
        &[
            "create",
            "service",
            "clusterip",
            "headless",
            "--clusterip=None",
        ],
    )
    .await?;
    assert_eq!(cluster_ip(&api, "headless").await?, "None");
    kubectl_out(
        &cluster,
        &[
            "create",
            "service",
            "externalname",
            "ext",
            "--external-name=a.example.com",
        ],
    )
    .await?;
    assert_eq!(cluster_ip(&api, "ext").await?, "");

    // Node ports: allocated in range, a held one refused.
    kubectl_out(
        &cluster,
        &["create", "service", "nodeport", "np", "--tcp=80"],
    )
    .await?;
    let port: i64 = kubectl_out(
        &cluster,
        &[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    )
    .await?
    .parse()?;
    assert!((30000..=32767).contains(&port), "{port}");
    let out = cluster
        .kubectl(
            KUBECTL,
            &[
                "create",
                "service",
                "nodeport",
                "np2",
                "--tcp=80",
                &format!("--node-port={port}"),
            ],
        )
        .await?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )),
        "{err}"
    );
    kubectl_out(&cluster, &["delete", "svc", "np"]).await?;
    kubectl_out(
        &cluster,
        &[
            "create",
            "service",
            "nodeport",
            "np3",
            "--tcp=80",
            &format!("--node-port={port}"),
        ],
    )
    .await?;

    // Server-side apply creates with an address and keeps it on a second apply.
    let manifest = cluster.dir().join("ssa.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: ssa\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n",
    )?;
    let path = manifest.to_string_lossy().to_string();
    kubectl_out(&cluster, &["apply", "--server-side", "-f", &path]).await?;
    let first = api.get("ssa").await?.spec.unwrap_or_default();
    assert!(
        in_range(first.cluster_ip.as_deref().unwrap_or("")),
        "{first:?}"
    );
    kubectl_out(&cluster, &["apply", "--server-side", "-f", &path]).await?;
    let second = api.get("ssa").await?.spec.unwrap_or_default();
    assert_eq!(first.cluster_ip, second.cluster_ip);
    assert_eq!(first.ports, second.ports, "node port kept");

    // A changed Service keeps what it was given when a replace leaves it out.
    let mut current = api.get("again").await?;
    if let Some(spec) = current.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
    }
    let replaced = api
        .replace("again", &PostParams::default(), &current)
        .await?;
    assert_eq!(replaced.spec.and_then(|s| s.cluster_ip), Some(ip));
    Ok(())
}

#[tokio::test]
async fn kubernetes_service_and_allocations_survive_an_apiserver_restart() -> anyhow::Result<()> {
    let mut cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let addr = cluster.apiserver_addr();

    let out = kubectl_out(&cluster, &["get", "svc", "kubernetes"]).await?;
    assert!(
        out.contains("10.96.0.1 ") && out.contains("443/TCP"),
        "{out}"
    );
    let eps = kubectl_out(&cluster, &["get", "endpoints", "kubernetes"]).await?;
    assert!(
        eps.contains(&format!("{}:{}", addr.ip(), addr.port())),
        "{eps}"
    );
    let k = services.get("kubernetes").await?;
    let labels = k.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("component").map(String::as_str),
        Some("apiserver")
    );
    assert_eq!(
        labels.get("provider").map(String::as_str),
        Some("kubernetes")
    );
    let slice = slices.get("kubernetes").await?;
    assert_eq!(
        slice
            .metadata
            .labels
            .unwrap_or_default()
            .get("kubernetes.io/service-name")
            .map(String::as_str),
        Some("kubernetes")
    );
    assert_eq!(slice.endpoints[0].addresses, vec![addr.ip().to_string()]);

    // The reconciler brings a deleted kubernetes Service back, with the same address.
    services
        .delete("kubernetes", &DeleteParams::default())
        .await?;
    endpoints
        .delete("kubernetes", &DeleteParams::default())
        .await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let (Ok(s), Ok(_)) = (
            services.get("kubernetes").await,
            endpoints.get("kubernetes").await,
        ) {
            assert_eq!(
                s.spec.and_then(|s| s.cluster_ip).as_deref(),
                Some("10.96.0.1")
            );
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "kubernetes service not recreated"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    let mut before = HashSet::new();
    for i in 0..5 {
        let s = services
            .create(
                &PostParams::default(),
                &svc(&format!("r{i}"), json!({"ports": [{"port": 80}]})),
            )
            .await?;
        before.insert(s.spec.and_then(|s| s.cluster_ip).unwrap_or_default());
    }
    // Break the records behind the apiserver's back: a leaked address whose Service
    // never existed, and a Service whose record is gone. The repair at start fixes both.
    let leaked = "10.96.5.5";
    let held = before.iter().next().cloned().unwrap_or_default();
    let put = cluster
        .etcdctl(&["put", &format!("/registry/kadm/serviceips/{leaked}"), "{}"])
        .await?;
    anyhow::ensure!(put.status.success(), "etcdctl put: {put:?}");
    let del = cluster
        .etcdctl(&["del", &format!("/registry/kadm/serviceips/{held}")])
        .await?;
    anyhow::ensure!(del.status.success(), "etcdctl del: {del:?}");
    cluster.restart_apiserver().await?;
    let client = cluster.kube_client().await?;
    let services: Api<Service> = Api::namespaced(client, "default");
    for i in 0..20 {
        let s = services
            .create(
                &PostParams::default(),
                &svc(&format!("after{i}"), json!({"ports": [{"port": 80}]})),
            )
            .await?;
        let ip = s.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
        assert!(
            !before.contains(&ip),
            "{ip} handed out again after the restart"
        );
        assert_ne!(ip, "10.96.0.1");
    }
    let reused = services
        .create(
            &PostParams::default(),
            &svc(
                "leaked",
                json!({"clusterIP": leaked, "ports": [{"port": 80}]}),
            ),
        )
        .await?;
    assert_eq!(
        reused.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some(leaked)
    );
    let e = services
        .create(
            &PostParams::default(),
            &svc(
                "stolen",
                json!({"clusterIP": held, "ports": [{"port": 80}]}),
            ),
        )
        .await
        .expect_err("the repair claimed the held address again");
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 422), "{e}");
    let e = services
        .create(
            &PostParams::default(),
            &svc(
                "first",
                json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .expect_err("the kubernetes service holds it");
    assert!(matches!(e, kube::Error::Api(ref s) if s.code == 422), "{e}");
    Ok(())
}
