//! The audit log against a real apiserver: kubectl's creates, a forbidden list, a watch, a
//! failed login and health checks, read back from the log the apiserver writes — and
//! the policy `kadm init` installs, loaded by the real apiserver.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::ConfigMap;
use kadm_e2e::{Options, TestCluster};
use kube::api::{Api, ListParams};
use serde_json::Value;

/// How long an event may take to reach the log (it is written by a background thread).
const LOG_DELAY: Duration = Duration::from_secs(10);

/// Every complete event line in the log so far.
fn events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The first event `pick` accepts, waiting for it at most [`LOG_DELAY`].
async fn wait_for(log: &Path, what: &str, pick: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + LOG_DELAY;
    loop {
        if let Some(e) = events(log).into_iter().find(|e| pick(e)) {
            return Ok(e);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no audit event for {what} within {LOG_DELAY:?}; the log holds:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn completed_create(resource: &'static str, name: &'static str) -> impl Fn(&Value) -> bool {
    move |e| {
        e["stage"] == "ResponseComplete"
            && e["verb"] == "create"
            && e["objectRef"]["resource"] == resource
            && e["objectRef"]["name"] == name
    }
}

fn audit_id(resp: &kadm_e2e::http::RawResponse) -> anyhow::Result<String> {
    Ok(resp
        .headers
        .get("audit-id")
        .context("no Audit-Id response header")?
        .to_str()?
        .to_string())
}

async fn start(policy: &str, dir: &Path) -> anyhow::Result<(TestCluster, std::path::PathBuf)> {
    let policy_file = dir.join("audit-policy.yaml");
    std::fs::write(&policy_file, policy)?;
    let log = dir.join("log/audit.log");
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec![
            format!("--audit-policy-file={}", policy_file.display()),
            format!("--audit-log-path={}", log.display()),
            "--audit-log-maxsize=100".into(),
            "--audit-log-maxbackup=5".into(),
        ],
        ..Options::default()
    })
    .await?;
    Ok((cluster, log))
}

const EVERYTHING_AT_REQUEST: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: Request
"#;

#[tokio::test]
async fn creates_forbidden_lists_watches_and_failed_logins_are_audited() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cluster, log) = start(EVERYTHING_AT_REQUEST, dir.path()).await?;
    cluster
        .kubectl_ok(
            None,
            &[
                "create",
                "configmap",
                "settings",
                "--from-literal=color=blue",
            ],
        )
        .await?;
    cluster
        .kubectl_ok(
            None,
            &[
                "create",
                "secret",
                "generic",
                "db",
                "--from-literal=password=hunter2",
            ],
        )
        .await?;
    cluster
        .kubectl_ok(None, &["create", "serviceaccount", "robot"])
        .await?;

    // A ConfigMap create: who, what, where, the code; no body (ConfigMaps are capped at
    // Metadata whatever the policy says).
    let cm = wait_for(
        &log,
        "the configmap create",
        completed_create("configmaps", "settings"),
    )
    .await?;
    assert_eq!(cm["kind"], "Event");
    assert_eq!(cm["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(cm["user"]["username"], "kubernetes-admin");
    assert!(
        cm["user"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:masters")),
        "{cm}"
    );
    assert_eq!(cm["objectRef"]["namespace"], "default");
    assert_eq!(cm["objectRef"]["apiVersion"], "v1");
    assert_eq!(cm["responseStatus"]["code"], 201);
    assert_eq!(cm["level"], "Metadata");
    assert!(cm.get("requestObject").is_none(), "{cm}");
    assert_eq!(cm["annotations"]["authorization.k8s.io/decision"], "allow");
    assert!(
        cm["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("kubectl")),
        "{cm}"
    );
    assert!(
        cm["sourceIPs"]
            .as_array()
            .is_some_and(|ips| ips.iter().any(|ip| ip == "127.0.0.1"))
    );

    // Any other create at Request level carries what was sent.
    let sa = wait_for(
        &log,
        "the serviceaccount create",
        completed_create("serviceaccounts", "robot"),
    )
    .await?;
    assert_eq!(sa["level"], "Request");
    assert_eq!(sa["responseStatus"]["code"], 201);
    assert_eq!(sa["requestObject"]["kind"], "ServiceAccount");
    assert_eq!(sa["requestObject"]["metadata"]["name"], "robot");
    assert!(sa.get("responseObject").is_none());

    // A Secret: never its contents.
    let secret = wait_for(&log, "the secret create", completed_create("secrets", "db")).await?;
    assert_eq!(secret["level"], "Metadata");
    assert!(secret.get("requestObject").is_none() && secret.get("responseObject").is_none());
    let text = std::fs::read_to_string(&log)?;
    assert!(
        !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
        "a secret value reached the audit log"
    );

    // A user without RBAC: 403 and decision forbid.
    let nobody = cluster.kube_client_for("nobody", None).await?;
    let denied = Api::<ConfigMap>::namespaced(nobody, "default")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
        "{denied:?}"
    );
    let forbidden = wait_for(&log, "the forbidden list", |e| {
        e["stage"] == "ResponseComplete" && e["user"]["username"] == "nobody" && e["verb"] == "list"
    })
    .await?;
    assert_eq!(forbidden["responseStatus"]["code"], 403);
    assert_eq!(forbidden["responseStatus"]["reason"], "Forbidden");
    assert_eq!(
        forbidden["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    assert_eq!(forbidden["objectRef"]["resource"], "configmaps");

    // A watch: ResponseStarted when the stream opens, ResponseComplete when it ends; the
    // Audit-Id header names the events.
    let raw = cluster.raw()?;
    let watch = raw
        .get("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
        .await?;
    assert_eq!(watch.status, 200);
    let id = audit_id(&watch)?;
    let complete = wait_for(&log, "the watch's end", |e| {
        e["auditID"] == id.as_str() && e["stage"] == "ResponseComplete"
    })
    .await?;
    assert_eq!(complete["verb"], "watch");
    let stages: Vec<String> = events(&log)
        .iter()
        .filter(|e| e["auditID"] == id.as_str())
        .map(|e| e["stage"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        stages,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );

    let get = raw
        .get("/api/v1/namespaces/default/configmaps/settings")
        .await?;
    let id = audit_id(&get)?;
    let got = wait_for(&log, "the get", |e| {
        e["auditID"] == id.as_str() && e["stage"] == "ResponseComplete"
    })
    .await?;
    assert_eq!(
        (got["verb"].as_str(), got["responseStatus"]["code"].as_u64()),
        (Some("get"), Some(200))
    );
    assert_eq!(got["objectRef"]["name"], "settings");

    // No credentials: one ResponseStarted event with Kubernetes' message.
    let anonymous = cluster
        .raw_anonymous()?
        .get("/api/v1/namespaces/default/pods")
        .await?;
    assert_eq!(anonymous.status, 401);
    let id = audit_id(&anonymous)?;
    let failed = wait_for(&log, "the failed login", |e| e["auditID"] == id.as_str()).await?;
    assert_eq!(failed["stage"], "ResponseStarted");
    assert_eq!(failed["responseStatus"]["code"], 401);
    assert_eq!(
        failed["responseStatus"]["message"],
        "Authentication failed, no credentials provided"
    );

    // Health checks are dropped by the policy (checked once a later request is logged).
    let ready = raw.get("/readyz").await?;
    let ready_id = audit_id(&ready)?;
    let later = raw.get("/api/v1/namespaces/default/configmaps").await?;
    let later_id = audit_id(&later)?;
    wait_for(&log, "the list after /readyz", |e| {
        e["auditID"] == later_id.as_str() && e["stage"] == "ResponseComplete"
    })
    .await?;
    assert!(
        events(&log)
            .iter()
            .all(|e| e["auditID"] != ready_id.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn the_policy_kadm_init_installs_records_changes_and_skips_health_checks()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cluster, log) = start(kadm_bootstrap::audit_policy::DEFAULT_POLICY, dir.path()).await?;
    cluster
        .kubectl_ok(
            None,
            &[
                "create",
                "secret",
                "generic",
                "db",
                "--from-literal=password=hunter2",
            ],
        )
        .await?;
    cluster
        .kubectl_ok(None, &["create", "serviceaccount", "robot"])
        .await?;
    let raw = cluster.raw()?;
    let ready = raw.get("/readyz").await?;
    let ready_id = audit_id(&ready)?;
    let get = raw
        .get("/api/v1/namespaces/default/serviceaccounts/robot")
        .await?;
    let get_id = audit_id(&get)?;

    let secret = wait_for(&log, "the secret create", completed_create("secrets", "db")).await?;
    assert_eq!(secret["level"], "Metadata");
    assert!(secret.get("requestObject").is_none());
    let sa = wait_for(
        &log,
        "the serviceaccount create",
        completed_create("serviceaccounts", "robot"),
    )
    .await?;
    assert_eq!(sa["level"], "Request");
    assert_eq!(sa["requestObject"]["metadata"]["name"], "robot");
    let read = wait_for(&log, "the get", |e| e["auditID"] == get_id.as_str()).await?;
    assert_eq!(read["level"], "Metadata");
    let all = events(&log);
    assert!(
        all.iter().all(|e| e["stage"] != "RequestReceived"),
        "RequestReceived is omitted"
    );
    assert!(
        all.iter().all(|e| e["auditID"] != ready_id.as_str()),
        "/readyz is not recorded"
    );
    Ok(())
}
