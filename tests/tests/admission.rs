//! The admission chain against real etcd, the real apiserver and (where Kubernetes relies
//! on a controller) the real controller-manager: ServiceAccount (default account, token
//! volume, missing account), LimitRanger (defaults, bounds), Priority (classes), ResourceQuota
//! (exact `exceeded quota` messages, no overshoot under concurrent creates, releases
//! recounted by the resourcequota controller) and NamespaceLifecycle.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ResourceQuota, ServiceAccount};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::serde::de::DeserializeOwned;
use kadm_e2e::TestCluster;
use kadm_e2e::cluster::Options;
use kadm_e2e::component::{Component, Kind, wait_for};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn object<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c1", "image": "busybox"}]);
    }
    object(json!({"metadata": {"name": name}, "spec": spec}))
}

/// The Status of a refused create.
async fn refused<K>(api: &Api<K>, obj: &K) -> kube::core::Status
where
    K: kube::Resource + Clone + DeserializeOwned + k8s_openapi::serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Err(kube::Error::Api(e)) => *e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": name}})),
        )
        .await?;
    Ok(())
}

/// kadm-controller-manager (built next to kadm-apiserver) running `controllers`; killed on
/// drop, its log printed if the test fails.
async fn controller_manager(cluster: &TestCluster, controllers: &str) -> anyhow::Result<Component> {
    let bin = kadm_e2e::cluster::apiserver_binary()?.with_file_name("kadm-controller-manager");
    ensure!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p kadm-controller-manager`)",
        bin.display()
    );
    // The fixture takes the binary's path for the whole test run.
    let binary: &'static str = Box::leak(bin.to_string_lossy().into_owned().into_boxed_str());
    let kind = Kind {
        binary,
        kubeconfig: kadm_bootstrap::kubeconfig::CONTROLLER_MANAGER_CONF,
        log_target: "kadm_controller_manager",
    };
    let mut cm = Component::start(
        kind,
        cluster,
        "controller-manager",
        &["--leader-elect=false", "--controllers", controllers],
    )?;
    cm.wait_healthy().await;
    Ok(cm)
}

async fn kubectl_json(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<Value> {
    let out = cluster.kubectl_ok(None, args).await?;
    serde_json::from_slice(&out.stdout).context("kubectl printed no json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_as_the_default_service_account_with_its_token_volume() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec!["--enable-admission-plugins=ServiceAccount".into()],
        ..Default::default()
    })
    .await?;
    let client = cluster.kube_client().await?;
    let _cm = controller_manager(&cluster, "serviceaccount,root-ca-cert-publisher").await?;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "default");
    wait_for("the default service account", WAIT, || async {
        accounts.get_opt("default").await.ok()?
    })
    .await;
    // The root CA publisher puts the cluster CA where the token volume projects it from.
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let ca = wait_for("kube-root-ca.crt", WAIT, || async {
        configmaps.get_opt("kube-root-ca.crt").await.ok()?
    })
    .await;
    let cluster_ca = std::fs::read_to_string(cluster.ca_cert_path())?;
    assert_eq!(
        ca.data.as_ref().and_then(|d| d.get("ca.crt")),
        Some(&cluster_ca)
    );

    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod(
            "web",
            json!({"initContainers": [{"name": "init", "image": "busybox"}],
                   "containers": [{"name": "c1", "image": "busybox"}]}),
        ),
    )
    .await?;
    let got = kubectl_json(&cluster, &["get", "pod", "web", "-o", "json"]).await?;
    let spec = &got["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    let volume = spec["volumes"]
        .as_array()
        .and_then(|v| {
            v.iter().find(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .cloned()
        .context("no kube-api-access volume")?;
    let name = volume["name"].as_str().unwrap_or_default().to_string();
    assert_eq!(name.len(), "kube-api-access-".len() + 5, "{name}");
    assert_eq!(
        volume["projected"],
        json!({"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]})
    );
    let mount = json!([{"name": name, "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    assert_eq!(spec["containers"][0]["volumeMounts"], mount);
    assert_eq!(spec["initContainers"][0]["volumeMounts"], mount);

    // Opting out: no volume, no mounts.
    pods.create(
        &PostParams::default(),
        &pod("quiet", json!({"automountServiceAccountToken": false})),
    )
    .await?;
    let quiet = pods.get("quiet").await?;
    let quiet_spec = quiet.spec.context("spec")?;
    assert!(quiet_spec.volumes.unwrap_or_default().is_empty());
    assert_eq!(quiet_spec.service_account_name.as_deref(), Some("default"));

    // A missing account: Kubernetes' 403.
    let e = refused(
        &pods,
        &pod("lost", json!({"serviceAccountName": "builder"})),
    )
    .await;
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        r#"pods "lost" is forbidden: error looking up service account default/builder: serviceaccount "builder" not found"#
    );
    let out = cluster
        .kubectl(
            None,
            &[
                "run",
                "lost2",
                "--image=busybox",
                "--overrides",
                r#"{"spec":{"serviceAccountName":"builder"}}"#,
            ],
        )
        .await?;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            r#"Error from server (Forbidden): pods "lost2" is forbidden: error looking up service account default/builder: serviceaccount "builder" not found"#
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn limit_ranges_default_resources_and_refuse_what_exceeds_them() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    create_namespace(&client, "limited").await?;
    let limits: k8s_openapi::api::core::v1::LimitRange = object(json!({
        "metadata": {"name": "lr"},
        "spec": {"limits": [{"type": "Container",
            "max": {"cpu": "1", "memory": "1Gi"},
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}}));
    Api::<k8s_openapi::api::core::v1::LimitRange>::namespaced(client.clone(), "limited")
        .create(&PostParams::default(), &limits)
        .await?;
    let listed = cluster
        .kubectl_ok(None, &["get", "limits", "-n", "limited"])
        .await?;
    assert!(
        String::from_utf8_lossy(&listed.stdout).starts_with("NAME   CREATED AT\nlr     "),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );

    let pods = Api::<Pod>::namespaced(client.clone(), "limited");
    pods.create(&PostParams::default(), &pod("plain", json!({})))
        .await?;
    let got = kubectl_json(
        &cluster,
        &["get", "pod", "plain", "-n", "limited", "-o", "json"],
    )
    .await?;
    assert_eq!(
        got["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"},
               "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        got["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c1; cpu, memory limit for container c1"
    );
    assert_eq!(got["status"]["qosClass"], "Burstable");

    let big = pod(
        "big",
        json!({"containers": [{"name": "c1", "image": "busybox",
            "resources": {"limits": {"cpu": "2"}}}]}),
    );
    let e = refused(&pods, &big).await;
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        r#"pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#
    );
    // NamespaceLifecycle: nothing is created in a namespace that does not exist.
    let e = refused(
        &Api::<Pod>::namespaced(client.clone(), "nowhere"),
        &pod("p", json!({})),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, r#"namespaces "nowhere" not found"#)
    );
    // ... or that is being deleted (no namespace controller runs here, so it stays so).
    create_namespace(&client, "leaving").await?;
    Api::<Namespace>::all(client.clone())
        .delete("leaving", &DeleteParams::default())
        .await?;
    let e = refused(
        &Api::<ConfigMap>::namespaced(client.clone(), "leaving"),
        &object(json!({"metadata": {"name": "late"}})),
    )
    .await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            403,
            r#"configmaps "late" is forbidden: unable to create new content in namespace leaving because it is being terminated"#
        )
    );
    assert_eq!(
        e.details.map(|d| d.causes[0].reason.clone()).as_deref(),
        Some("NamespaceTerminating")
    );
    Ok(())
}

#[tokio::test]
async fn priority_class_names_resolve_to_priorities() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let classes = Api::<PriorityClass>::all(client.clone());
    let critical = classes.get("system-node-critical").await?;
    assert_eq!(critical.value, 2_000_001_000);
    assert_eq!(
        classes.get("system-cluster-critical").await?.value,
        2_000_000_000
    );
    classes
        .create(
            &PostParams::default(),
            &object(
                json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}),
            ),
        )
        .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "default");
    let vip = pods
        .create(
            &PostParams::default(),
            &pod("vip", json!({"priorityClassName": "high"})),
        )
        .await?
        .spec
        .context("spec")?;
    assert_eq!(vip.priority, Some(1000));
    assert_eq!(vip.preemption_policy.as_deref(), Some("Never"));
    let plain = pods
        .create(&PostParams::default(), &pod("plain", json!({})))
        .await?
        .spec
        .context("spec")?;
    assert_eq!(plain.priority, Some(0));
    assert_eq!(
        plain.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    let node_critical = pods
        .create(
            &PostParams::default(),
            &pod(
                "agent",
                json!({"priorityClassName": "system-node-critical"}),
            ),
        )
        .await?;
    assert_eq!(
        node_critical.spec.and_then(|s| s.priority),
        Some(2_000_001_000)
    );

    let e = refused(&pods, &pod("lost", json!({"priorityClassName": "nope"}))).await;
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            403,
            r#"pods "lost" is forbidden: no PriorityClass with name nope was found"#
        )
    );
    let e = refused(
        &pods,
        &pod("cheat", json!({"priorityClassName": "high", "priority": 5})),
    )
    .await;
    assert_eq!(
        e.message,
        r#"pods "cheat" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"#
    );
    // A second global default is refused.
    classes
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "base"}, "value": 10, "globalDefault": true})),
        )
        .await?;
    let e = refused(
        &classes,
        &object(json!({"metadata": {"name": "base2"}, "value": 20, "globalDefault": true})),
    )
    .await;
    assert_eq!(
        e.message,
        r#"priorityclasses.scheduling.k8s.io "base2" is forbidden: PriorityClass base is already marked as default. Only one default can exist"#
    );
    // Admission reads the global default from the watch cache, as Kubernetes reads its
    // informer; a consistent list returns once the cache has caught up.
    classes.list(&Default::default()).await?;
    let defaulted = pods
        .create(&PostParams::default(), &pod("later", json!({})))
        .await?
        .spec
        .context("spec")?;
    assert_eq!(
        (defaulted.priority, defaulted.priority_class_name.as_deref()),
        (Some(10), Some("base"))
    );
    Ok(())
}

async fn quota_used(api: &Api<ResourceQuota>, name: &str, resource: &str) -> Option<String> {
    api.get(name)
        .await
        .ok()?
        .status?
        .used?
        .get(resource)
        .map(|q| q.0.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_exactly_and_never_overshoot() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let client = cluster.kube_client().await?;
    let _cm = controller_manager(&cluster, "resourcequota").await?;
    create_namespace(&client, "q").await?;
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), "q");
    quotas
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "q1"}, "spec": {"hard": {"pods": "2"}}})),
        )
        .await?;
    wait_for("q1's status", WAIT, || async {
        (quota_used(&quotas, "q1", "pods").await.as_deref() == Some("0")).then_some(())
    })
    .await;

    let pods = Api::<Pod>::namespaced(client.clone(), "q");
    for name in ["p1", "p2"] {
        pods.create(&PostParams::default(), &pod(name, json!({})))
            .await?;
    }
    let e = refused(&pods, &pod("p3", json!({}))).await;
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        r#"pods "p3" is forbidden: exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2"#
    );
    // A dry run is checked but never charged.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    pods.delete("p2", &DeleteParams::default()).await?;
    // The controller gives back what the deletion released.
    wait_for("the release of p2", WAIT, || async {
        (quota_used(&quotas, "q1", "pods").await.as_deref() == Some("1")).then_some(())
    })
    .await;
    pods.create(&dry, &pod("p3", json!({}))).await?;
    assert_eq!(
        quota_used(&quotas, "q1", "pods").await.as_deref(),
        Some("1")
    );
    pods.create(&PostParams::default(), &pod("p3", json!({})))
        .await?;
    let described = cluster
        .kubectl_ok(None, &["describe", "quota", "q1", "-n", "q"])
        .await?;
    let text = String::from_utf8_lossy(&described.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{text}"
    );

    // Ten creates at once against room for five: exactly five get in.
    create_namespace(&client, "burst").await?;
    let burst_quotas = Api::<ResourceQuota>::namespaced(client.clone(), "burst");
    burst_quotas
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "five"},
                "spec": {"hard": {"pods": "5", "requests.cpu": "10"}}})),
        )
        .await?;
    wait_for("five's status", WAIT, || async {
        (quota_used(&burst_quotas, "five", "pods").await.as_deref() == Some("0")).then_some(())
    })
    .await;
    let burst = Api::<Pod>::namespaced(client.clone(), "burst");
    let creates = (0..10).map(|i| {
        let api = burst.clone();
        async move {
            let p = pod(
                &format!("b{i}"),
                json!({"containers": [{"name": "c1", "image": "busybox",
                    "resources": {"requests": {"cpu": "100m"}}}]}),
            );
            api.create(&PostParams::default(), &p).await
        }
    });
    let results = futures::future::join_all(creates).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            match e {
                kube::Error::Api(s) => assert!(
                    s.code == 403
                        && s.message.contains(
                            "exceeded quota: five, requested: pods=1, used: pods=5, limited: pods=5"
                        ),
                    "{s:?}"
                ),
                other => panic!("unexpected error: {other}"),
            }
        }
    }
    assert_eq!(admitted, 5, "{results:?}");
    assert_eq!(burst.list(&Default::default()).await?.items.len(), 5);
    assert_eq!(
        quota_used(&burst_quotas, "five", "pods").await.as_deref(),
        Some("5")
    );
    assert_eq!(
        quota_used(&burst_quotas, "five", "requests.cpu")
            .await
            .as_deref(),
        Some("500m")
    );
    // A compute quota makes every container state what it tracks.
    let e = refused(&burst, &pod("bare", json!({}))).await;
    assert_eq!(
        e.message,
        r#"pods "bare" is forbidden: failed quota: five: must specify requests.cpu for: c1"#
    );
    assert!(Path::new(&cluster.ca_cert_path()).is_file());
    Ok(())
}
