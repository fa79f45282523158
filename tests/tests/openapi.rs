//! OpenAPI documents and server-side field validation against real kubectl 1.27–1.33:
//! `kubectl apply` (which loads /openapi/v2 as protobuf in 1.27/1.28 and checks
//! /openapi/v3 for the `fieldValidation` parameter), `--validate=strict|warn`, `kubectl
//! explain`, and the raw endpoints' shapes, caching headers and field-validation answers.

use std::process::Output;

use kadm_e2e::{TestCluster, installed_kubectl_versions};
use serde_json::{Value, json};

const NEWEST: Option<&str> = Some("1.33");

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn ok(cluster: &TestCluster, version: Option<&str>, args: &[&str]) -> anyhow::Result<Output> {
    cluster.kubectl_ok(version, args).await
}

fn versions() -> Vec<String> {
    let v = installed_kubectl_versions();
    assert!(
        v.iter().any(|k| k == "1.33"),
        "kubectl.1.33 is not installed: {v:?}"
    );
    v
}

fn deployment_yaml(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 2
{extra_spec}  selector:
    matchLabels:
      app: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 1
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
          name: http
        resources:
          limits:
            cpu: 100m
            memory: 64Mi
"
    )
}

fn write(cluster: &TestCluster, file: &str, content: &str) -> anyhow::Result<String> {
    let path = cluster.dir().join(file);
    std::fs::write(&path, content)?;
    Ok(path.to_string_lossy().into_owned())
}

#[tokio::test]
async fn apply_creates_a_deployment_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for v in versions() {
        let name = format!("web-{}", v.replace('.', "-"));
        let file = write(
            &cluster,
            &format!("{name}.yaml"),
            &deployment_yaml(&name, ""),
        )?;
        let out = ok(&cluster, Some(&v), &["apply", "-f", &file]).await?;
        assert!(
            stdout(&out).contains(&format!("deployment.apps/{name} created")),
            "kubectl {v}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("Warning"),
            "kubectl {v}: {}",
            stderr(&out)
        );
        let got = ok(
            &cluster,
            Some(&v),
            &[
                "get",
                "deployment",
                &name,
                "-o",
                "jsonpath={.spec.strategy.rollingUpdate.maxSurge}",
            ],
        )
        .await?;
        assert_eq!(stdout(&got), "25%", "kubectl {v}");
        // Re-applying the same manifest changes nothing.
        let again = ok(&cluster, Some(&v), &["apply", "-f", &file]).await?;
        assert!(
            stdout(&again).contains("unchanged"),
            "kubectl {v}: {}",
            stdout(&again)
        );
    }
    Ok(())
}

