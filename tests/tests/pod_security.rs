//! PodSecurity admission against a real apiserver, through kube-rs and kubectl: namespace
//! labels pick the level; `enforce` refuses pods with Kubernetes' message, `warn` admits them
//! with a `Warning` header kubectl prints, and workload templates are only warned about.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::serde::de::DeserializeOwned;
use kadm_e2e::TestCluster;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn object<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid object")
}

async fn namespace(admin: &kube::Client, name: &str, labels: Value) -> anyhow::Result<()> {
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": name, "labels": labels}})),
        )
        .await?;
    // Pods name the default service account; no controller-manager runs here to make it.
    Api::<ServiceAccount>::namespaced(admin.clone(), name)
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "default"}})),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn enforce_refuses_with_kubernetes_message_and_warn_admits_with_a_warning()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    namespace(
        &admin,
        "locked",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await?;
    namespace(
        &admin,
        "watched",
        json!({"pod-security.kubernetes.io/warn": "baseline"}),
    )
    .await?;

    let privileged: Pod = object(json!({
        "metadata": {"name": "priv"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]},
    }));
    let e = match Api::<Pod>::namespaced(admin.clone(), "locked")
        .create(&PostParams::default(), &privileged)
        .await
    {
        Err(kube::Error::Api(e)) => e,
        other => panic!("a privileged pod in a restricted namespace: {other:?}"),
    };
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        concat!(
            r#"pods "priv" is forbidden: violates PodSecurity "restricted:latest": "#,
            r#"privileged (container "c" must not set securityContext.privileged=true), "#,
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
            r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
            r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        )
    );

    // A compliant pod is admitted where the privileged one was not.
    let compliant: Pod = object(json!({
        "metadata": {"name": "ok"},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        },
    }));
    Api::<Pod>::namespaced(admin.clone(), "locked")
        .create(&PostParams::default(), &compliant)
        .await?;

    // warn=baseline: admitted, and kubectl prints the warning.
    let manifest = cluster.dir().join("host-network.yaml");
    std::fs::write(
        &manifest,
        serde_json::to_string(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "hostnet", "namespace": "watched"},
            "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]},
        }))?,
    )?;
    let manifest = manifest.display().to_string();
    let out = cluster
        .kubectl_ok(None, &["create", "-f", &manifest])
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"Warning: would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#
        ),
        "kubectl stderr: {stderr}"
    );
    Api::<Pod>::namespaced(admin.clone(), "watched")
        .get("hostnet")
        .await?;
    Ok(())
}

#[tokio::test]
async fn workloads_in_an_enforced_namespace_are_admitted_with_a_warning() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let admin = cluster.kube_client().await?;
    namespace(
        &admin,
        "locked",
        json!({"pod-security.kubernetes.io/enforce": "baseline"}),
    )
    .await?;
    let manifest = cluster.dir().join("deployment.yaml");
    std::fs::write(
        &manifest,
        serde_json::to_string(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "locked"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"hostPID": true, "containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }))?,
    )?;
    let manifest = manifest.display().to_string();
    let out = cluster
        .kubectl_ok(None, &["create", "-f", &manifest])
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Without a warn label, warn follows the enforce level.
    assert!(
        stderr.contains(
            r#"Warning: would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)"#
        ),
        "kubectl stderr: {stderr}"
    );
    Api::<Deployment>::namespaced(admin.clone(), "locked")
        .get("web")
        .await?;

    // Raising a namespace's level warns about the pods already there.
    namespace(&admin, "open", json!({})).await?;
    let host_pid: Pod = object(json!({
        "metadata": {"name": "legacy"},
        "spec": {"hostPID": true, "containers": [{"name": "c", "image": "busybox"}]},
    }));
    Api::<Pod>::namespaced(admin.clone(), "open")
        .create(&PostParams::default(), &host_pid)
        .await?;
    let out = cluster
        .kubectl_ok(
            None,
            &[
                "label",
                "namespace",
                "open",
                "pod-security.kubernetes.io/enforce=baseline",
            ],
        )
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"Warning: existing pods in namespace "open" violate the new PodSecurity enforce level "baseline:latest""#
        ) && stderr.contains("Warning: legacy: host namespaces"),
        "kubectl stderr: {stderr}"
    );

    // Invalid labels are refused.
    let e = match Api::<Namespace>::all(admin.clone())
        .patch(
            "open",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"pod-security.kubernetes.io/warn": "strict"}}}),
            ),
        )
        .await
    {
        Err(kube::Error::Api(e)) => e,
        other => panic!("an invalid level label: {other:?}"),
    };
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"Namespace "open" is invalid: metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "strict": must be one of privileged, baseline, restricted"#
    );
    Ok(())
}
