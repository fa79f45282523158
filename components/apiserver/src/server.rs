//! The HTTPS server: accept, TLS handshake, identify the client from its
//! certificate, route the request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kadm_apimachinery::ApiError;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::cache::{CacheConfig, WatchCache};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::handlers::{self, Ctx};
use crate::request::{self, Query, Target};
use crate::response::{self, Body, Format};
use crate::storage::{EtcdConfig, Store};
use crate::tls::{self, UserInfo};

/// Shared by every request.
pub struct State {
    pub store: Store,
    pub cache: Arc<WatchCache>,
    pub advertise: String,
    pub max_body: usize,
    /// The admission chain (crate::admission).
    pub admission: crate::admission::Admission,
    /// Who may do what (`--authorization-mode`).
    pub authz: crate::authz::Authorizer,
    /// Who is calling, beyond client certificates: bearer tokens (crate::authn).
    pub authn: crate::authn::Authenticator,
    /// Requests in flight and watches per user (`--max-*` flags).
    pub limits: crate::limits::Limits,
    /// The audit log (`--audit-policy-file`); `None` records nothing.
    pub audit: Option<Arc<crate::audit::Auditor>>,
    /// Service cluster IP and node port ranges (crate::services).
    pub services: Arc<crate::services::Allocator>,
}

/// Paths anyone may read without credentials, as Kubernetes' `system:public-info-viewer` allows.
fn is_public(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/healthz" | "/version")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
        || path.starts_with("/healthz/")
}

/// A running server: its address and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Connects to etcd, prepares system state, binds, and serves until shut down.
pub async fn start(cfg: Config) -> Result<Running> {
    let admission_plugins = crate::admission::Plugins::from_flags(
        &cfg.enable_admission_plugins,
        &cfg.disable_admission_plugins,
    )
    .map_err(Error::Config)?;
    tracing::info!(plugins = ?admission_plugins.names(), "admission plugins enabled, in order");
    // A bad encryption config stops the start before anything is read or written.
    let encryption = match &cfg.encryption_provider_config {
        Some(path) => Some(Arc::new(crate::encryption::Transformers::load(path)?)),
        None => None,
    };
    let services = Arc::new(
        crate::services::Allocator::from_flags(
            &cfg.service_cluster_ip_range,
            &cfg.service_node_port_range,
        )
        .map_err(Error::Config)?,
    );
    let tls_cfg = tls::server_config(
        &cfg.tls_cert_file,
        &cfg.tls_private_key_file,
        &cfg.client_ca_file,
        cfg.tls_min_version,
    )?;
    let store = Store::connect(&EtcdConfig {
        endpoints: cfg.etcd_servers.clone(),
        ca_file: cfg.etcd_cafile.clone(),
        cert_file: cfg.etcd_certfile.clone(),
        key_file: cfg.etcd_keyfile.clone(),
        connections: cfg.etcd_connections,
        max_inflight: cfg.etcd_max_inflight,
    })
    .await?
    .with_encryption(encryption);
    crate::bootstrap::ensure_system_namespaces(&store).await?;
    crate::bootstrap::ensure_system_priority_classes(&store).await?;
    crate::authz::policy::ensure(&store).await?;
    let cache = WatchCache::new(
        store.clone(),
        CacheConfig {
            window: cfg.watch_cache_size,
            queue: cfg.watch_queue_size,
        },
    );
    cache.start();
    crate::authz::aggregation::start(store.clone(), cache.clone());
    // The OpenAPI documents take a moment to build: do it before the first kubectl asks.
    tokio::task::spawn_blocking(crate::openapi::warm);
    let addr = SocketAddr::new(cfg.bind_address, cfg.secure_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let advertise_ip = cfg
        .advertise_address
        .unwrap_or(if local.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        });
    let authz = crate::authz::Authorizer::new(cfg.authorization_mode.clone(), cache.clone());
    let authn = crate::authn::Authenticator::new(
        &cfg,
        store.clone(),
        cache.clone(),
        &SocketAddr::new(advertise_ip, local.port()).to_string(),
    )?;
    let audit = crate::audit::Auditor::from_config(&cfg)?;
    let state = Arc::new(State {
        services: services.clone(),
        audit,
        store,
        authz,
        authn,
        cache,
        advertise: SocketAddr::new(advertise_ip, local.port()).to_string(),
        max_body: cfg.max_request_body_bytes,
        limits: crate::limits::Limits::from_config(&cfg),
        admission: crate::admission::Admission {
            default_toleration_seconds: crate::admission::tolerations::DefaultTolerationSeconds {
                not_ready_toleration_seconds: cfg.default_not_ready_toleration_seconds,
                unreachable_toleration_seconds: cfg.default_unreachable_toleration_seconds,
            },
            plugins: admission_plugins,
            ..Default::default()
        },
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    crate::services::repair::start(state.store.clone(), services.clone(), rx.clone()).await;
    crate::services::kubernetes::start(
        state.store.clone(),
        services,
        crate::services::kubernetes::Endpoint {
            ip: advertise_ip,
            port: local.port(),
        },
        rx.clone(),
    );
    let acceptor = TlsAcceptor::from(tls_cfg);
    let task = tokio::spawn(serve(listener, acceptor, state, rx));
    tracing::info!(address = %local, "kadm-apiserver serving");
    Ok(Running {
        addr: local,
        shutdown: tx,
        task,
    })
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| tls::user_from_cert(c));
            let user = Arc::new(user);
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let user = user.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        handle(state, user.as_ref().clone(), peer, req).await,
                    )
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            crate::limits::configure_http(&mut builder);
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), svc).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
}

