//! The health endpoint of the leader-elected components: `GET /healthz` answers `ok` while
//! the process serves.
//!
//! Plain HTTP on the loopback address for now (kube-controller-manager and kube-scheduler
//! serve HTTPS on 10257 and 10259 with delegated authentication); the host supervisor probes
//! it locally. Standby replicas are healthy too: waiting for the lease is normal work.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// A running health server.
pub struct HealthServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HealthServer {
    /// Binds now (so a taken port fails the start) and serves in the background.
    pub async fn start(addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        tracing::info!(address = %addr, "serving /healthz over plain http");
        let task = tokio::spawn(accept_loop(listener));
        Ok(Self { addr, task })
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "health server accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(answer(&req)) });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "health connection ended with error");
            }
        });
    }
}

fn answer(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (code, body) = route(req.method(), req.uri().path());
    let body = if req.method() == Method::HEAD {
        ""
    } else {
        body
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Status and body for a request; pure, for tests.
fn route(method: &Method, path: &str) -> (StatusCode, &'static str) {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
        "/healthz" | "/healthz/ping" | "/livez" | "/livez/ping" => (StatusCode::OK, "ok"),
        _ => (StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn healthz_is_ok_and_the_rest_is_not_found() {
        assert_eq!(route(&Method::GET, "/healthz"), (StatusCode::OK, "ok"));
        assert_eq!(route(&Method::GET, "/metrics").0, StatusCode::NOT_FOUND);
        assert_eq!(
            route(&Method::POST, "/healthz").0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn serves_healthz_over_http() {
        let server = HealthServer::start("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("start");
        let mut tcp = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.ends_with("\r\n\r\nok"), "{out}");
    }
}
