//! Strategic merge patches from stock kubectl and on the wire: client-side `kubectl apply`
//! re-applying a changed manifest (with every kubectl on the machine), `label`, `annotate`,
//! `patch --type strategic`, `set image`, `scale`, `rollout restart`, and the directives
//! and error answers of `application/strategic-merge-patch+json`.

use http::Method;
use kadm_e2e::{TestCluster, installed_kubectl_versions};
use serde_json::{Value, json};

const NEWEST: Option<&str> = Some("1.33");
const SMP: &str = "application/strategic-merge-patch+json";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs kubectl and insists it succeeded; returns stdout.
async fn ok(cluster: &TestCluster, version: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let out = cluster.kubectl_ok(version, args).await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The stored object, as a GET returns it.
async fn get(cluster: &TestCluster, path: &str) -> anyhow::Result<Value> {
    let r = cluster.raw()?.get(path).await?;
    anyhow::ensure!(r.status == 200, "GET {path}: {} {}", r.status, r.text());
    r.json()
}

async fn deployment(cluster: &TestCluster, name: &str) -> anyhow::Result<Value> {
    get(cluster, &format!("{DEPLOYS}/{name}")).await
}

fn containers(d: &Value) -> &Vec<Value> {
    d.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no containers in {d}"))
}

fn container<'a>(d: &'a Value, name: &str) -> &'a Value {
    containers(d)
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {d}"))
}

fn names(items: &Value, key: &str) -> Vec<Value> {
    items
        .as_array()
        .map(|l| l.iter().map(|i| i[key].clone()).collect())
        .unwrap_or_default()
}

/// The first manifest: two containers with env, ports and mounts, two volumes, a rolling
/// update strategy with parameters.
fn manifest_v1(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: a
        image: example.com/a:1
        env:
        - name: A
          value: "1"
        - name: B
          value: "2"
        ports:
        - containerPort: 80
        volumeMounts:
        - name: cfg
          mountPath: /etc/cfg
        - name: data
          mountPath: /data
      - name: b
        image: example.com/b:1
        ports:
        - containerPort: 9090
      volumes:
      - name: cfg
        configMap:
          name: cfg
      - name: data
        emptyDir: {{}}
"#
    )
}

/// The changed manifest: container `b` and volume `data` dropped, env `A` changed and `C`
/// added, port 8080 added, the strategy switched to Recreate.
fn manifest_v2(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: {name}
  strategy:
    type: Recreate
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: a
        image: example.com/a:1
        env:
        - name: A
          value: "10"
        - name: B
          value: "2"
        - name: C
          value: "3"
        ports:
        - containerPort: 80
        - containerPort: 8080
        volumeMounts:
        - name: cfg
          mountPath: /etc/cfg
      volumes:
      - name: cfg
        configMap:
          name: cfg
"#
    )
}

/// What Kubernetes stores after the re-apply: the manifest's changes merged into the live
/// object, server-side changes (a label and an annotation added with kubectl) kept.
fn assert_reapplied(d: &Value, name: &str, kubectl: &str) {
    let ctx = format!("kubectl {kubectl}: {d:#}");
    assert_eq!(
        names(&d["spec"]["template"]["spec"]["containers"], "name"),
        vec![json!("a")],
        "{ctx}"
    );
    let a = container(d, "a");
    assert_eq!(a["image"], "example.com/a:1", "{ctx}");
    assert_eq!(
        a["env"],
        json!([{"name": "A", "value": "10"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]),
        "{ctx}"
    );
    assert_eq!(
        names(&a["ports"], "containerPort"),
        vec![json!(80), json!(8080)],
        "{ctx}"
    );
    assert_eq!(
        a["volumeMounts"],
        json!([{"name": "cfg", "mountPath": "/etc/cfg"}]),
        "{ctx}"
    );
    assert_eq!(
        names(&d["spec"]["template"]["spec"]["volumes"], "name"),
        vec![json!("cfg")],
        "{ctx}"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"], "cfg",
        "{ctx}"
    );
    assert!(
        d["spec"]["template"]["spec"]["volumes"][0]
            .get("emptyDir")
            .is_none(),
        "{ctx}"
    );
    // $retainKeys: the rolling update parameters go with the switch to Recreate.
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}), "{ctx}");
    assert_eq!(d["spec"]["replicas"], 2, "{ctx}");
    // Server-side additions survive the three-way merge.
    assert_eq!(d["metadata"]["labels"]["extra"], "yes", "{ctx}");
    assert_eq!(d["metadata"]["labels"]["app"], name, "{ctx}");
    assert_eq!(d["metadata"]["annotations"]["note"], "kept", "{ctx}");
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or_else(|| panic!("no last-applied annotation: {ctx}"));
    let last: Value = serde_json::from_str(last).expect("last-applied is JSON");
    assert_eq!(
        last["spec"]["strategy"],
        json!({"type": "Recreate"}),
        "{ctx}"
    );
}

