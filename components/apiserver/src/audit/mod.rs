//! The audit log: a chronological record of who asked the API for what and what they got,
//! written as Kubernetes writes it (`--audit-policy-file`, `--audit-log-*`), so the tools
//! and habits of Kubernetes operators carry over. Without a policy file nothing is
//! recorded, as in Kubernetes.
//!
//! - [`policy`]: which requests are recorded at which level (first matching rule wins);
//!   Secrets, ConfigMaps, TokenReviews and TokenRequests never beyond `Metadata`.
//! - [`info`]: what a request is about (Kubernetes' RequestInfo).
//! - [`event`]: the `audit.k8s.io/v1` `Event` written per stage.
//! - [`writer`]: the bounded queue, the writer thread and size-based rotation.
//!
//! Every request that reaches the server gets an audit ID (the client's `Audit-ID`
//! header, else a new UUID), answered in the `Audit-Id` response header whether or not it
//! is recorded. A [`Record`] follows one request: the server tells it the user once
//! authentication is done (the level is decided then, as Kubernetes decides it, from the
//! authenticated — not the impersonated — user), the impersonated user, the authorization
//! decision and the request body; [`Record::finish`] wraps the response so the
//! `ResponseComplete` event is written when the body has been sent. Bodies are decoded
//! only when the level records them, and response bodies are kept only at
//! `RequestResponse` (never for watches).

pub mod event;
pub mod info;
pub mod policy;
pub mod writer;

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::request::Query;
use crate::response::Body;
use crate::tls::UserInfo;
use event::{Event, MicroTime, ObjectRef, ResponseStatus};
use info::RequestInfo;
use policy::{Decision, Level, Policy, Stage};

/// The request header a client may set its own audit ID with, and the response header
/// the ID is returned in.
pub const AUDIT_ID_HEADER: &str = "audit-id";
/// Kubernetes truncates longer User-Agents in events.
const MAX_USER_AGENT: usize = 1024;
/// Largest error body read for the event's `responseStatus`.
const MAX_STATUS_BODY: usize = 64 * 1024;
/// Largest response body kept for `responseObject`; beyond it the event has none (the
/// response itself is unaffected).
const MAX_RESPONSE_OBJECT: usize = 32 * 1024 * 1024;

/// The configured policy and log.
pub struct Auditor {
    policy: Policy,
    sink: writer::Sink,
}

impl Auditor {
    /// The auditor the flags ask for: none without `--audit-policy-file` (or without
    /// `--audit-log-path`, where Kubernetes has no backend to write to either).
    pub fn from_config(cfg: &Config) -> Result<Option<Arc<Auditor>>> {
        let Some(policy_file) = &cfg.audit_policy_file else {
            return Ok(None);
        };
        let policy = Policy::load(policy_file)?;
        let Some(path) = cfg.audit_log_path.as_deref().filter(|p| !p.is_empty()) else {
            tracing::warn!(
                policy = %policy_file.display(),
                "--audit-policy-file is set without --audit-log-path: no audit log is written"
            );
            return Ok(None);
        };
        let sink = writer::Sink::start(&writer::Options {
            path: path.to_string(),
            max_size_mb: cfg.audit_log_maxsize,
            max_backups: cfg.audit_log_maxbackup,
            max_age_days: cfg.audit_log_maxage,
            buffer: cfg.audit_log_batch_buffer_size,
        })
        .map_err(|source| Error::Io {
            action: "open audit log",
            path: path.into(),
            source,
        })?;
        tracing::info!(policy = %policy_file.display(), log = path, "audit log enabled");
        Ok(Some(Arc::new(Auditor::new(policy, sink))))
    }

    pub fn new(policy: Policy, sink: writer::Sink) -> Auditor {
        Auditor { policy, sink }
    }

    /// Events lost because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped()
    }
}

/// One request's audit trail.
pub struct Record {
    id: String,
    /// `None` when auditing is off or the policy records nothing of this request.
    active: Option<Box<Active>>,
}

struct Active {
    auditor: Arc<Auditor>,
    info: RequestInfo,
    event: Event,
    /// Decided once the user is known.
    decision: Option<Decision>,
    /// Kubernetes' message for a request that failed authentication.
    auth_methods: String,
}

