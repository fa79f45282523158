//! RBAC authorization against a real apiserver: users identified by client certificates
//! get exactly what their bindings grant, 403s read as Kubernetes' do, role and binding
//! writes cannot escalate, aggregated ClusterRoles follow their sources, and `kubectl auth
//! can-i` / `--as` work.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kadm_e2e::TestCluster;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

/// How long a new binding may take to reach the authorizer (it follows the watch cache).
const PROPAGATION: Duration = Duration::from_secs(10);

async fn create_namespace(admin: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

async fn bind(
    admin: &kube::Client,
    ns: &str,
    name: &str,
    cluster_role: &str,
    user: &str,
) -> anyhow::Result<()> {
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &rb)
        .await?;
    Ok(())
}

/// The API error of a call that must fail.
fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(e)) => *e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Retries `f` until it succeeds, for at most [`PROPAGATION`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + PROPAGATION;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn view_in_one_namespace_lists_pods_there_and_gets_kubernetes_403_elsewhere()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    create_namespace(&admin, "team-a").await?;
    create_namespace(&admin, "team-b").await?;
    bind(&admin, "team-a", "jane-view", "view", "jane").await?;
    let jane = cluster.kube_client_for("jane", None).await?;

    eventually("jane lists pods in team-a", || async {
        Ok(Api::<Pod>::namespaced(jane.clone(), "team-a")
            .list(&ListParams::default())
            .await?)
    })
    .await;

    let e = api_error(
        Api::<Pod>::namespaced(jane.clone(), "team-b")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "team-b""#
    );
    let e = api_error(
        Api::<Secret>::namespaced(jane.clone(), "team-a")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(
        e.message,
        r#"secrets is forbidden: User "jane" cannot list resource "secrets" in API group "" in the namespace "team-a""#
    );
    let e = api_error(
        Api::<Secret>::namespaced(jane.clone(), "team-a")
            .get("token")
            .await,
    );
    assert_eq!(
        e.message,
        r#"secrets "token" is forbidden: User "jane" cannot get resource "secrets" in API group "" in the namespace "team-a""#
    );
    let e = api_error(
        Api::<Node>::all(jane.clone())
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(
        e.message,
        r#"nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#
    );
    let e = api_error(
        Api::<Pod>::namespaced(jane.clone(), "team-a")
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
                )?,
            )
            .await,
    );
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "jane" cannot create resource "pods" in API group "" in the namespace "team-a""#
    );

    // Non-resource paths: discovery is granted to every authenticated user, /metrics not.
    let out = cluster
        .kubectl(
            None,
            &[
                "get",
                "--raw",
                "/metrics",
                "--as",
                "jane",
                "--as-group",
                "system:authenticated",
            ],
        )
        .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"forbidden: User \"jane\" cannot get path \"/metrics\""#)
            || stderr.contains(r#"forbidden: User "jane" cannot get path "/metrics""#),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn role_and_binding_writes_cannot_escalate() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    create_namespace(&admin, "team-a").await?;
    bind(&admin, "team-a", "jane-admin", "admin", "jane").await?;
    let jane = cluster.kube_client_for("jane", None).await?;
    let roles = Api::<Role>::namespaced(jane.clone(), "team-a");

    // A role with rules jane holds (through the aggregated admin role) is fine.
    let held: Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }))?;
    eventually("jane creates a role she holds", || async {
        Ok(roles.create(&PostParams::default(), &held).await?)
    })
    .await;

    let more: Role = serde_json::from_value(json!({
        "metadata": {"name": "node-reader", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
                  {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }))?;
    let e = api_error(roles.create(&PostParams::default(), &more).await);
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert!(
        e.message.starts_with(
            r#"roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "jane" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#
        ),
        "{}",
        e.message
    );
    assert!(
        e.message
            .ends_with(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}"#),
        "{}",
        e.message
    );

    // Binding a role she does not hold (and may not `bind`) is refused too.
    let rb: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "jane-root", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}],
    }))?;
    let bindings = Api::<RoleBinding>::namespaced(jane.clone(), "team-a");
    let e = api_error(bindings.create(&PostParams::default(), &rb).await);
    assert_eq!(e.code, 403);
    assert!(
        e.message.starts_with(
            r#"rolebindings.rbac.authorization.k8s.io "jane-root" is forbidden: user "jane""#
        ),
        "{}",
        e.message
    );
    // Binding what she holds is allowed.
    let ok: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "bob-view", "namespace": "team-a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
    }))?;
    bindings.create(&PostParams::default(), &ok).await?;

    // With `escalate` granted, the same role is accepted.
    let escalate: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "role-escalator"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}],
    }))?;
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &escalate)
        .await?;
    bind(&admin, "team-a", "jane-escalate", "role-escalator", "jane").await?;
    eventually("jane escalates once allowed to", || async {
        Ok(roles.create(&PostParams::default(), &more).await?)
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn aggregated_cluster_roles_follow_labelled_roles() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    let cluster_roles = Api::<ClusterRole>::all(admin.clone());
    // The defaults are aggregated at start: view gathers system:aggregate-to-view.
    let view = eventually("view is aggregated", || async {
        let v = cluster_roles.get("view").await?;
        anyhow::ensure!(
            v.rules.as_ref().is_some_and(|r| !r.is_empty()),
            "no rules yet"
        );
        Ok(v)
    })
    .await;
    assert!(
        serde_json::to_string(&view.rules)?.contains("\"pods\""),
        "{:?}",
        view.rules
    );
    let widgets: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list"]}],
    }))?;
    cluster_roles
        .create(&PostParams::default(), &widgets)
        .await?;
    for role in ["view", "edit", "admin"] {
        eventually(&format!("{role} gathers widgets"), || async {
            let r = cluster_roles.get(role).await?;
            anyhow::ensure!(
                serde_json::to_string(&r.rules)?.contains("widgets"),
                "not yet"
            );
            Ok(())
        })
        .await;
    }
    cluster_roles
        .delete("widgets-view", &Default::default())
        .await?;
    eventually("view drops widgets", || async {
        let r = cluster_roles.get("view").await?;
        anyhow::ensure!(
            !serde_json::to_string(&r.rules)?.contains("widgets"),
            "still there"
        );
        Ok(())
    })
    .await;
    Ok(())
}