/// Writes `text` into the test dir and returns the path.
fn write(cluster: &TestCluster, file: &str, text: &str) -> anyhow::Result<String> {
    let path = cluster.dir().join(file);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

/// Every kubectl.1.* on the machine, 1.33 included.
fn kubectls() -> Vec<String> {
    let v = installed_kubectl_versions();
    assert!(
        v.iter().any(|k| Some(k.as_str()) == NEWEST),
        "kubectl.1.33 is not installed: {v:?}"
    );
    v
}

/// kubectls that validate against the OpenAPI v2 document in protobuf (1.29 and later
/// use OpenAPI v3). Where kadm-apiserver does not serve that document (builds before it
/// did), their validation fails before any request ("the server could not find the
/// requested resource"); they then apply with `--validate=false`, which computes and
/// sends the same patch.
const VALIDATE_WITH_OPENAPI_V2_PROTOBUF: &[&str] = &["1.27", "1.28"];

/// `kubectl apply -f <file>` as `kubectl` can do it here.
async fn apply(cluster: &TestCluster, kubectl: &str, file: &str) -> anyhow::Result<String> {
    let out = cluster
        .kubectl(Some(kubectl), &["apply", "-f", file])
        .await?;
    if !out.status.success()
        && VALIDATE_WITH_OPENAPI_V2_PROTOBUF.contains(&kubectl)
        && text(&out.stderr).contains("the server could not find the requested resource")
    {
        eprintln!(
            "kubectl {kubectl}: no OpenAPI v2 protobuf to validate against; --validate=false"
        );
        return ok(
            cluster,
            Some(kubectl),
            &["apply", "--validate=false", "-f", file],
        )
        .await;
    }
    anyhow::ensure!(
        out.status.success(),
        "kubectl.{kubectl} apply -f {file} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

/// Applies, changes the live object on the server, re-applies a changed manifest.
async fn apply_then_reapply(cluster: &TestCluster, kubectl: &str) -> anyhow::Result<()> {
    let name = format!("web-{}", kubectl.replace('.', "-"));
    let v = Some(kubectl);
    let v1 = write(cluster, &format!("{name}-v1.yaml"), &manifest_v1(&name))?;
    let v2 = write(cluster, &format!("{name}-v2.yaml"), &manifest_v2(&name))?;
    let out = apply(cluster, kubectl, &v1).await?;
    assert!(out.contains("created"), "kubectl {kubectl}: {out}");
    let first = deployment(cluster, &name).await?;
    assert_eq!(containers(&first).len(), 2, "{first:#}");
    ok(cluster, v, &["label", "deployment", &name, "extra=yes"]).await?;
    ok(cluster, v, &["annotate", "deployment", &name, "note=kept"]).await?;
    let out = apply(cluster, kubectl, &v2).await?;
    assert!(out.contains("configured"), "kubectl {kubectl}: {out}");
    assert_reapplied(&deployment(cluster, &name).await?, &name, kubectl);
    // Applying the same manifest again changes nothing.
    let before = deployment(cluster, &name).await?;
    let out = apply(cluster, kubectl, &v2).await?;
    assert!(out.contains("unchanged"), "kubectl {kubectl}: {out}");
    let after = deployment(cluster, &name).await?;
    assert_eq!(
        before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
        "kubectl {kubectl}"
    );
    Ok(())
}

#[tokio::test]
async fn apply_reapply_of_a_changed_deployment_with_kubectl_1_33() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    apply_then_reapply(&cluster, "1.33").await
}

#[tokio::test]
async fn apply_reapply_of_a_changed_deployment_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for k in kubectls() {
        apply_then_reapply(&cluster, &k).await?;
    }
    Ok(())
}

#[tokio::test]
async fn kubectl_label_annotate_patch_set_image_scale_restart() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let v1 = write(&cluster, "web.yaml", &manifest_v1("web"))?;
    ok(&cluster, NEWEST, &["apply", "-f", &v1]).await?;

    ok(
        &cluster,
        NEWEST,
        &["label", "deployment", "web", "tier=frontend"],
    )
    .await?;
    ok(
        &cluster,
        NEWEST,
        &["annotate", "deployment", "web", "note=a"],
    )
    .await?;
    ok(
        &cluster,
        NEWEST,
        &["annotate", "--overwrite", "deployment", "web", "note=b"],
    )
    .await?;
    let d = deployment(&cluster, "web").await?;
    assert_eq!(d["metadata"]["labels"]["tier"], "frontend", "{d:#}");
    assert_eq!(d["metadata"]["labels"]["app"], "web", "{d:#}");
    assert_eq!(d["metadata"]["annotations"]["note"], "b", "{d:#}");
    ok(&cluster, NEWEST, &["label", "deployment", "web", "tier-"]).await?;
    let d = deployment(&cluster, "web").await?;
    assert!(d["metadata"]["labels"].get("tier").is_none(), "{d:#}");

    // Containers merge by name: `a` changes, `b` stays, the order is kept.
    ok(
        &cluster,
        NEWEST,
        &[
            "patch",
            "deployment",
            "web",
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"x:2"}]}}}}"#,
        ],
    )
    .await?;
    let d = deployment(&cluster, "web").await?;
    assert_eq!(
        names(&d["spec"]["template"]["spec"]["containers"], "name"),
        vec![json!("a"), json!("b")],
        "{d:#}"
    );
    assert_eq!(container(&d, "a")["image"], "x:2", "{d:#}");
    assert_eq!(container(&d, "b")["image"], "example.com/b:1", "{d:#}");
    assert_eq!(container(&d, "a")["env"][0]["value"], "1", "{d:#}");

    ok(
        &cluster,
        NEWEST,
        &["set", "image", "deployment/web", "a=x:3"],
    )
    .await?;
    let d = deployment(&cluster, "web").await?;
    assert_eq!(container(&d, "a")["image"], "x:3", "{d:#}");
    assert_eq!(container(&d, "b")["image"], "example.com/b:1", "{d:#}");

    ok(
        &cluster,
        NEWEST,
        &["set", "env", "deployment/web", "-c", "a", "D=4"],
    )
    .await?;
    let d = deployment(&cluster, "web").await?;
    assert_eq!(
        names(&container(&d, "a")["env"], "name"),
        vec![json!("A"), json!("B"), json!("D")],
        "{d:#}"
    );

    ok(
        &cluster,
        NEWEST,
        &["scale", "deployment", "web", "--replicas=4"],
    )
    .await?;
    assert_eq!(deployment(&cluster, "web").await?["spec"]["replicas"], 4);

    ok(&cluster, NEWEST, &["rollout", "restart", "deployment/web"]).await?;
    let d = deployment(&cluster, "web").await?;
    assert!(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "{d:#}"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["app"], "web",
        "{d:#}"
    );

    // `$patch: delete` removes container b by its merge key.
    ok(
        &cluster,
        NEWEST,
        &[
            "patch",
            "deployment",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"b","$patch":"delete"}]}}}}"#,
        ],
    )
    .await?;
    let d = deployment(&cluster, "web").await?;
    assert_eq!(
        names(&d["spec"]["template"]["spec"]["containers"], "name"),
        vec![json!("a")],
        "{d:#}"
    );

    // A list item without its merge key: Kubernetes' error text, nothing stored.
    let out = cluster
        .kubectl(
            NEWEST,
            &[
                "patch",
                "deployment",
                "web",
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
            ],
        )
        .await?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "Error from server: map: map[image:x] does not contain declared merge key: name"
        ),
        "{}",
        text(&out.stderr)
    );
    let after = deployment(&cluster, "web").await?;
    assert_eq!(
        after["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );
    Ok(())
}

/// PATCH with a strategic merge patch body; returns the status and body.
async fn smp(cluster: &TestCluster, path: &str, patch: &Value) -> anyhow::Result<(u16, Value)> {
    let r = cluster
        .raw()?
        .request(Method::PATCH, path, Some(SMP), serde_json::to_vec(patch)?)
        .await?;
    let body = r.json().unwrap_or(Value::Null);
    Ok((r.status, body))
}

#[tokio::test]
async fn directives_and_lists_on_the_wire() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let r = raw
        .post_json(
            cms,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "finalizers": ["example.com/a", "example.com/b"], "labels": {"x": "1", "y": "2"}},
                "data": {"k": "v"}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = format!("{cms}/c");

    // Finalizers (merge strategy on a scalar list): union, new ones first; then removal.
    let (code, body) = smp(
        &cluster,
        &c,
        &json!({"metadata": {"finalizers": ["example.com/c"]}}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["metadata"]["finalizers"],
        json!(["example.com/c", "example.com/a", "example.com/b"])
    );
    let (code, body) = smp(
        &cluster,
        &c,
        &json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["example.com/a", "example.com/c"],
            "labels": {"x": null, "z": "3"}}}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["finalizers"], json!(["example.com/b"]));
    assert_eq!(body["metadata"]["labels"], json!({"y": "2", "z": "3"}));
    // `$patch: replace` on a map.
    let (code, body) = smp(
        &cluster,
        &c,
        &json!({"data": {"$patch": "replace", "n": "new"}}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"], json!({"n": "new"}));
    // Let the object go away when the test ends.
    let (code, body) = smp(&cluster, &c, &json!({"metadata": {"finalizers": null}})).await?;
    assert_eq!(code, 200, "{body}");

    // Service ports merge by port.
    let svcs = "/api/v1/namespaces/default/services";
    let r = raw
        .post_json(
            svcs,
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"selector": {"app": "s"}, "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080},
                    {"name": "https", "port": 443, "targetPort": 8443}]}}),
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let (code, body) = smp(
        &cluster,
        &format!("{svcs}/s"),
        &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let ports = &body["spec"]["ports"];
    assert_eq!(names(ports, "port"), vec![json!(80), json!(443)], "{body}");
    assert_eq!(ports[0]["targetPort"], 9090, "{body}");
    assert_eq!(ports[0]["name"], "http", "{body}");
    assert_eq!(ports[1]["targetPort"], 8443, "{body}");

    // Malformed directives: Kubernetes' 400 texts, nothing stored.
    let (code, body) = smp(&cluster, &c, &json!({"metadata": {"$retainKeys": "x"}})).await?;
    assert_eq!(
        (code, body["reason"].clone()),
        (400, json!("BadRequest")),
        "{body}"
    );
    assert_eq!(body["message"], "invalid patch format of retainKeys");
    let (code, body) = smp(
        &cluster,
        &c,
        &json!({"metadata": {"$deleteFromPrimitiveListfinalizers": []}}),
    )
    .await?;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["message"], "invalid patch format of primitive list");
    let (code, body) = smp(
        &cluster,
        &c,
        &json!({"metadata": {"labels": {"$patch": "merge"}}}),
    )
    .await?;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["message"],
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    assert!(body.get("reason").is_none(), "{body}");
    let (code, body) = smp(&cluster, &c, &json!([{"op": "add"}])).await?;
    assert_eq!(code, 400, "{body}");
    Ok(())
}

#[tokio::test]
async fn scale_subresource_takes_a_strategic_merge_patch() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let v1 = write(&cluster, "web.yaml", &manifest_v1("web"))?;
    ok(&cluster, NEWEST, &["apply", "-f", &v1]).await?;
    let (code, body) = smp(
        &cluster,
        &format!("{DEPLOYS}/web/scale"),
        &json!({"spec": {"replicas": 5}}),
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "Scale");
    assert_eq!(body["spec"]["replicas"], 5);
    assert_eq!(deployment(&cluster, "web").await?["spec"]["replicas"], 5);
    Ok(())
}
