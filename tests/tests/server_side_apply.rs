//! Server-side apply and managed fields from stock kubectl and on the wire:
//! `kubectl apply --server-side` creating and re-applying, a second field manager running
//! into a conflict and taking the field over with `--force-conflicts`, the move from a
//! client-side apply, `--show-managed-fields`, the `Update` entries of other writes, and
//! the Status answers of `application/apply-patch+yaml` requests.

use std::process::Output;

use http::Method;
use kadm_e2e::{TestCluster, installed_kubectl_versions};
use serde_json::{Value, json};

const NEWEST: Option<&str> = Some("1.33");
const APPLY: &str = "application/apply-patch+yaml";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs kubectl and insists it succeeded; returns stdout.
async fn ok(cluster: &TestCluster, version: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.kubectl_ok(version, args).await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs kubectl and insists it failed; returns stderr.
async fn fails(
    cluster: &TestCluster,
    version: Option<&str>,
    args: &[&str],
) -> anyhow::Result<String> {
    let out: Output = cluster.kubectl(version, args).await?;
    anyhow::ensure!(
        !out.status.success(),
        "kubectl.{} {} succeeded but should have failed:\nstdout: {}",
        version.unwrap_or("dispatcher"),
        args.join(" "),
        text(&out.stdout)
    );
    Ok(text(&out.stderr))
}

async fn get(cluster: &TestCluster, path: &str) -> anyhow::Result<Value> {
    let r = cluster.raw()?.get(path).await?;
    anyhow::ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.text());
    r.json()
}

fn write(cluster: &TestCluster, file: &str, text: &str) -> anyhow::Result<String> {
    let path = cluster.dir().join(file);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

fn manifest(name: &str, replicas: u32, image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
"#
    )
}

/// Just the replicas, as a second manager applies them.
fn replicas_only(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n"
    )
}

fn entries(obj: &Value) -> Vec<Value> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn entry(obj: &Value, manager: &str, operation: &str) -> Value {
    entries(obj)
        .into_iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| {
            panic!(
                "no {operation} entry for {manager}: {:#}",
                obj["metadata"]["managedFields"]
            )
        })
}

fn owns(e: &Value, pointer: &str) -> bool {
    e["fieldsV1"].pointer(pointer).is_some()
}

/// The fields kubectl's apply of [`manifest`] owns, in Kubernetes' fieldsV1 form.
fn applied_fields(name: &str) -> Value {
    let _ = name;
    json!({
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {"f:containerPort": {}, ".": {}}},
                    ".": {}
                }}}
            }
        }
    })
}

