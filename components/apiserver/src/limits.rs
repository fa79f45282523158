//! What one client may cost the apiserver: requests in flight (kube-apiserver's
//! `--max-requests-inflight` / `--max-mutating-requests-inflight` filter), open watches per
//! user (kadm's own `--max-watches-per-user`), and the size and pace of request headers
//! (Go's `http.Server` limits that kube-apiserver runs with).
//!
//! The in-flight filter follows Kubernetes' legacy max-in-flight filter, which kadm runs in
//! place of API Priority and Fairness: two pools without queueing (get/list/watch are
//! read-only, every other verb mutating), long-running requests (watches and the streaming
//! subresources) take no slot, a full pool answers 429 with `Retry-After: 1` and Kubernetes'
//! plain-text body — except to members of `system:masters`, who are always served. A slot is
//! held until the response body is written, so a slow reader of a large list keeps its slot.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kadm_apimachinery::{ApiError, Reason};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::audit::info::{RequestInfo, is_long_running};
use crate::authz::verb_name;
use crate::request::Target;
use crate::response::{self, Body};
use crate::tls::UserInfo;

/// kube-apiserver's `--max-requests-inflight` default.
pub const DEFAULT_MAX_REQUESTS_INFLIGHT: usize = 400;
/// kube-apiserver's `--max-mutating-requests-inflight` default.
pub const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: usize = 200;
/// Watches one user may hold open at once. A kubelet or controller needs tens; a thousand
/// leaves room for fleets of informers behind one identity.
pub const DEFAULT_MAX_WATCHES_PER_USER: usize = 1000;
/// Request header bytes accepted (Go's `http.DefaultMaxHeaderBytes`, which kube-apiserver
/// keeps); beyond it HTTP/1.1 and HTTP/2 both answer 431.
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// How long a client may take to send its request headers (kube-apiserver's
/// `ReadHeaderTimeout`): a connection that trickles headers is closed.
pub const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(32);

/// Kubernetes' `Retry-After` for a refused request.
const RETRY_AFTER_SECONDS: u32 = 1;
/// Kubernetes' body for a request refused by the in-flight filter (Go's `http.Error`
/// appends the newline).
const TOO_MANY_REQUESTS_BODY: &str = "Too many requests, please try again later.\n";
/// Kubernetes' privileged group: never refused by the in-flight filter.
const SYSTEM_MASTERS: &str = "system:masters";

/// How the in-flight filter counts a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Watches and streaming subresources: no slot (a watch counts against its user's watches).
    LongRunning { watch: bool },
    /// `get`, `list` (and non-resource GETs).
    ReadOnly,
    /// Every other verb.
    Mutating,
}

/// Classifies a request as Kubernetes' RequestInfo would: resource requests by verb and
/// subresource, everything else by the lower-cased HTTP method (so only GET is read-only).
/// `parsed` is the router's reading of the path (`None` when it refused it): the server
/// parses each request once and hands it to every layer.
pub fn classify(method: &Method, path: &str, watch_param: bool, parsed: Option<&Target>) -> Class {
    match parsed {
        Some(Target::Resource(rr)) => Class::of(verb_name(rr.verb), true, &rr.subresource),
        Some(_) if method == Method::GET => Class::ReadOnly,
        Some(_) => Class::Mutating,
        // A path the router rejects (an unknown resource, a subresource kadm does not serve
        // yet) still passes the filter before it is answered 404/405, read as audit reads it.
        None => {
            let info = RequestInfo::from_url(method, path, watch_param);
            Class::of(&info.verb, info.resource_request, &info.subresource)
        }
    }
}

impl Class {
    /// Kubernetes' in-flight filter: long-running requests first, then `get`, `list` and
    /// `watch` are read-only.
    fn of(verb: &str, resource_request: bool, subresource: &str) -> Class {
        if verb == "watch" {
            Class::LongRunning { watch: true }
        } else if is_long_running(verb, resource_request, subresource) {
            Class::LongRunning { watch: false }
        } else if matches!(verb, "get" | "list") {
            Class::ReadOnly
        } else {
            Class::Mutating
        }
    }
}