impl Record {
    /// Starts the trail of a request as it arrives (before authentication).
    pub fn begin<B>(
        auditor: Option<&Arc<Auditor>>,
        req: &Request<B>,
        peer: Option<IpAddr>,
        parsed: Option<&crate::request::Target>,
    ) -> Record {
        let id = req
            .headers()
            .get(AUDIT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let Some(auditor) = auditor else {
            return Record { id, active: None };
        };
        let received = MicroTime::now();
        let path = req.uri().path();
        let query = Query::parse(req.uri().query());
        let info = RequestInfo::of(req.method(), path, &query, parsed);
        let uri = req
            .uri()
            .path_and_query()
            .map_or(path, |pq| pq.as_str())
            .to_string();
        let mut event = Event::new(id.clone(), uri, info.verb.clone(), received);
        event.source_ips = event::source_ips(req.headers(), peer);
        event.user_agent = user_agent(req.headers());
        if info.resource_request {
            event.object_ref = Some(ObjectRef {
                resource: info.resource.clone(),
                namespace: info.namespace.clone(),
                name: info.name.clone(),
                api_group: info.api_group.clone(),
                api_version: info.api_version.clone(),
                subresource: info.subresource.clone(),
                ..ObjectRef::default()
            });
        }
        let auth_methods = auth_methods(req.headers(), &query);
        Record {
            id,
            active: Some(Box::new(Active {
                auditor: auditor.clone(),
                info,
                event,
                decision: None,
                auth_methods,
            })),
        }
    }

    /// The request's audit ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Authentication is done: decides the level for this user and writes
    /// `RequestReceived`. Later calls change nothing.
    pub fn authenticated(&mut self, user: &UserInfo) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        if a.decision.is_some() {
            return;
        }
        let d = a.auditor.policy.evaluate(Some(user), &a.info);
        if d.level == Level::None {
            self.active = None;
            return;
        }
        a.decision = Some(d);
        a.event.level = d.level;
        a.event.user = user.into();
        a.emit(Stage::RequestReceived);
    }

    /// The request acts as `user` (impersonation headers).
    pub fn impersonated(&mut self, user: &UserInfo) {
        if let Some(a) = self.active.as_mut() {
            a.event.impersonated_user = Some(user.into());
        }
    }

    /// The authorizer's verdict, as Kubernetes' annotations record it.
    pub fn authorized(&mut self, allowed: bool, reason: &str) {
        if let Some(a) = self.active.as_mut() {
            let decision = if allowed { "allow" } else { "forbid" };
            a.event
                .annotations
                .insert(event::DECISION_ANNOTATION.into(), decision.into());
            a.event
                .annotations
                .insert(event::REASON_ANNOTATION.into(), reason.into());
        }
    }

    /// The request body, once read. A written object completes the objectRef (the name
    /// of a create, the uid and resourceVersion of an update) and, from `Request` up,
    /// becomes `requestObject`; a patch is recorded as sent. Nothing is decoded below the
    /// level that uses it.
    pub fn request_body(&mut self, content_type: &str, body: &[u8]) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        let Some(d) = a.decision else { return };
        if body.is_empty() {
            return;
        }
        let records_body = d.level >= Level::Request;
        let completes_ref = matches!(a.info.verb.as_str(), "create" | "update");
        let wanted = match a.info.verb.as_str() {
            "patch" | "delete" | "deletecollection" => records_body,
            _ => records_body || completes_ref,
        };
        if !wanted {
            return;
        }
        let Some(mut obj) = event::decode(content_type, body) else {
            return;
        };
        if completes_ref && let Some(r) = a.event.object_ref.as_mut() {
            let m = |k: &str| {
                obj.get("metadata")
                    .and_then(|m| m.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            for (field, key) in [
                (&mut r.namespace, "namespace"),
                (&mut r.name, "name"),
                (&mut r.uid, "uid"),
                (&mut r.resource_version, "resourceVersion"),
            ] {
                if field.is_empty() {
                    *field = m(key);
                }
            }
        }
        if records_body {
            if d.omit_managed_fields {
                event::strip_managed_fields(&mut obj);
            }
            a.event.request_object = Some(obj);
        }
    }

    /// Handling the request panicked: the `Panic` event, as Kubernetes writes it.
    pub fn panicked(&mut self, message: &str) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        if a.decision.is_none() {
            let d = a.auditor.policy.evaluate(None, &a.info);
            if d.level == Level::None {
                return;
            }
            a.event.level = d.level;
            a.decision = Some(d);
        }
        a.event.response_status = Some(ResponseStatus {
            status: "Failure".into(),
            reason: "InternalError".into(),
            message: format!("APIServer panic'd: {message}"),
            ..ResponseStatus::code(500)
        });
        a.emit(Stage::Panic);
    }