/// Create, re-apply, conflict, force — with one kubectl.
async fn apply_conflict_force(cluster: &TestCluster, kubectl: &str) -> anyhow::Result<()> {
    let name = format!("ssa-{}", kubectl.replace('.', "-"));
    let v = Some(kubectl);
    let path = format!("{DEPLOYS}/{name}");
    let m1 = write(
        cluster,
        &format!("{name}-1.yaml"),
        &manifest(&name, 2, "nginx:1"),
    )?;
    let out = ok(cluster, v, &["apply", "--server-side", "-f", &m1]).await?;
    assert!(
        out.contains("serverside-applied"),
        "kubectl {kubectl}: {out}"
    );
    let d = get(cluster, &path).await?;
    assert_eq!(d["spec"]["replicas"], 2, "kubectl {kubectl}: {d:#}");
    assert_eq!(
        d["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults still apply"
    );
    let ctx = format!("kubectl {kubectl}: {:#}", d["metadata"]["managedFields"]);
    let list = entries(&d);
    assert_eq!(list.len(), 1, "{ctx}");
    let e = &list[0];
    assert_eq!(e["manager"], "kubectl", "{ctx}");
    assert_eq!(e["operation"], "Apply", "{ctx}");
    assert_eq!(e["apiVersion"], "apps/v1", "{ctx}");
    assert_eq!(e["fieldsType"], "FieldsV1", "{ctx}");
    assert!(
        e["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{ctx}"
    );
    assert!(e.get("subresource").is_none(), "{ctx}");
    assert_eq!(e["fieldsV1"], applied_fields(&name), "{ctx}");

    // Re-apply with changed replicas and image: no conflict with itself.
    let m2 = write(
        cluster,
        &format!("{name}-2.yaml"),
        &manifest(&name, 3, "nginx:2"),
    )?;
    let out = ok(cluster, v, &["apply", "--server-side", "-f", &m2]).await?;
    assert!(
        out.contains("serverside-applied"),
        "kubectl {kubectl}: {out}"
    );
    let d = get(cluster, &path).await?;
    assert_eq!(d["spec"]["replicas"], 3, "kubectl {kubectl}");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2",
        "kubectl {kubectl}"
    );

    // A second manager wants other replicas: conflict naming the field and the owner.
    let other = write(
        cluster,
        &format!("{name}-other.yaml"),
        &replicas_only(&name, 5),
    )?;
    let err = fails(
        cluster,
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &other,
        ],
    )
    .await?;
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "kubectl {kubectl}: {err}"
    );
    assert!(
        err.contains("--force-conflicts"),
        "kubectl {kubectl}: {err}"
    );
    assert_eq!(get(cluster, &path).await?["spec"]["replicas"], 3);

    // The same value is no conflict: shared ownership.
    let same = write(
        cluster,
        &format!("{name}-same.yaml"),
        &replicas_only(&name, 3),
    )?;
    ok(
        cluster,
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=sharer",
            "-f",
            &same,
        ],
    )
    .await?;
    let d = get(cluster, &path).await?;
    assert!(owns(&entry(&d, "sharer", "Apply"), "/f:spec/f:replicas"));
    assert!(owns(&entry(&d, "kubectl", "Apply"), "/f:spec/f:replicas"));

    // --force-conflicts takes it over from both.
    let out = ok(
        cluster,
        v,
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &other,
        ],
    )
    .await?;
    assert!(
        out.contains("serverside-applied"),
        "kubectl {kubectl}: {out}"
    );
    let d = get(cluster, &path).await?;
    assert_eq!(d["spec"]["replicas"], 5, "kubectl {kubectl}");
    let theirs = entry(&d, "other", "Apply");
    assert_eq!(theirs["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let mine = entry(&d, "kubectl", "Apply");
    assert!(!owns(&mine, "/f:spec/f:replicas"), "{mine:#}");
    assert!(owns(&mine, "/f:spec/f:selector"), "{mine:#}");
    assert!(
        entries(&d).iter().all(|e| e["manager"] != "sharer"),
        "sharer owned nothing else: {:#}",
        d["metadata"]["managedFields"]
    );
    // And kubectl applying replicas again now conflicts with "other".
    let err = fails(cluster, v, &["apply", "--server-side", "-f", &m2]).await?;
    assert!(
        err.contains(r#"conflict with "other": .spec.replicas"#),
        "kubectl {kubectl}: {err}"
    );
    Ok(())
}

#[tokio::test]
async fn apply_conflict_and_force_with_kubectl_1_33() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    apply_conflict_force(&cluster, "1.33").await
}

#[tokio::test]
async fn apply_conflict_and_force_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let versions = installed_kubectl_versions();
    assert!(
        versions.iter().any(|v| Some(v.as_str()) == NEWEST),
        "kubectl.1.33 is not installed: {versions:?}"
    );
    for k in versions {
        apply_conflict_force(&cluster, &k).await?;
    }
    Ok(())
}