/// The limits of one apiserver, shared by every connection.
pub struct Limits {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
    max_watches_per_user: usize,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Limits {
    /// Zero disables a limit, as in Kubernetes.
    pub fn new(max_read_only: usize, max_mutating: usize, max_watches_per_user: usize) -> Self {
        let pool = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Limits {
            read_only: pool(max_read_only),
            mutating: pool(max_mutating),
            max_watches_per_user,
            watches: Arc::default(),
        }
    }

    pub fn from_config(cfg: &crate::Config) -> Self {
        Limits::new(
            cfg.max_requests_inflight,
            cfg.max_mutating_requests_inflight,
            cfg.max_watches_per_user,
        )
    }

    /// Admits a request of `user` (after impersonation, as Kubernetes' filter sees it) or
    /// answers the refusal. The returned guard must live as long as the response body:
    /// see [`Guard::hold`].
    pub fn admit(
        &self,
        user: &UserInfo,
        method: &Method,
        path: &str,
        watch_param: bool,
        parsed: Option<&Target>,
    ) -> Result<Guard, Response<Body>> {
        let masters = user.groups.iter().any(|g| g == SYSTEM_MASTERS);
        let pool = match classify(method, path, watch_param, parsed) {
            Class::LongRunning { watch: true } => {
                return self.admit_watch(user, masters);
            }
            Class::LongRunning { watch: false } => return Ok(Guard::default()),
            Class::ReadOnly => &self.read_only,
            Class::Mutating => &self.mutating,
        };
        let Some(pool) = pool else {
            return Ok(Guard::default());
        };
        match pool.clone().try_acquire_owned() {
            Ok(permit) => Ok(Guard {
                slot: Some(permit),
                watch: None,
            }),
            // "A system:master is so powerful that they should always get an answer."
            Err(_) if masters => Ok(Guard::default()),
            Err(_) => {
                tracing::debug!(user = %user.name, %method, path, "too many requests in flight");
                Err(too_many_requests())
            }
        }
    }

    fn admit_watch(&self, user: &UserInfo, masters: bool) -> Result<Guard, Response<Body>> {
        if masters || self.max_watches_per_user == 0 {
            return Ok(Guard::default());
        }
        let mut open = self
            .watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(user.name.clone()).or_insert(0);
        if *n >= self.max_watches_per_user {
            let limit = self.max_watches_per_user;
            tracing::info!(user = %user.name, limit, "refusing a watch: too many open watches");
            let mut e = ApiError::new(
                429,
                Reason::TooManyRequests,
                format!(
                    "too many watches: user {:?} has {limit} open, the most allowed \
                     (--max-watches-per-user); close watches this client no longer needs",
                    user.name
                ),
            );
            e.retry_after = Some(RETRY_AFTER_SECONDS);
            return Err(response::error(&e));
        }
        *n += 1;
        Ok(Guard {
            slot: None,
            watch: Some(WatchSlot {
                user: user.name.clone(),
                watches: self.watches.clone(),
            }),
        })
    }

    /// Watches `user` holds open now (for tests and logs).
    pub fn open_watches(&self, user: &str) -> usize {
        self.watches
            .lock()
            .map(|m| m.get(user).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// Kubernetes' refusal from the in-flight filter: plain text, not a `Status` (client-go
/// turns it into a `TooManyRequests` error and honours `Retry-After`).
pub fn too_many_requests() -> Response<Body> {
    let mut r = response::text(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_BODY);
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// What an admitted request holds until its response body is done.
#[derive(Default)]
pub struct Guard {
    slot: Option<OwnedSemaphorePermit>,
    watch: Option<WatchSlot>,
}

impl Guard {
    /// Ties the guard to `resp`'s body: released when the body has been written or the
    /// client went away (hyper drops the body either way).
    pub fn hold(self, resp: Response<Body>) -> Response<Body> {
        if self.slot.is_none() && self.watch.is_none() {
            return resp;
        }
        resp.map(|inner| {
            GuardedBody {
                inner,
                _guard: self,
            }
            .boxed()
        })
    }
}

/// One open watch of a user; dropping it closes the count.
struct WatchSlot {
    user: String,
    watches: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self
            .watches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

struct GuardedBody {
    inner: Body,
    _guard: Guard,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection limits: header bytes and header read time (HTTP/1.1), header list size
/// (HTTP/2), as kube-apiserver's Go server has them.
pub fn configure_http(builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>) {
    builder
        .http1()
        // Go reads up to MaxHeaderBytes plus a 4 KiB slack before answering 431.
        .max_buf_size(MAX_HEADER_BYTES + 4096)
        .timer(TokioTimer::new())
        .header_read_timeout(READ_HEADER_TIMEOUT);
    builder
        .http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::request;
    use crate::tls::test_user as user;

    const PODS: &str = "/api/v1/namespaces/default/pods";

    /// The test's view of the server: parse, then classify.
    fn classify(method: &Method, path: &str, watch: bool) -> Class {
        super::classify(
            method,
            path,
            watch,
            request::parse(method, path, watch).ok().as_ref(),
        )
    }

    fn admit(
        limits: &Limits,
        user: &UserInfo,
        method: &Method,
        path: &str,
        watch: bool,
    ) -> Result<Guard, Response<Body>> {
        let parsed = request::parse(method, path, watch).ok();
        Limits::admit(limits, user, method, path, watch, parsed.as_ref())
    }

    #[test]
    fn requests_are_classified_as_kubernetes_request_info() {
        let get = Method::GET;
        assert_eq!(classify(&get, PODS, false), Class::ReadOnly);
        assert_eq!(classify(&get, &format!("{PODS}/p"), false), Class::ReadOnly);
        assert_eq!(
            classify(&get, PODS, true),
            Class::LongRunning { watch: true }
        );
        assert_eq!(
            classify(&get, "/api/v1/watch/namespaces/default/pods", false),
            Class::LongRunning { watch: true }
        );
        assert_eq!(
            classify(&get, &format!("{PODS}/p/log"), false),
            Class::LongRunning { watch: false }
        );
        assert_eq!(
            classify(&Method::POST, &format!("{PODS}/p/exec"), false),
            Class::LongRunning { watch: false }
        );
        assert_eq!(
            classify(&get, "/api/v1/nodes/n/proxy", false),
            Class::LongRunning { watch: false }
        );
        // A configmap named "log" is not a subresource.
        assert_eq!(
            classify(&get, "/api/v1/namespaces/default/configmaps/log", false),
            Class::ReadOnly
        );
        assert_eq!(classify(&Method::POST, PODS, false), Class::Mutating);
        assert_eq!(classify(&Method::DELETE, PODS, false), Class::Mutating);
        assert_eq!(
            classify(&Method::PATCH, &format!("{PODS}/p"), false),
            Class::Mutating
        );
        // Non-resource and discovery paths: the verb is the lower-cased method.
        assert_eq!(classify(&get, "/version", false), Class::ReadOnly);
        assert_eq!(classify(&get, "/apis", false), Class::ReadOnly);
        assert_eq!(classify(&Method::HEAD, "/healthz", false), Class::Mutating);
        // Unknown resources are still counted before they are answered 404.
        assert_eq!(classify(&get, "/api/v1/nothings", false), Class::ReadOnly);
        assert_eq!(
            classify(&get, "/api/v1/nothings", true),
            Class::LongRunning { watch: true }
        );
        assert_eq!(
            classify(&Method::POST, "/api/v1/nothings", false),
            Class::Mutating
        );
    }

    #[test]
    fn a_full_pool_refuses_with_kubernetes_429_until_a_slot_is_released() {
        let limits = Limits::new(2, 1, 0);
        let jane = user("jane", &["system:authenticated"]);
        let a = admit(&limits, &jane, &Method::GET, PODS, false).unwrap();
        let _b = admit(&limits, &jane, &Method::GET, PODS, false).unwrap();
        let refused = admit(&limits, &jane, &Method::GET, PODS, false)
            .err()
            .expect("third read-only request refused");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            refused.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(refused.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        // The mutating pool is separate.
        let _m = admit(&limits, &jane, &Method::POST, PODS, false).unwrap();
        assert!(admit(&limits, &jane, &Method::PUT, PODS, false).is_err());
        // Watches take no slot.
        let _w = admit(&limits, &jane, &Method::GET, PODS, true).unwrap();
        drop(a);
        assert!(admit(&limits, &jane, &Method::GET, PODS, false).is_ok());
    }

    #[tokio::test]
    async fn the_refusal_body_is_kubernetes_plain_text() {
        let body = too_many_requests().into_body().collect().await.unwrap();
        assert_eq!(
            body.to_bytes(),
            Bytes::from_static(b"Too many requests, please try again later.\n")
        );
    }

    #[test]
    fn system_masters_are_served_beyond_the_limit() {
        let limits = Limits::new(1, 1, 0);
        let jane = user("jane", &[]);
        let admin = user("kubernetes-admin", &["system:masters"]);
        let _a = admit(&limits, &jane, &Method::GET, PODS, false).unwrap();
        assert!(admit(&limits, &jane, &Method::GET, PODS, false).is_err());
        assert!(admit(&limits, &admin, &Method::GET, PODS, false).is_ok());
    }

    #[test]
    fn zero_disables_a_limit() {
        let limits = Limits::new(0, 0, 0);
        let jane = user("jane", &[]);
        let held: Vec<Guard> = (0..1000)
            .map(|_| admit(&limits, &jane, &Method::GET, PODS, false).unwrap())
            .collect();
        assert_eq!(held.len(), 1000);
        let watches: Vec<Guard> = (0..2000)
            .map(|_| admit(&limits, &jane, &Method::GET, PODS, true).unwrap())
            .collect();
        assert_eq!(watches.len(), 2000);
    }

    #[tokio::test]
    async fn a_slot_is_held_until_the_response_body_is_dropped() {
        let limits = Limits::new(1, 1, 0);
        let jane = user("jane", &[]);
        let guard = admit(&limits, &jane, &Method::GET, PODS, false).unwrap();
        let resp = guard.hold(response::text(StatusCode::OK, "a long list"));
        assert!(admit(&limits, &jane, &Method::GET, PODS, false).is_err());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from_static(b"a long list"));
        assert!(admit(&limits, &jane, &Method::GET, PODS, false).is_ok());
    }

    #[test]
    fn watches_are_capped_per_user_and_released_when_closed() {
        let limits = Limits::new(1, 1, 2);
        let jane = user("jane", &[]);
        let joe = user("joe", &[]);
        let admin = user("admin", &["system:masters"]);
        let w1 = admit(&limits, &jane, &Method::GET, PODS, true).unwrap();
        let w2 = admit(&limits, &jane, &Method::GET, PODS, true).unwrap();
        assert_eq!(limits.open_watches("jane"), 2);
        let refused = admit(&limits, &jane, &Method::GET, PODS, true)
            .err()
            .expect("third watch refused");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        // Other users and system:masters are not affected.
        let _j = admit(&limits, &joe, &Method::GET, PODS, true).unwrap();
        let _a: Vec<Guard> = (0..5)
            .map(|_| admit(&limits, &admin, &Method::GET, PODS, true).unwrap())
            .collect();
        // Watches do not use read-only slots.
        let _r = admit(&limits, &jane, &Method::GET, PODS, false).unwrap();
        drop(w1);
        assert_eq!(limits.open_watches("jane"), 1);
        let _w3 = admit(&limits, &jane, &Method::GET, PODS, true).unwrap();
        drop(w2);
        drop(_w3);
        assert_eq!(limits.open_watches("jane"), 0);
    }

    #[tokio::test]
    async fn the_watch_refusal_is_a_status_with_retry_after_seconds() {
        let limits = Limits::new(0, 0, 1);
        let jane = user("jane", &[]);
        let _w = admit(&limits, &jane, &Method::GET, PODS, true).unwrap();
        let refused = admit(&limits, &jane, &Method::GET, PODS, true)
            .err()
            .unwrap();
        let body = refused.into_body().collect().await.unwrap().to_bytes();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], 429);
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["details"]["retryAfterSeconds"], 1);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("--max-watches-per-user")
        );
    }
}
