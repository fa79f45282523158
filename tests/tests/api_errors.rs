//! Error answers as a client sees them on the wire: HTTP code, `Status` reason and
//! details, and that a refused write leaves nothing behind in etcd.

use http::Method;
use kadm_e2e::{RawResponse, TestCluster};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}})
}

/// Asserts a `Status` failure with `code` and `reason`; returns the body.
fn status(r: &RawResponse, code: u16, reason: &str) -> Value {
    let body = r.json().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(r.status, code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        r.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{body}"
    );
    body
}

/// The keys etcd holds under a prefix.
async fn etcd_keys(cluster: &TestCluster, prefix: &str) -> anyhow::Result<Vec<String>> {
    let out = cluster
        .etcdctl(&["get", prefix, "--prefix", "--keys-only"])
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "etcdctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

#[tokio::test]
async fn request_without_a_client_certificate_is_401_unauthorized() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let anon = cluster.raw_anonymous()?;
    let body = status(&anon.get("/api/v1/namespaces").await?, 401, "Unauthorized");
    assert_eq!(body["message"], "Unauthorized");
    status(
        &anon.post_json(CMS, &configmap("x")).await?,
        401,
        "Unauthorized",
    );
    // Health and version stay public, as Kubernetes' system:public-info-viewer allows.
    assert_eq!(anon.get("/version").await?.status, 200);
    assert_eq!(anon.get("/livez").await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn get_of_a_missing_object_is_404_not_found() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let body = status(
        &cluster.raw()?.get(&format!("{CMS}/nope")).await?,
        404,
        "NotFound",
    );
    assert_eq!(body["message"], "configmaps \"nope\" not found");
    assert_eq!(body["details"]["name"], "nope");
    assert_eq!(body["details"]["kind"], "configmaps");
    let body = status(
        &cluster
            .raw()?
            .get("/apis/apps/v1/namespaces/default/deployments/web")
            .await?,
        404,
        "NotFound",
    );
    assert_eq!(body["message"], "deployments.apps \"web\" not found");
    assert_eq!(body["details"]["group"], "apps");
    Ok(())
}

#[tokio::test]
async fn creating_the_same_name_twice_is_409_already_exists() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let first = raw.post_json(CMS, &configmap("twice")).await?;
    assert_eq!(first.status, 201, "{}", first.text());
    let body = status(
        &raw.post_json(CMS, &configmap("twice")).await?,
        409,
        "AlreadyExists",
    );
    assert_eq!(body["message"], "configmaps \"twice\" already exists");
    assert_eq!(body["details"]["name"], "twice");
    // The first object is untouched.
    let got = raw.get(&format!("{CMS}/twice")).await?.json()?;
    assert_eq!(got["metadata"]["uid"], first.json()?["metadata"]["uid"]);
    Ok(())
}

#[tokio::test]
async fn update_with_a_stale_resource_version_is_409_conflict() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let created = raw.post_json(CMS, &configmap("stale")).await?.json()?;
    let mut v1 = created.clone();
    v1["data"]["a"] = json!("c");
    let updated = raw.put_json(&format!("{CMS}/stale"), &v1).await?;
    assert_eq!(updated.status, 200, "{}", updated.text());
    // `created` still carries the first resourceVersion.
    let mut stale = created.clone();
    stale["data"]["a"] = json!("d");
    let body = status(
        &raw.put_json(&format!("{CMS}/stale"), &stale).await?,
        409,
        "Conflict",
    );
    assert_eq!(
        body["message"],
        "Operation cannot be fulfilled on configmaps \"stale\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let now = raw.get(&format!("{CMS}/stale")).await?.json()?;
    assert_eq!(now["data"]["a"], "c", "the stale write must not land");
    Ok(())
}