#[tokio::test]
async fn show_managed_fields_prints_kubernetes_shaped_entries() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let m = write(&cluster, "web.yaml", &manifest("web", 2, "nginx:1"))?;
    ok(&cluster, NEWEST, &["apply", "--server-side", "-f", &m]).await?;
    ok(
        &cluster,
        NEWEST,
        &["label", "deployment", "web", "tier=frontend"],
    )
    .await?;
    let shown = ok(
        &cluster,
        NEWEST,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ],
    )
    .await?;
    let apply_entry = r#"  - apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          f:app: {}
      f:spec:
        f:replicas: {}
        f:selector: {}
        f:template:
          f:metadata:
            f:labels:
              f:app: {}
          f:spec:
            f:containers:
              k:{"name":"web"}:
                .: {}
                f:image: {}
                f:name: {}
                f:ports:
                  k:{"containerPort":80,"protocol":"TCP"}:
                    .: {}
                    f:containerPort: {}
    manager: kubectl
    operation: Apply
    time: "#;
    assert!(shown.contains("  managedFields:\n"), "{shown}");
    assert!(shown.contains(apply_entry), "{shown}");
    let label_entry = r#"  - apiVersion: apps/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata:
        f:labels:
          f:tier: {}
    manager: kubectl-label
    operation: Update
    time: "#;
    assert!(shown.contains(label_entry), "{shown}");
    // Without the flag kubectl hides them.
    let hidden = ok(
        &cluster,
        NEWEST,
        &["get", "deployment", "web", "-o", "yaml"],
    )
    .await?;
    assert!(!hidden.contains("managedFields"), "{hidden}");
    Ok(())
}

#[tokio::test]
async fn server_side_apply_after_client_side_apply() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let path = format!("{DEPLOYS}/moved");
    let m1 = write(&cluster, "moved-1.yaml", &manifest("moved", 2, "nginx:1"))?;
    let out = ok(&cluster, NEWEST, &["apply", "-f", &m1]).await?;
    assert!(out.contains("created"), "{out}");
    let d = get(&cluster, &path).await?;
    let csa = entry(&d, "kubectl-client-side-apply", "Update");
    assert!(owns(&csa, "/f:spec/f:replicas"), "{csa:#}");
    assert!(
        owns(
            &csa,
            "/f:metadata/f:annotations/f:kubectl.kubernetes.io~1last-applied-configuration"
        ),
        "{csa:#}"
    );
    // The server-side apply changes a field the client-side apply set: no conflict for
    // kubectl, which migrates the client-side entry into its own.
    let m2 = write(&cluster, "moved-2.yaml", &manifest("moved", 4, "nginx:1"))?;
    let out = ok(&cluster, NEWEST, &["apply", "--server-side", "-f", &m2]).await?;
    assert!(out.contains("serverside-applied"), "{out}");
    let d = get(&cluster, &path).await?;
    let ctx = format!("{:#}", d["metadata"]["managedFields"]);
    assert_eq!(d["spec"]["replicas"], 4);
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("annotation kept");
    let last: Value = serde_json::from_str(last)?;
    assert_eq!(last["spec"]["replicas"], 4, "kept current by the server");
    let mine = entry(&d, "kubectl", "Apply");
    assert!(owns(&mine, "/f:spec/f:replicas"), "{ctx}");
    assert!(
        entries(&d)
            .iter()
            .all(|e| e["manager"] != "kubectl-client-side-apply"),
        "{ctx}"
    );
    // A third manager still conflicts with kubectl.
    let other = write(&cluster, "moved-other.yaml", &replicas_only("moved", 1))?;
    let err = fails(
        &cluster,
        NEWEST,
        &["apply", "--server-side", "--field-manager=x", "-f", &other],
    )
    .await?;
    assert!(
        err.contains(r#"conflict with "kubectl": .spec.replicas"#),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn other_writes_record_update_entries() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    ok(
        &cluster,
        NEWEST,
        &["create", "deployment", "made", "--image=nginx:1"],
    )
    .await?;
    let d = get(&cluster, &format!("{DEPLOYS}/made")).await?;
    let created = entry(&d, "kubectl-create", "Update");
    assert_eq!(created["apiVersion"], "apps/v1");
    // Defaults are the creator's, as in Kubernetes; rollingUpdate and labels are new
    // pointers/maps ("."), spec and template are not.
    for p in [
        "/f:spec/f:replicas",
        "/f:spec/f:selector",
        "/f:spec/f:strategy/f:rollingUpdate/.",
        "/f:metadata/f:labels/.",
        "/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"nginx\"}/f:image",
    ] {
        assert!(owns(&created, p), "{p}: {created:#}");
    }
    assert!(!owns(&created, "/f:spec/."), "{created:#}");
    assert!(!owns(&created, "/f:status"), "{created:#}");
    ok(
        &cluster,
        NEWEST,
        &["scale", "deployment", "made", "--replicas=3"],
    )
    .await?;
    let d = get(&cluster, &format!("{DEPLOYS}/made")).await?;
    let scaled = entries(&d)
        .into_iter()
        .find(|e| e["subresource"] == "scale")
        .unwrap_or_else(|| panic!("no scale entry: {:#}", d["metadata"]["managedFields"]));
    assert_eq!(scaled["operation"], "Update");
    assert_eq!(scaled["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(!owns(
        &entry(&d, "kubectl-create", "Update"),
        "/f:spec/f:replicas"
    ));
    // A write that changes nothing changes no entry (nor the resourceVersion).
    let rv = d["metadata"]["resourceVersion"].clone();
    ok(
        &cluster,
        NEWEST,
        &["label", "deployment", "made", "app=made", "--overwrite"],
    )
    .await?;
    let again = get(&cluster, &format!("{DEPLOYS}/made")).await?;
    assert_eq!(again["metadata"]["resourceVersion"], rv);
    Ok(())
}

