//! The Node authorizer and NodeRestriction admission against a real apiserver: a kubelet
//! identity (`system:node:<name>` in `system:nodes`) reads only what the pods bound to it
//! reference, writes only its own Node, Lease and pods' status, and gets Kubernetes' 403s
//! otherwise.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, ServiceAccount};
use k8s_openapi::serde::de::DeserializeOwned;
use kadm_e2e::TestCluster;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// How long a deletion may take to reach the authorizer's graph (it follows the watch cache).
const PROPAGATION: Duration = Duration::from_secs(10);
const NS: &str = "apps";

fn object<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

/// The API error of a call that must fail.
fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(e)) => *e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pod(name: &str, node: &str, secret: &str) -> Pod {
    object(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox",
                            "envFrom": [{"secretRef": {"name": secret}}]}],
        },
    }))
}

async fn setup(admin: &kube::Client) -> anyhow::Result<()> {
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": NS}})),
        )
        .await?;
    // Pods name the default service account; no controller-manager runs here to make it.
    Api::<ServiceAccount>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "default"}})),
        )
        .await?;
    let secrets = Api::<Secret>::namespaced(admin.clone(), NS);
    for s in ["s1", "s2", "s3"] {
        secrets
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": s}, "data": {"k": "dg=="}})),
            )
            .await?;
    }
    let nodes = Api::<Node>::all(admin.clone());
    for n in ["n1", "n2"] {
        nodes
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": n}})),
            )
            .await?;
    }
    Ok(())
}

fn no_relationship(secret: &str) -> String {
    format!(
        r#"secrets "{secret}" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "{NS}": no relationship found between node 'n1' and this object"#
    )
}

#[tokio::test]
async fn a_kubelet_reads_only_the_secrets_of_pods_bound_to_it() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    setup(&admin).await?;
    let pods = Api::<Pod>::namespaced(admin.clone(), NS);
    pods.create(&PostParams::default(), &pod("p1", "n1", "s1"))
        .await?;
    pods.create(&PostParams::default(), &pod("p2", "n2", "s2"))
        .await?;

    let n1 = cluster
        .kube_client_for("system:node:n1", Some("system:nodes"))
        .await?;
    let n1_secrets = Api::<Secret>::namespaced(n1.clone(), NS);
    // Right after the pod was created: the graph catches up before it denies.
    let s1 = n1_secrets.get("s1").await?;
    assert_eq!(s1.metadata.name.as_deref(), Some("s1"));
    for other in ["s2", "s3"] {
        let e = api_error(n1_secrets.get(other).await);
        assert_eq!(e.code, 403);
        assert_eq!(e.message, no_relationship(other));
    }
    // Listing every secret is refused; a reflector's single-object list is not.
    let e = api_error(n1_secrets.list(&ListParams::default()).await);
    assert_eq!(
        e.message,
        format!(
            r#"secrets is forbidden: User "system:node:n1" cannot list resource "secrets" in API group "" in the namespace "{NS}": No Object name found"#
        )
    );
    let one = n1_secrets
        .list(&ListParams::default().fields("metadata.name=s1"))
        .await?;
    assert_eq!(one.items.len(), 1);

    // Pods: its own, and the list of pods bound to it.
    let n1_pods = Api::<Pod>::namespaced(n1.clone(), NS);
    n1_pods.get("p1").await?;
    let e = api_error(n1_pods.get("p2").await);
    assert_eq!(e.code, 403);
    let mine = Api::<Pod>::all(n1.clone())
        .list(&ListParams::default().fields("spec.nodeName=n1"))
        .await?;
    let names: Vec<_> = mine
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["p1".to_string()]);
    let e = api_error(
        Api::<Pod>::all(n1.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "system:node:n1" cannot list resource "pods" in API group "" at the cluster scope: can only list/watch pods with spec.nodeName field selector"#
    );

    // The pod goes away: so does the access.
    pods.delete("p1", &DeleteParams::default().grace_period(0))
        .await?;
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        match n1_secrets.get("s1").await {
            Err(kube::Error::Api(e)) if e.code == 403 => {
                assert_eq!(e.message, no_relationship("s1"));
                break;
            }
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "n1 still reads s1 after its pod was deleted: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The same pod again, bound to the other node: n2 reads s1, n1 still does not.
    pods.create(&PostParams::default(), &pod("p1", "n2", "s1"))
        .await?;
    let n2 = cluster
        .kube_client_for("system:node:n2", Some("system:nodes"))
        .await?;
    Api::<Secret>::namespaced(n2, NS).get("s1").await?;
    assert_eq!(
        api_error(n1_secrets.get("s1").await).message,
        no_relationship("s1")
    );
    Ok(())
}

#[tokio::test]
async fn a_kubelet_writes_only_its_own_node_lease_and_pod_status() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    setup(&admin).await?;
    Api::<Pod>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &pod("p2", "n2", "s2"))
        .await?;
    let n1 = cluster
        .kube_client_for("system:node:n1", Some("system:nodes"))
        .await?;

    // Node objects.
    let nodes = Api::<Node>::all(n1.clone());
    nodes.get("n1").await?;
    let label = Patch::Merge(json!({"metadata": {"labels": {"example.com/rack": "r1"}}}));
    nodes.patch("n1", &PatchParams::default(), &label).await?;
    let e = api_error(nodes.patch("n2", &PatchParams::default(), &label).await);
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#
    );
    let e = api_error(
        nodes
            .patch(
                "n1",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "gpu"}}}),
                ),
            )
            .await,
    );
    assert_eq!(
        e.message,
        r#"nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pool"#
    );
    let e = api_error(nodes.get("n2").await);
    assert_eq!(
        e.message,
        r#"nodes "n2" is forbidden: User "system:node:n1" cannot get resource "nodes" in API group "" at the cluster scope: node 'n1' cannot read 'n2', only its own Node object"#
    );

    // Pod status of another node's pod.
    let status = Patch::Merge(json!({"status": {"phase": "Running"}}));
    let e = api_error(
        Api::<Pod>::namespaced(n1.clone(), NS)
            .patch_status("p2", &PatchParams::default(), &status)
            .await,
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        r#"pods "p2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
    );

    // Leases in kube-node-lease: its own, not another node's.
    let lease = |name: &str| -> Lease {
        object(
            json!({"metadata": {"name": name, "namespace": "kube-node-lease"},
                      "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}}),
        )
    };
    Api::<Lease>::namespaced(admin.clone(), "kube-node-lease")
        .create(&PostParams::default(), &lease("n2"))
        .await?;
    let leases = Api::<Lease>::namespaced(n1.clone(), "kube-node-lease");
    leases.create(&PostParams::default(), &lease("n1")).await?;
    let renew = Patch::Merge(json!({"spec": {"renewTime": "2025-01-01T00:00:00.000000Z"}}));
    leases.patch("n1", &PatchParams::default(), &renew).await?;
    let e = api_error(leases.patch("n2", &PatchParams::default(), &renew).await);
    assert_eq!(
        e.message,
        r#"leases.coordination.k8s.io "n2" is forbidden: User "system:node:n1" cannot patch resource "leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": can only access node lease with the same name as the requesting node"#
    );
    let e = api_error(leases.create(&PostParams::default(), &lease("n3")).await);
    assert_eq!(
        e.message,
        r#"leases.coordination.k8s.io "n3" is forbidden: can only access node lease with the same name as the requesting node"#
    );
    Ok(())
}