#[tokio::test]
async fn invalid_name_is_422_invalid_naming_the_field_and_stores_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let body = status(
        &raw.post_json(CMS, &configmap("Bad_Name")).await?,
        422,
        "Invalid",
    );
    assert_eq!(
        body["details"]["causes"][0]["field"], "metadata.name",
        "{body}"
    );
    assert_eq!(body["details"]["kind"], "ConfigMap", "{body}");
    assert_eq!(body["details"]["name"], "Bad_Name", "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{body}"
    );
    assert_eq!(raw.get(&format!("{CMS}/Bad_Name")).await?.status, 404);
    assert_eq!(
        etcd_keys(&cluster, "/registry/configmaps/").await?,
        Vec::<String>::new()
    );
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_400_naming_line_and_column() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let r = cluster
        .raw()?
        .request(
            Method::POST,
            CMS,
            Some("application/json"),
            "{\n  \"metadata\": {\"name\": \"x\",}\n}",
        )
        .await?;
    let body = status(&r, 400, "BadRequest");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains("line 2") && msg.contains("column"), "{msg}");
    Ok(())
}

#[tokio::test]
async fn body_of_another_kind_is_400_and_stores_nothing() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong"}});
    let body = status(&raw.post_json(CMS, &secret).await?, 400, "BadRequest");
    assert!(
        body["message"].as_str().unwrap_or("").contains("Secret"),
        "{body}"
    );
    let other_version =
        json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "wrong"}});
    status(
        &raw.post_json(CMS, &other_version).await?,
        400,
        "BadRequest",
    );
    assert_eq!(raw.get(&format!("{CMS}/wrong")).await?.status, 404);
    assert!(
        etcd_keys(&cluster, "/registry/")
            .await?
            .iter()
            .all(|k| !k.ends_with("/wrong"))
    );
    Ok(())
}

#[tokio::test]
async fn unknown_resource_is_404() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    status(&raw.get("/api/v1/widgets").await?, 404, "NotFound");
    status(
        &raw.get("/apis/nope.example.com/v1/things").await?,
        404,
        "NotFound",
    );
    status(
        &raw.get("/api/v1/namespaces/default/configmaps/c/scale")
            .await?,
        404,
        "NotFound",
    );
    Ok(())
}

#[tokio::test]
async fn put_on_a_collection_is_405() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let r = cluster.raw()?.put_json(CMS, &configmap("x")).await?;
    status(&r, 405, "MethodNotAllowed");
    Ok(())
}

#[tokio::test]
async fn body_over_3_mib_is_413_request_entity_too_large() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": big}}),
    )?;
    let r = raw
        .request(Method::POST, CMS, Some("application/json"), body)
        .await?;
    status(&r, 413, "RequestEntityTooLarge");
    assert_eq!(raw.get(&format!("{CMS}/big")).await?.status, 404);
    // The server still answers afterwards.
    assert_eq!(raw.post_json(CMS, &configmap("small")).await?.status, 201);
    Ok(())
}

#[tokio::test]
async fn patch_with_text_plain_is_415() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    assert_eq!(raw.post_json(CMS, &configmap("p")).await?.status, 201);
    let r = raw
        .request(
            Method::PATCH,
            &format!("{CMS}/p"),
            Some("text/plain"),
            r#"{"data":{"a":"z"}}"#,
        )
        .await?;
    let body = status(&r, 415, "UnsupportedMediaType");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("application/merge-patch+json"),
        "{body}"
    );
    assert_eq!(
        raw.get(&format!("{CMS}/p")).await?.json()?["data"]["a"],
        "b"
    );
    Ok(())
}

#[tokio::test]
async fn failed_creates_leave_nothing_in_etcd() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let raw = cluster.raw()?;
    let before = etcd_keys(&cluster, "/registry/").await?;
    // Invalid, wrong kind, undecodable, into a missing namespace, dry run.
    status(
        &raw.post_json(CMS, &configmap("-bad-")).await?,
        422,
        "Invalid",
    );
    status(
        &raw.post_json(
            CMS,
            &json!({"kind": "ConfigMap", "metadata": {"name": "typed"}, "data": {"a": 1}}),
        )
        .await?,
        400,
        "BadRequest",
    );
    status(
        &raw.post_json("/api/v1/namespaces/nowhere/configmaps", &configmap("lost"))
            .await?,
        404,
        "NotFound",
    );
    let dry = raw
        .post_json(&format!("{CMS}?dryRun=All"), &configmap("dry"))
        .await?;
    assert_eq!(dry.status, 201, "{}", dry.text());
    assert_eq!(etcd_keys(&cluster, "/registry/").await?, before);
    Ok(())
}
