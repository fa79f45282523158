//! Stock kubectl against kadm-apiserver: the read-only commands with every kubectl
//! on the machine, the write path and watch with the newest (1.33).

use std::process::Output;

use kadm_e2e::{TestCluster, WAIT, installed_kubectl_versions};

const NEWEST: Option<&str> = Some("1.33");

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs kubectl and insists it succeeded; returns stdout.
async fn ok(cluster: &TestCluster, version: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.kubectl_ok(version, args).await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every kubectl.1.* on the machine, then the version dispatcher.
fn all_kubectls() -> Vec<Option<String>> {
    let mut v: Vec<Option<String>> = installed_kubectl_versions().into_iter().map(Some).collect();
    assert!(
        v.iter().any(|k| k.as_deref() == NEWEST),
        "kubectl.1.33 is not installed: {v:?}"
    );
    if std::path::Path::new(kadm_e2e::kubectl::KUBECTL_DISPATCHER).exists() {
        v.push(None);
    }
    v
}

#[tokio::test]
async fn get_ns_lists_the_system_namespaces_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for k in all_kubectls() {
        let out = ok(&cluster, k.as_deref(), &["get", "ns"]).await?;
        let names: Vec<&str> = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(
                names.contains(&ns),
                "kubectl {k:?}: {ns} missing from\n{out}"
            );
        }
        assert!(
            out.lines().next().unwrap_or("").starts_with("NAME"),
            "kubectl {k:?}: no table header:\n{out}"
        );
        assert!(
            out.contains("Active"),
            "kubectl {k:?}: STATUS column missing:\n{out}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn version_shows_server_v1_33_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for k in all_kubectls() {
        let out = ok(&cluster, k.as_deref(), &["version"]).await?;
        let server = out
            .lines()
            .find(|l| l.starts_with("Server Version"))
            .unwrap_or_else(|| panic!("kubectl {k:?}: no server version in\n{out}"));
        assert!(server.contains("v1.33"), "kubectl {k:?}: {server}");
    }
    let out = ok(&cluster, NEWEST, &["version", "-o", "json"]).await?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["serverVersion"]["major"], "1");
    assert_eq!(v["serverVersion"]["minor"], "33");
    Ok(())
}