/// Reads at most `limit` bytes of body. Past the limit the rest is read and dropped
/// (up to [`DRAIN_LIMIT`]) before answering 413: an HTTP/2 client still sending when
/// the stream is reset sees a framing error instead of the Status.
/// A request header's value, `""` when absent or not text.
fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn read_body(req: Request<Incoming>, limit: usize) -> std::result::Result<Bytes, ApiError> {
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("reading the request body failed: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= limit {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT || tokio::time::Instant::now() > drain_until {
                break;
            }
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(buf.freeze())
}

/// How much of an oversized body is read and discarded before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

async fn handle(
    state: Arc<State>,
    user: Option<UserInfo>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = Query::parse(req.uri().query());
    let started = std::time::Instant::now();
    let mut held = crate::limits::Guard::default();
    // Parsed once; audit, the in-flight limits and routing all read this.
    let parsed = request::parse(&method, &path, query.bool("watch"));
    let mut audit = crate::audit::Record::begin(
        state.audit.as_ref(),
        &req,
        Some(peer.ip()),
        parsed.as_ref().ok(),
    );
    let routed = route(
        state, user, req, &path, &method, query, parsed, &mut held, &mut audit,
    );
    let resp = match std::panic::AssertUnwindSafe(routed).catch_unwind().await {
        Ok(resp) => audit.finish(resp),
        Err(panic) => {
            audit.panicked(&crate::audit::panic_message(panic.as_ref()));
            std::panic::resume_unwind(panic)
        }
    };
    let resp = held.hold(resp);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

// The request's parts and what the outer layers (limits, audit) follow of it.
#[allow(clippy::too_many_arguments)]
async fn route(
    state: Arc<State>,
    user: Option<UserInfo>,
    req: Request<Incoming>,
    path: &str,
    method: &Method,
    query: Query,
    parsed: std::result::Result<Target, ApiError>,
    held: &mut crate::limits::Guard,
    audit: &mut crate::audit::Record,
) -> Response<Body> {
    // The connection's certificate, else a bearer token (crate::authn); 401 on a bad token.
    let user = match state.authn.authenticate(user, req.headers()).await {
        Ok(u) => u,
        Err(e) => return response::error(&e),
    };
    let anonymous_public = user.is_none();
    let user = match user {
        Some(u) => u,
        None if is_public(path) => UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        },
        None => return response::error(&ApiError::unauthorized()),
    };
    audit.authenticated(&user);
    let user =
        match crate::authz::impersonation::impersonate(&state.authz, &user, req.headers()).await {
            Ok(Some(impersonated)) => {
                audit.impersonated(&impersonated);
                impersonated
            }
            Ok(None) => user,
            Err(e) => return response::error(&e),
        };
    match state.limits.admit(
        &user,
        method,
        path,
        query.bool("watch"),
        parsed.as_ref().ok(),
    ) {
        Ok(guard) => *held = guard,
        Err(refused) => return refused,
    }
    if let Some(review) = crate::authz::review::Review::from_path(path) {
        let content_type = header_str(&req, header::CONTENT_TYPE);
        let body = match read_body(req, state.max_body).await {
            Ok(b) => b,
            Err(e) => return response::error(&e),
        };
        audit.request_body(&content_type, &body);
        return crate::authz::review::handle(
            &state.authz,
            &user,
            review,
            method,
            &content_type,
            &body,
        )
        .await;
    }
    if crate::authn::tokenreview::is_path(path) {
        let content_type = header_str(&req, header::CONTENT_TYPE);
        return match read_body(req, state.max_body).await {
            Ok(body) => {
                crate::authn::tokenreview::handle(&state, &user, method, &content_type, &body).await
            }
            Err(e) => response::error(&e),
        };
    }
    let target = match parsed {
        Ok(t) => t,
        Err(e) => return response::error(&e),
    };
    // Anonymous requests reach only the public health and version paths (above).
    if !anonymous_public {
        let attrs = match &target {
            Target::Resource(rr) => crate::authz::Attributes::resource(&user, rr, &query),
            Target::NonResource(_) | Target::Discovery(_) => {
                crate::authz::Attributes::non_resource(&user, method, path)
            }
        };
        let (decision, reason) = state.authz.authorize(&attrs).await;
        let allowed = decision == crate::authz::Decision::Allow;
        audit.authorized(allowed, &reason);
        if !allowed {
            tracing::debug!(user = %user.name, verb = %attrs.verb, resource = %attrs.resource, path, "forbidden");
            return response::error(&crate::authz::forbidden(&attrs, &reason));
        }
    }
    match target {
        Target::NonResource(p) => non_resource(&state, &p, &query, method, req.headers()).await,
        Target::Discovery(parts) => {
            if method != Method::GET && method != Method::HEAD {
                return response::error(&ApiError::method_not_allowed());
            }
            match crate::discovery::discover(&parts, &state.advertise) {
                Ok(v) => response::json(StatusCode::OK, &v),
                Err(e) => response::error(&e),
            }
        }
        Target::Resource(rr) => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let Some(format) = response::negotiate(accept.as_deref()) else {
                return response::error(&ApiError::not_acceptable(accept.as_deref().unwrap_or("")));
            };
            let format = if format == Format::Table
                && !matches!(
                    rr.verb,
                    request::Verb::Get | request::Verb::List | request::Verb::Watch
                ) {
                Format::Json
            } else {
                format
            };
            let content_type = header_str(&req, header::CONTENT_TYPE);
            let user_agent = header_str(&req, header::USER_AGENT);
            let body = match read_body(req, state.max_body).await {
                Ok(b) => b,
                Err(e) => return response::error(&e),
            };
            audit.request_body(&content_type, &body);
            handlers::dispatch(Ctx {
                state,
                req: rr,
                query,
                format,
                user,
                content_type,
                body,
                user_agent,
                warnings: Default::default(),
            })
            .await
        }
    }
}

