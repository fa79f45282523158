//! A request's trail from arrival to the end of its response body, against a real
//! writer into a temporary file.

use std::path::PathBuf;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::response;

struct Harness {
    auditor: Arc<Auditor>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(policy: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = writer::Sink::start(&writer::Options {
            path: path.display().to_string(),
            max_size_mb: 1,
            max_backups: 1,
            max_age_days: 0,
            buffer: 1000,
        })
        .unwrap();
        let policy = Policy::parse(policy.as_bytes()).unwrap();
        Harness {
            auditor: Arc::new(Auditor::new(policy, sink)),
            path,
            _dir: dir,
        }
    }

    fn begin(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Record {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(()).unwrap();
        let watch = Query::parse(req.uri().query()).bool("watch");
        let parsed = crate::request::parse(req.method(), req.uri().path(), watch).ok();
        Record::begin(
            Some(&self.auditor),
            &req,
            Some("127.0.0.1".parse().unwrap()),
            parsed.as_ref(),
        )
    }

    /// Every event written so far, in order.
    fn events(&self) -> Vec<Value> {
        self.auditor.sink.close();
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn admin() -> UserInfo {
    UserInfo {
        name: "kubernetes-admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
        ..Default::default()
    }
}

/// Sends the whole body, as hyper does, then drops it.
async fn drain(resp: Response<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

const EVERYTHING_AT: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: ";

#[tokio::test]
async fn a_configmap_create_is_recorded_with_user_verb_object_and_code_but_no_body() {
    let h = Harness::new(&format!("{EVERYTHING_AT}Request\n"));
    let mut rec = h.begin(
        Method::POST,
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
        &[("user-agent", "kubectl/v1.33.0")],
    );
    rec.authenticated(&admin());
    rec.authorized(true, "");
    let body =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"},"data":{"k":"v"}}"#;
    // ConfigMaps are capped at Metadata: no body even at Request.
    rec.request_body("application/json", body);
    let id = rec.id().to_string();
    let resp = rec.finish(response::json(
        StatusCode::CREATED,
        &json!({"kind": "ConfigMap"}),
    ));
    let (_, headers, _) = drain(resp).await;
    assert_eq!(headers[AUDIT_ID_HEADER], id.as_str());
    let evs = h.events();
    let stages: Vec<&str> = evs.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["RequestReceived", "ResponseComplete"]);
    let e = &evs[1];
    assert_eq!(e["auditID"], id.as_str());
    assert_eq!(e["level"], "Metadata");
    assert_eq!(e["verb"], "create");
    assert_eq!(e["user"]["username"], "kubernetes-admin");
    assert_eq!(e["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(e["userAgent"], "kubectl/v1.33.0");
    assert_eq!(
        e["requestURI"],
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create"
    );
    assert_eq!(
        e["objectRef"],
        json!({"resource": "configmaps", "namespace": "default", "name": "c1", "apiVersion": "v1"})
    );
    assert_eq!(e["responseStatus"], json!({"metadata": {}, "code": 201}));
    assert_eq!(
        e["annotations"],
        json!({"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""})
    );
    assert!(e.get("requestObject").is_none());
    assert!(e.get("responseObject").is_none());
    // MicroTime: RFC 3339, UTC, microseconds.
    for k in ["requestReceivedTimestamp", "stageTimestamp"] {
        let t = e[k].as_str().unwrap();
        assert!(
            t.len() == "2024-05-01T10:00:00.123456Z".len() && t.ends_with('Z'),
            "{k}: {t}"
        );
        chrono::DateTime::parse_from_rfc3339(t).unwrap();
    }
    assert_eq!(
        evs[0]["stageTimestamp"], evs[0]["requestReceivedTimestamp"],
        "RequestReceived is stamped when the request arrived"
    );
}

#[tokio::test]
async fn request_and_response_bodies_follow_the_level_and_omit_managed_fields() {
    let h = Harness::new(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nomitManagedFields: true\nrules:\n  - level: RequestResponse\n    resources: [{group: apps}]\n  - level: Request\n",
    );
    let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "web", "managedFields": [{"manager": "x"}]}});
    let mut rec = h.begin(
        Method::PUT,
        "/apis/apps/v1/namespaces/default/deployments/web",
        &[],
    );
    rec.authenticated(&admin());
    rec.request_body("application/json", &serde_json::to_vec(&obj).unwrap());
    let resp = rec.finish(response::json(StatusCode::OK, &obj));
    drain(resp).await;

    let mut rec = h.begin(Method::POST, "/api/v1/namespaces/default/pods", &[]);
    rec.authenticated(&admin());
    rec.request_body(
        "application/yaml",
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n",
    );
    drain(rec.finish(response::json(StatusCode::CREATED, &json!({"kind": "Pod"})))).await;

    let mut rec = h.begin(Method::PATCH, "/api/v1/namespaces/default/pods/p", &[]);
    rec.authenticated(&admin());
    rec.request_body(
        "application/merge-patch+json",
        br#"{"metadata":{"labels":{"a":"b"}}}"#,
    );
    drain(rec.finish(response::json(StatusCode::OK, &json!({"kind": "Pod"})))).await;

    let evs = h.events();
    assert_eq!(evs.len(), 3, "RequestReceived omitted: {evs:?}");
    let stripped =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    assert_eq!(evs[0]["level"], "RequestResponse");
    assert_eq!(evs[0]["requestObject"], stripped);
    assert_eq!(evs[0]["responseObject"], stripped);
    assert_eq!(evs[1]["level"], "Request");
    assert_eq!(
        evs[1]["objectRef"]["name"], "p",
        "the name of a create comes from the body"
    );
    assert_eq!(evs[1]["requestObject"]["metadata"]["name"], "p");
    assert!(evs[1].get("responseObject").is_none());
    assert_eq!(
        evs[2]["requestObject"],
        json!({"metadata": {"labels": {"a": "b"}}}),
        "a patch is recorded as sent"
    );
}

#[tokio::test]
async fn secrets_never_get_bodies_even_under_request_response() {
    let h = Harness::new(&format!("{EVERYTHING_AT}RequestResponse\n"));
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                        "stringData": {"password": "hunter2"}});
    let mut rec = h.begin(Method::POST, "/api/v1/namespaces/default/secrets", &[]);
    rec.authenticated(&admin());
    rec.request_body("application/json", &serde_json::to_vec(&secret).unwrap());
    drain(rec.finish(response::json(StatusCode::CREATED, &secret))).await;
    let mut rec = h.begin(Method::GET, "/api/v1/namespaces/default/secrets/s", &[]);
    rec.authenticated(&admin());
    drain(rec.finish(response::json(StatusCode::OK, &secret))).await;
    let evs = h.events();
    assert_eq!(evs.len(), 4);
    for e in &evs {
        assert_eq!(e["level"], "Metadata", "{e}");
        assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
    }
    assert_eq!(evs[1]["objectRef"]["name"], "s");
    assert!(
        !std::fs::read_to_string(&h.path)
            .unwrap()
            .contains("hunter2")
    );
}

#[tokio::test]
async fn forbidden_requests_carry_the_status_and_the_decision() {
    let h = Harness::new(&format!("{EVERYTHING_AT}Metadata\n"));
    let jane = UserInfo {
        name: "jane".into(),
        groups: vec!["system:authenticated".into()],
        ..Default::default()
    };
    let mut rec = h.begin(Method::GET, "/api/v1/namespaces/default/configmaps", &[]);
    rec.authenticated(&jane);
    rec.authorized(false, "");
    let err = kadm_apimachinery::ApiError::forbidden(
        "",
        "configmaps",
        "",
        r#"User "jane" cannot list resource "configmaps" in API group "" in the namespace "default""#,
    );
    drain(rec.finish(response::error(&err))).await;
    let evs = h.events();
    let e = &evs[1];
    assert_eq!(e["responseStatus"]["code"], 403);
    assert_eq!(e["responseStatus"]["reason"], "Forbidden");
    assert_eq!(e["responseStatus"]["status"], "Failure");
    assert!(
        e["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot list resource")
    );
    assert_eq!(e["annotations"]["authorization.k8s.io/decision"], "forbid");
}

#[tokio::test]
async fn failed_authentication_is_one_response_started_event() {
    let h = Harness::new(&format!("{EVERYTHING_AT}Metadata\n"));
    let rec = h.begin(
        Method::GET,
        "/api/v1/pods",
        &[("authorization", "Bearer abc")],
    );
    drain(rec.finish(response::error(&kadm_apimachinery::ApiError::unauthorized()))).await;
    let evs = h.events();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["stage"], "ResponseStarted");
    assert_eq!(evs[0]["user"], json!({}));
    assert_eq!(
        evs[0]["responseStatus"],
        json!({"metadata": {}, "message": "Authentication failed, attempted: bearer", "code": 401})
    );
}

#[tokio::test]
async fn watches_get_response_started_then_complete_when_the_stream_ends() {
    let h = Harness::new(&format!("{EVERYTHING_AT}RequestResponse\n"));
    let mut rec = h.begin(
        Method::GET,
        "/api/v1/namespaces/default/pods?watch=1",
        &[("audit-id", "my-own-id")],
    );
    rec.authenticated(&admin());
    let resp = rec.finish(response::json(StatusCode::OK, &json!({"type": "ADDED"})));
    assert_eq!(resp.headers()[AUDIT_ID_HEADER], "my-own-id");
    // ResponseStarted is written before any of the body is sent.
    let stream = resp.into_body();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut so_far = String::new();
    while !so_far.contains("ResponseStarted") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        so_far = std::fs::read_to_string(&h.path).unwrap();
    }
    assert!(so_far.contains("ResponseStarted"), "{so_far}");
    assert!(!so_far.contains("ResponseComplete"), "{so_far}");
    drop(stream);
    let evs = h.events();
    let stages: Vec<&str> = evs.iter().map(|e| e["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );
    assert_eq!(evs[2]["auditID"], "my-own-id");
    assert_eq!(evs[2]["verb"], "watch");
    assert!(
        evs[2].get("responseObject").is_none(),
        "watch bodies are never kept"
    );
}

#[tokio::test]
async fn level_none_and_no_auditor_write_nothing_but_still_answer_the_audit_id() {
    let h = Harness::new(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    nonResourceURLs: [/healthz*]\n  - level: Metadata\n",
    );
    let mut rec = h.begin(Method::GET, "/healthz", &[]);
    rec.authenticated(&admin());
    let (_, headers, _) = drain(rec.finish(response::text(StatusCode::OK, "ok"))).await;
    assert!(headers.contains_key(AUDIT_ID_HEADER));
    let req = Request::builder().uri("/api").body(()).unwrap();
    let rec = Record::begin(None, &req, None, None);
    let (_, headers, _) = drain(rec.finish(response::text(StatusCode::OK, "ok"))).await;
    let id = headers[AUDIT_ID_HEADER].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn impersonation_and_panics_are_recorded() {
    let h = Harness::new(&format!("{EVERYTHING_AT}Metadata\n"));
    let mut rec = h.begin(Method::GET, "/api/v1/namespaces/default/pods/p", &[]);
    rec.authenticated(&admin());
    rec.impersonated(&UserInfo {
        name: "jane".into(),
        groups: vec!["system:authenticated".into()],
        ..Default::default()
    });
    rec.panicked("boom");
    let evs = h.events();
    assert_eq!(evs[1]["stage"], "Panic");
    assert_eq!(evs[1]["user"]["username"], "kubernetes-admin");
    assert_eq!(evs[1]["impersonatedUser"]["username"], "jane");
    assert_eq!(
        evs[1]["responseStatus"],
        json!({"metadata": {}, "status": "Failure", "message": "APIServer panic'd: boom",
               "reason": "InternalError", "code": 500})
    );
}