#[tokio::test]
async fn api_resources_lists_pods_and_deployments_with_short_names_with_every_kubectl()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for k in all_kubectls() {
        let out = ok(&cluster, k.as_deref(), &["api-resources"]).await?;
        let row = |name: &str| -> Vec<String> {
            out.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("kubectl {k:?}: no {name} row in\n{out}"))
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let pods = row("pods");
        assert_eq!(pods[1], "po", "kubectl {k:?}: {pods:?}");
        assert!(pods.contains(&"Pod".to_string()), "{pods:?}");
        let deployments = row("deployments");
        assert_eq!(deployments[1], "deploy", "kubectl {k:?}: {deployments:?}");
        assert!(
            deployments.contains(&"apps/v1".to_string()),
            "{deployments:?}"
        );
        assert!(
            deployments.contains(&"Deployment".to_string()),
            "{deployments:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn create_get_label_select_and_delete_a_configmap_with_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let out = ok(&cluster, NEWEST, &["create", "namespace", "x"]).await?;
    assert!(out.contains("namespace/x created"), "{out}");
    let out = ok(
        &cluster,
        NEWEST,
        &["create", "configmap", "c", "--from-literal=a=b", "-n", "x"],
    )
    .await?;
    assert!(out.contains("configmap/c created"), "{out}");

    let yaml = ok(
        &cluster,
        NEWEST,
        &["get", "cm", "c", "-n", "x", "-o", "yaml"],
    )
    .await?;
    assert!(yaml.contains("kind: ConfigMap"), "{yaml}");
    let data_a = yaml
        .lines()
        .skip_while(|l| !l.starts_with("data:"))
        .nth(1)
        .unwrap_or_default();
    assert_eq!(data_a.trim(), "a: b", "{yaml}");
    assert!(yaml.contains("namespace: x"), "{yaml}");
    assert!(yaml.contains("resourceVersion:"), "{yaml}");

    // kubectl >= 1.32 sends typed creates as protobuf: a secret too.
    let out = ok(
        &cluster,
        NEWEST,
        &[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=k=v",
            "-n",
            "x",
        ],
    )
    .await?;
    assert!(out.contains("secret/s created"), "{out}");
    let data = ok(
        &cluster,
        NEWEST,
        &[
            "get",
            "secret",
            "s",
            "-n",
            "x",
            "-o",
            "jsonpath={.type} {.data.k}",
        ],
    )
    .await?;
    assert_eq!(data, "Opaque dg==");

    let out = ok(&cluster, NEWEST, &["label", "cm", "c", "a=b", "-n", "x"]).await?;
    assert!(out.contains("configmap/c labeled"), "{out}");
    let selected = ok(&cluster, NEWEST, &["get", "cm", "-l", "a=b", "-n", "x"]).await?;
    assert!(selected.lines().any(|l| l.starts_with("c ")), "{selected}");
    let all_ns = ok(&cluster, NEWEST, &["get", "cm", "-l", "a=b", "-A"]).await?;
    assert!(
        all_ns
            .lines()
            .any(|l| l.starts_with("x ") && l.contains(" c ")),
        "{all_ns}"
    );
    let none = cluster
        .kubectl(NEWEST, &["get", "cm", "-l", "a=other", "-n", "x"])
        .await?;
    assert!(none.status.success());
    assert!(stdout(&none).trim().is_empty(), "{}", stdout(&none));
    assert!(
        stderr(&none).contains("No resources found in x namespace"),
        "{}",
        stderr(&none)
    );

    let out = ok(&cluster, NEWEST, &["delete", "cm", "c", "-n", "x"]).await?;
    assert!(out.contains("configmap \"c\" deleted"), "{out}");
    let gone = cluster
        .kubectl(NEWEST, &["get", "cm", "c", "-n", "x"])
        .await?;
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));
    Ok(())
}

#[tokio::test]
async fn get_in_a_missing_namespace_fails_with_not_found() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let out = cluster
        .kubectl(NEWEST, &["get", "cm", "c", "-n", "missing"])
        .await?;
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    // kubectl >= 1.31 looks the namespace up after a NotFound and names it instead.
    assert!(
        err.contains("Error from server (NotFound): configmaps \"c\" not found")
            || err.contains("Error from server (NotFound): namespaces \"missing\" not found"),
        "{err}"
    );
    // The apiserver's own answer for the object is a NotFound about the configmap.
    let raw = cluster
        .raw()?
        .get("/api/v1/namespaces/missing/configmaps/c")
        .await?;
    assert_eq!(raw.status, 404);
    assert_eq!(raw.json()?["message"], "configmaps \"c\" not found");

    Ok(())
}

#[tokio::test]
async fn get_all_namespaces_watch_prints_a_configmap_created_afterwards() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    ok(
        &cluster,
        NEWEST,
        &["create", "configmap", "before", "-n", "default"],
    )
    .await?;
    let mut watch = cluster.kubectl_background(
        NEWEST,
        &["get", "configmaps", "-A", "-w", "--request-timeout=60s"],
    )?;
    // The initial list is printed first; once it is, the watch is under way.
    watch
        .wait_for_line("the listed configmap", WAIT, |l| l.contains("before"))
        .await?;
    ok(
        &cluster,
        NEWEST,
        &[
            "create",
            "configmap",
            "after",
            "--from-literal=k=v",
            "-n",
            "kube-system",
        ],
    )
    .await?;
    let line = watch
        .wait_for_line("the configmap created after the watch began", WAIT, |l| {
            l.contains("after")
        })
        .await?;
    assert!(line.starts_with("kube-system"), "{line}");
    assert!(
        line.split_whitespace().nth(2) == Some("1"),
        "DATA column: {line}"
    );
    watch.stop().await;
    Ok(())
}