    /// Adds the `Audit-Id` header and follows the response: `ResponseStarted` now for
    /// long-running requests, `ResponseComplete` once the body has been sent (or dropped).
    pub fn finish(self, mut resp: Response<Body>) -> Response<Body> {
        if let Ok(v) = HeaderValue::from_str(&self.id) {
            resp.headers_mut().insert(AUDIT_ID_HEADER, v);
        }
        let Some(mut a) = self.active else {
            return resp;
        };
        let code = resp.status().as_u16();
        if a.decision.is_none() {
            // Answered before the user was known: failed authentication (Kubernetes
            // writes one `ResponseStarted` event for it) or an earlier refusal.
            let d = a.auditor.policy.evaluate(None, &a.info);
            if d.level == Level::None {
                return resp;
            }
            a.event.level = d.level;
            a.decision = Some(d);
            if code == 401 {
                a.event.response_status = Some(ResponseStatus {
                    message: a.auth_methods.clone(),
                    ..ResponseStatus::code(code)
                });
                a.emit(Stage::ResponseStarted);
                return resp;
            }
            a.emit(Stage::RequestReceived);
        }
        let level = a.event.level;
        a.event.response_status = Some(ResponseStatus::code(code));
        let long_running = a.info.long_running();
        if long_running {
            a.emit(Stage::ResponseStarted);
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let limit = if level >= Level::RequestResponse && !long_running {
            Some(MAX_RESPONSE_OBJECT)
        } else if code >= 400 && content_type.contains("json") {
            Some(MAX_STATUS_BODY)
        } else {
            None
        };
        resp.map(|inner| {
            AuditBody {
                inner,
                captured: limit.map(|limit| Capture {
                    buf: BytesMut::new(),
                    limit,
                    overflowed: false,
                }),
                content_type,
                active: Some(a),
            }
            .boxed()
        })
    }
}

impl Active {
    /// Writes the event as of `stage`, unless the policy omits that stage.
    fn emit(&mut self, stage: Stage) {
        if self.omits(stage) {
            return;
        }
        self.event.stage = stage;
        self.event.stage_timestamp = if stage == Stage::RequestReceived {
            self.event.request_received_timestamp
        } else {
            MicroTime::now()
        };
        self.auditor.sink.send(self.event.clone());
    }

    fn omits(&self, stage: Stage) -> bool {
        self.decision.is_some_and(|d| d.omit_stages.contains(stage))
    }

    /// The last event of a request: no copy needed.
    fn emit_last(mut self, stage: Stage) {
        if self.omits(stage) {
            return;
        }
        self.event.stage = stage;
        self.event.stage_timestamp = MicroTime::now();
        self.auditor.sink.send(self.event);
    }
}

/// The text of a panic payload (`panic!` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Kubernetes' `User-Agent` as recorded: at most 1024 bytes, then `...TRUNCATED`.
fn user_agent(headers: &http::HeaderMap) -> String {
    let ua = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if ua.len() <= MAX_USER_AGENT {
        return ua;
    }
    let mut cut = MAX_USER_AGENT;
    while !ua.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...TRUNCATED", &ua[..cut])
}

/// Kubernetes' message for a failed authentication: the methods the request attempted.
fn auth_methods(headers: &http::HeaderMap, query: &Query) -> String {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    let mut methods = Vec::new();
    let scheme = auth.split(' ').next().unwrap_or("");
    if scheme.eq_ignore_ascii_case("basic") {
        methods.push("basic");
    }
    if scheme.eq_ignore_ascii_case("bearer") && auth.split(' ').count() > 1 {
        methods.push("bearer");
    }
    if !query.str("access_token").trim().is_empty() {
        methods.push("access_token");
    }
    if methods.is_empty() {
        "Authentication failed, no credentials provided".into()
    } else {
        format!("Authentication failed, attempted: {}", methods.join(", "))
    }
}

struct Capture {
    buf: BytesMut,
    limit: usize,
    overflowed: bool,
}

/// The response body, passed through untouched; when it ends (or the client goes away)
/// the `ResponseComplete` event is written, with what was kept of the body.
struct AuditBody {
    inner: Body,
    captured: Option<Capture>,
    content_type: String,
    active: Option<Box<Active>>,
}

impl AuditBody {
    fn complete(&mut self) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        if let Some(c) = self.captured.take().filter(|c| !c.overflowed)
            && let Some(mut v) = event::decode(&self.content_type, &c.buf)
        {
            let code = a.event.response_status.as_ref().map_or(0, |s| s.code);
            if v.get("kind").and_then(|k| k.as_str()) == Some("Status") {
                a.event.response_status = Some(ResponseStatus::from_status(code, &v));
            }
            if a.event.level >= Level::RequestResponse {
                if a.decision.is_some_and(|d| d.omit_managed_fields) {
                    event::strip_managed_fields(&mut v);
                }
                a.event.response_object = Some(v);
            }
        }
        a.emit_last(Stage::ResponseComplete);
    }
}

impl HttpBody for AuditBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(c), Some(data)) = (this.captured.as_mut(), frame.data_ref()) {
                    if c.buf.len() + data.len() > c.limit {
                        c.overflowed = true;
                        c.buf = BytesMut::new();
                    } else if !c.overflowed {
                        c.buf.extend_from_slice(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.complete();
                Poll::Ready(None)
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditBody {
    fn drop(&mut self) {
        self.complete();
    }
}

#[cfg(test)]
mod tests;