async fn non_resource(
    state: &State,
    path: &str,
    query: &Query,
    method: &Method,
    headers: &http::HeaderMap,
) -> Response<Body> {
    let verbose = query.get("verbose").is_some();
    match path {
        p if crate::openapi::is_openapi(p) => crate::openapi::handle(method, p, query, headers),
        p if crate::authn::oidc::is_oidc_path(p) => {
            crate::authn::oidc::handle(state.authn.tokens.as_ref(), method, p)
        }
        "/version" => response::json(StatusCode::OK, &crate::discovery::version()),
        "/livez" | "/healthz" | "/livez/ping" | "/healthz/ping" => {
            if verbose {
                response::text(
                    StatusCode::OK,
                    format!("[+]ping ok\n{} check passed\n", &path[1..]),
                )
            } else {
                response::text(StatusCode::OK, "ok")
            }
        }
        "/readyz" | "/readyz/etcd" | "/livez/etcd" | "/healthz/etcd" => {
            let cache_ready = path != "/readyz" || state.cache.is_ready();
            match state.store.ping(Duration::from_secs(2)).await {
                Ok(()) if !cache_ready => response::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[+]ping ok\n[+]etcd ok\n[-]watch-cache not loaded yet\nreadyz check failed\n",
                ),
                Ok(()) if verbose => response::text(
                    StatusCode::OK,
                    "[+]ping ok\n[+]etcd ok\nreadyz check passed\n",
                ),
                Ok(()) => response::text(StatusCode::OK, "ok"),
                Err(e) => {
                    tracing::warn!(error = %e, "etcd health check failed");
                    response::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("[+]ping ok\n[-]etcd failed: {e}\nreadyz check failed\n"),
                    )
                }
            }
        }
        "/" => {
            let mut paths = vec!["/api".to_string(), "/api/v1".into(), "/apis".into()];
            for (g, v) in kadm_apimachinery::registry::group_versions() {
                paths.push(format!("/apis/{g}"));
                paths.push(format!("/apis/{g}/{v}"));
            }
            paths.extend(
                [
                    "/healthz",
                    "/livez",
                    "/openapi/v2",
                    "/openapi/v3",
                    "/openapi/v3/",
                    "/readyz",
                    "/version",
                ]
                .map(String::from),
            );
            response::json(StatusCode::OK, &serde_json::json!({"paths": paths}))
        }
        _ => response::error(&ApiError::new(
            404,
            kadm_apimachinery::Reason::NotFound,
            "the server could not find the requested resource",
        )),
    }
}