#[tokio::test]
async fn strict_validation_rejects_unknown_fields_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for v in versions() {
        let name = format!("strict-{}", v.replace('.', "-"));
        let file = write(
            &cluster,
            &format!("{name}.yaml"),
            &deployment_yaml(&name, "  replicaz: 3\n"),
        )?;
        let out = cluster
            .kubectl(Some(&v), &["apply", "--validate=strict", "-f", &file])
            .await?;
        assert!(!out.status.success(), "kubectl {v} accepted spec.replicaz");
        let err = stderr(&out);
        assert!(
            err.contains(r#"strict decoding error: unknown field "spec.replicaz""#)
                && err.contains(r#"Deployment in version "v1" cannot be handled as a Deployment"#),
            "kubectl {v}: {err}"
        );
        let get = cluster
            .kubectl(Some(&v), &["get", "deployment", &name])
            .await?;
        assert!(!get.status.success(), "kubectl {v}: the object was created");
    }
    // The default (`--validate=true`) is Strict too.
    let file = write(
        &cluster,
        "default.yaml",
        &deployment_yaml("default-validate", "  replicaz: 3\n  pausd: true\n"),
    )?;
    let out = cluster.kubectl(NEWEST, &["apply", "-f", &file]).await?;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            r#"strict decoding error: unknown field "spec.pausd", unknown field "spec.replicaz""#
        ) || stderr(&out).contains(
            r#"strict decoding error: unknown field "spec.replicaz", unknown field "spec.pausd""#
        ),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[tokio::test]
async fn warn_validation_prints_the_warning_and_creates_the_object() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for v in versions() {
        let name = format!("warn-{}", v.replace('.', "-"));
        let file = write(
            &cluster,
            &format!("{name}.yaml"),
            &deployment_yaml(&name, "  replicaz: 3\n"),
        )?;
        let out = ok(
            &cluster,
            Some(&v),
            &["apply", "--validate=warn", "-f", &file],
        )
        .await?;
        assert!(
            stderr(&out).contains(r#"Warning: unknown field "spec.replicaz""#),
            "kubectl {v}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&format!("deployment.apps/{name} created")),
            "kubectl {v}: {}",
            stdout(&out)
        );
        let got = ok(
            &cluster,
            Some(&v),
            &["get", "deployment", &name, "-o", "json"],
        )
        .await?;
        let obj: Value = serde_json::from_slice(&got.stdout)?;
        assert!(
            obj["spec"].get("replicaz").is_none(),
            "unknown field stored"
        );
        assert_eq!(obj["spec"]["replicas"], 2);
    }
    // --validate=false (Ignore): created silently, field dropped.
    let file = write(
        &cluster,
        "ignore.yaml",
        &deployment_yaml("ignored", "  replicaz: 3\n"),
    )?;
    let out = ok(
        &cluster,
        NEWEST,
        &["apply", "--validate=false", "-f", &file],
    )
    .await?;
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    Ok(())
}

#[tokio::test]
async fn explain_prints_field_descriptions_with_every_kubectl() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    for v in versions() {
        let out = ok(&cluster, Some(&v), &["explain", "pod.spec.containers"]).await?;
        let text = stdout(&out);
        for want in [
            "KIND:       Pod",
            "VERSION:    v1",
            "FIELD: containers <[]Container>",
            "DESCRIPTION:",
            "List of containers belonging to the pod.",
            "FIELDS:",
            "image\t<string>",
            "livenessProbe\t<Probe>",
            "name\t<string> -required-",
        ] {
            assert!(
                text.contains(want),
                "kubectl {v} explain: {want:?} missing:\n{text}"
            );
        }
        let out = ok(
            &cluster,
            Some(&v),
            &["explain", "deployment.spec.strategy", "--recursive"],
        )
        .await?;
        // kubectl 1.27 prints `name<type>` in recursive listings, later ones `name\t<type>`.
        let text = stdout(&out).replace("\t<", "<");
        for want in [
            "GROUP:      apps",
            "KIND:       Deployment",
            "FIELD: strategy <DeploymentStrategy>",
            "The deployment strategy to use to replace existing pods with new ones.",
            "rollingUpdate<RollingUpdateDeployment>",
            "maxSurge<IntOrString>",
            "maxUnavailable<IntOrString>",
            "type<string>",
        ] {
            assert!(
                text.contains(want),
                "kubectl {v} explain --recursive: {want:?} missing:\n{text}"
            );
        }
    }
    // kubectl's OpenAPI v2 explain reads the protobuf document.
    let out = ok(
        &cluster,
        NEWEST,
        &[
            "explain",
            "--output=plaintext-openapiv2",
            "service.spec.ports",
        ],
    )
    .await?;
    let text = stdout(&out).replace("\t<", "<");
    assert!(
        text.contains("RESOURCE: ports <[]Object>")
            && text.contains("ServicePort contains information on service's port.")
            && text.contains("targetPort<string>")
            && text.contains("port<integer> -required-"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn openapi_endpoints_have_kubernetes_shapes_and_caching() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let root = raw.get("/openapi/v3").await?;
    assert_eq!(root.status, 200);
    let root = root.json()?;
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("apps/v1 url")
        .to_string();
    assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    assert!(root["paths"]["api/v1"]["serverRelativeURL"].is_string());

    let doc = raw.get(&url).await?;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.headers["cache-control"], "public, immutable");
    assert!(doc.headers.contains_key("expires"));
    let hash = url.rsplit('=').next().unwrap_or_default();
    assert_eq!(doc.headers["etag"].to_str()?, format!("\"{hash}\""));
    let doc = doc.json()?;
    assert_eq!(doc["openapi"], "3.0.0");
    let params: Vec<&str> =
        doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"]["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
    assert_eq!(params, ["dryRun", "fieldManager", "fieldValidation"]);
    assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());

    let stale = raw.get("/openapi/v3/apis/apps/v1?hash=0123").await?;
    assert_eq!(stale.status, 301);
    assert_eq!(stale.headers["location"].to_str()?, url);
    let missing = raw.get("/openapi/v3/apis/example.com/v1").await?;
    assert_eq!(missing.status, 404);

    let v2 = raw.get("/openapi/v2").await?;
    assert_eq!(v2.status, 200);
    assert!(v2.headers.contains_key("etag"));
    let v2 = v2.json()?;
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    assert!(v2["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());

    // Anonymous clients are refused, as for any non-public path.
    let anon = cluster.raw_anonymous()?.get("/openapi/v3").await?;
    assert_eq!(anon.status, 401);
    Ok(())
}

#[tokio::test]
async fn field_validation_over_raw_https() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup2"},"data":{"a":"1"},"extra":true}"#;

    // Strict: 400 naming every problem, nothing stored.
    let r = raw
        .request(
            http::Method::POST,
            &format!("{cms}?fieldValidation=Strict"),
            Some("application/json"),
            &body[..],
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.reason(), "BadRequest");
    assert_eq!(
        r.json()?["message"],
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "metadata.name", unknown field "extra""#
    );

    // Warn: created with the last name, one Warning header each.
    let r = raw
        .request(
            http::Method::POST,
            &format!("{cms}?fieldValidation=Warn"),
            Some("application/json"),
            &body[..],
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    let warnings: Vec<&str> = r
        .headers
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "duplicate field \"metadata.name\"""#,
            r#"299 - "unknown field \"extra\"""#
        ]
    );
    let obj = r.json()?;
    assert_eq!(obj["metadata"]["name"], "dup2", "the last value wins");
    assert!(obj.get("extra").is_none());

    // Without the parameter the server's default is Warn, as in Kubernetes.
    let r = raw
        .post_json(cms, &json!({"metadata": {"name": "dflt"}, "extra": 1}))
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.headers["warning"], r#"299 - "unknown field \"extra\"""#);

    // Ignore: silently dropped.
    let r = raw
        .request(
            http::Method::POST,
            &format!("{cms}?fieldValidation=Ignore"),
            Some("application/yaml"),
            &b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ign\nbogus: 1\n"[..],
        )
        .await?;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.headers.get("warning").is_none());
    assert!(r.json()?.get("bogus").is_none());

    // An unsupported directive is Kubernetes' 422 on the request options.
    let r = raw
        .request(
            http::Method::POST,
            &format!("{cms}?fieldValidation=Loud"),
            Some("application/json"),
            &br#"{"metadata":{"name":"x"}}"#[..],
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()?["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loud": supported values: "", "Ignore", "Strict", "Warn""#
    );

    // Update: same rules.
    let r = raw
        .request(
            http::Method::PUT,
            &format!("{cms}/ign?fieldValidation=Strict"),
            Some("application/json"),
            &br#"{"metadata":{"name":"ign"},"data":{"k":"v"},"datta":{}}"#[..],
        )
        .await?;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()?["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with(r#"strict decoding error: unknown field "datta""#)
    );

    // Patch: unknown fields in the patched object are a 422 on `patch` under Strict,
    // warnings under Warn.
    let patch = br#"{"data":{"b":"2"},"spec":{"x":1}}"#;
    let r = raw
        .request(
            http::Method::PATCH,
            &format!("{cms}/ign?fieldValidation=Strict"),
            Some("application/merge-patch+json"),
            &patch[..],
        )
        .await?;
    assert_eq!(r.status, 422, "{}", r.text());
    let status = r.json()?;
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with(r#"strict decoding error: unknown field "spec""#),
        "{status}"
    );
    let r = raw
        .request(
            http::Method::PATCH,
            &format!("{cms}/ign?fieldValidation=Warn"),
            Some("application/merge-patch+json"),
            &patch[..],
        )
        .await?;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["warning"], r#"299 - "unknown field \"spec\"""#);
    let obj = r.json()?;
    assert_eq!(obj["data"], json!({"b": "2"}));
    assert!(obj.get("spec").is_none());
    Ok(())
}