#[tokio::test]
async fn kubectl_auth_can_i_whoami_and_impersonation() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    create_namespace(&admin, "team-a").await?;
    bind(&admin, "team-a", "jane-view", "view", "jane").await?;

    let can_i = |ns: &'static str, what: &'static str| {
        let cluster = &cluster;
        async move {
            let out = cluster
                .kubectl(
                    None,
                    &["auth", "can-i", "list", what, "-n", ns, "--as", "jane"],
                )
                .await?;
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
    };
    eventually("can-i list pods in team-a", || async {
        let answer = can_i("team-a", "pods").await?;
        anyhow::ensure!(answer == "yes", "answered {answer:?}");
        Ok(())
    })
    .await;
    assert_eq!(can_i("team-b", "pods").await?, "no");
    assert_eq!(can_i("team-a", "secrets").await?, "no");
    let out = cluster
        .kubectl_ok(None, &["auth", "can-i", "list", "pods", "-n", "team-a"])
        .await?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");

    let out = cluster
        .kubectl_ok(
            None,
            &["auth", "can-i", "--list", "-n", "team-a", "--as", "jane"],
        )
        .await?;
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("pods "), "{listing}");
    assert!(
        listing.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{listing}"
    );
    assert!(!listing.contains("secrets "), "{listing}");

    let out = cluster
        .kubectl_ok(
            None,
            &[
                "auth",
                "whoami",
                "-o",
                "json",
                "--as",
                "jane",
                "--as-group",
                "devs",
            ],
        )
        .await?;
    let who: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(who["status"]["userInfo"]["username"], "jane", "{who}");
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"]),
        "{who}"
    );

    // jane herself may not impersonate: Kubernetes' 403 names the impersonated user.
    let jane_conf = cluster.kubeconfig_for("jane", None)?;
    let jane_conf = jane_conf.to_string_lossy().to_string();
    let out = cluster
        .kubectl(
            None,
            &[
                "--kubeconfig",
                &jane_conf,
                "get",
                "pods",
                "-n",
                "team-a",
                "--as",
                "bob",
            ],
        )
        .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#
        ),
        "{stderr}"
    );
    // Her own kubeconfig works for what view grants.
    cluster
        .kubectl_ok(
            None,
            &["--kubeconfig", &jane_conf, "get", "pods", "-n", "team-a"],
        )
        .await?;
    Ok(())
}