#[tokio::test]
async fn apply_on_the_wire() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let path = "/api/v1/namespaces/default/configmaps/wire";
    let body =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wire"},"data":{"a":"1"}}"#;

    // No fieldManager: Kubernetes' 422 on the PatchOptions.
    let r = raw
        .request(Method::PATCH, path, Some(APPLY), body.to_string())
        .await?;
    assert_eq!(r.status, 422, "{}", r.text());
    let s = r.json()?;
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(
        s["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    assert_eq!(s["details"]["causes"][0]["field"], "fieldManager");

    // dryRun=All creates nothing.
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=a&dryRun=All"),
            Some(APPLY),
            body.to_string(),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(raw.get(path).await?.status, 404);

    // YAML creates (201), with the manager's entry.
    let yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wire\ndata:\n  a: \"1\"\n  b: \"2\"\n";
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=a"),
            Some(APPLY),
            yaml.to_string(),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let cm = r.json()?;
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(
        entry(&cm, "a", "Apply")["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );

    // Manager b changes a: 409 with Kubernetes' Status.
    let b = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wire"},"data":{"a":"9"}}"#;
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=b"),
            Some(APPLY),
            b.to_string(),
        )
        .await?;
    assert_eq!(r.status, 409, "{}", r.text());
    let s = r.json()?;
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(
        s["message"],
        "Apply failed with 1 conflict: conflict with \"a\": .data.a"
    );
    assert_eq!(
        s["details"]["causes"],
        json!([{"reason": "FieldManagerConflict", "message": "conflict with \"a\"", "field": ".data.a"}])
    );
    // force=true moves it.
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=b&force=true"),
            Some(APPLY),
            b.to_string(),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let cm = r.json()?;
    assert_eq!(cm["data"]["a"], "9");
    assert_eq!(
        entry(&cm, "a", "Apply")["fieldsV1"],
        json!({"f:data": {"f:b": {}}})
    );

    // a stops applying b: removed, as nobody else owns it.
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=a"),
            Some(APPLY),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wire"}}"#.to_string(),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let cm = r.json()?;
    assert_eq!(cm["data"], json!({"a": "9"}), "{cm:#}");
    assert!(entries(&cm).iter().all(|e| e["manager"] != "a"), "{cm:#}");

    // The wrong kind, managedFields in the body, an undeclared field, force on a merge patch.
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=a"),
            Some(APPLY),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wire"}}"#.to_string(),
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()?["message"],
        "invalid object type: /v1, Kind=Secret"
    );
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=a"),
            Some(APPLY),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wire","managedFields":[]}}"#
                .to_string(),
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()?["message"], "metadata.managedFields must be nil");
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?fieldManager=a"),
            Some(APPLY),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wire"},"datum":{}}"#
                .to_string(),
        )
        .await?;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json()?["message"],
        "failed to create typed patch object (/wire; /v1, Kind=ConfigMap): .datum: field not declared in schema"
    );
    let r = raw
        .request(
            Method::PATCH,
            &format!("{path}?force=true"),
            Some("application/merge-patch+json"),
            r#"{"data":{"c":"3"}}"#.to_string(),
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()?["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
    Ok(())
}

#[tokio::test]
async fn status_apply_owns_status_through_the_subresource() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let m = write(&cluster, "st.yaml", &manifest("st", 1, "nginx:1"))?;
    ok(&cluster, NEWEST, &["apply", "--server-side", "-f", &m]).await?;
    let raw = cluster.raw()?;
    let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"st"},
        "spec":{"replicas":7},"status":{"observedGeneration":1,"replicas":1}}"#;
    let r = raw
        .request(
            Method::PATCH,
            &format!("{DEPLOYS}/st/status?fieldManager=ctrl"),
            Some(APPLY),
            body.to_string(),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let d = get(&cluster, &format!("{DEPLOYS}/st")).await?;
    assert_eq!(d["status"]["replicas"], 1);
    assert_eq!(d["spec"]["replicas"], 1, "status apply leaves spec");
    let e = entry(&d, "ctrl", "Apply");
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {"f:observedGeneration": {}, "f:replicas": {}}})
    );
    // Applying status through the main resource is ignored, and owns nothing there.
    let r = raw
        .request(
            Method::PATCH,
            &format!("{DEPLOYS}/st?fieldManager=someone"),
            Some(APPLY),
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"st"},"status":{"replicas":5}}"#
                .to_string(),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json()?;
    assert_eq!(d["status"]["replicas"], 1);
    assert!(
        entries(&d)
            .iter()
            .all(|e| !owns(e, "/f:status") || e["manager"] == "ctrl"),
        "{:#}",
        d["metadata"]["managedFields"]
    );

    // An apply of the Scale owns the parent's replicas through the scale subresource; the
    // parent's owner of `.spec.replicas` is the Scale's owner too, so it takes force.
    let scale = r#"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"st"},"spec":{"replicas":4}}"#;
    let r = raw
        .request(
            Method::PATCH,
            &format!("{DEPLOYS}/st/scale?fieldManager=hpa"),
            Some(APPLY),
            scale.to_string(),
        )
        .await?;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.json()?["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    let r = raw
        .request(
            Method::PATCH,
            &format!("{DEPLOYS}/st/scale?fieldManager=hpa&force=true"),
            Some(APPLY),
            scale.to_string(),
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()?["spec"]["replicas"], 4);
    let d = get(&cluster, &format!("{DEPLOYS}/st")).await?;
    let hpa = entry(&d, "hpa", "Apply");
    assert_eq!(hpa["subresource"], "scale");
    assert_eq!(hpa["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert!(!owns(&entry(&d, "kubectl", "Apply"), "/f:spec/f:replicas"));
    let r = raw
        .request(
            Method::PATCH,
            &format!("{DEPLOYS}/st?fieldManager=ci"),
            Some(APPLY),
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"st"},"spec":{"replicas":2}}"#
                .to_string(),
        )
        .await?;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.json()?["message"],
        "Apply failed with 1 conflict: conflict with \"hpa\" with subresource \"scale\": .spec.replicas"
    );
    Ok(())
}
