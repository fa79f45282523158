//! Raw HTTPS requests to the apiserver, with the admin client certificate or none,
//! for checking status codes and `Status` bodies exactly as a client sees them.
//!
//! One TCP+TLS connection per request over HTTP/1.1: nothing is pooled, so a request
//! that the server refuses mid-body cannot poison the next one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one raw request may take in total.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// An HTTPS client for one apiserver address.
#[derive(Clone)]
pub struct RawClient {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    /// Sent as `Authorization: Bearer <token>` when set.
    bearer: Option<String>,
}

/// A complete response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (an error names the status and the raw body).
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response {} is not json: {}",
                self.status,
                self.text().chars().take(500).collect::<String>()
            )
        })
    }

    /// `reason` of a `Status` body, or "" when there is none.
    pub fn reason(&self) -> String {
        self.json()
            .ok()
            .and_then(|v| v["reason"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse certificates in {}", path.display()))
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("parse key in {}", path.display()))?
        .with_context(|| format!("no private key in {}", path.display()))
}

/// A TLS client configuration trusting `ca`, presenting `identity` (cert, key) when
/// given, offering the `alpn` protocols.
pub fn client_tls_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(ca)? {
        roots.add(c)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

impl RawClient {
    /// A client trusting `ca` and presenting `identity` (cert, key) when given.
    pub fn new(
        addr: SocketAddr,
        ca: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> anyhow::Result<RawClient> {
        Ok(RawClient {
            addr,
            config: client_tls_config(ca, identity, &[b"http/1.1"])?,
            bearer: None,
        })
    }

    /// The same client sending `Authorization: Bearer <token>` with every request.
    pub fn with_bearer(mut self, token: &str) -> RawClient {
        self.bearer = Some(token.to_string());
        self
    }

    /// Sends one request; `content_type` is set when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<RawResponse> {
        let body = body.into();
        let what = format!("{method} {path}");
        tokio::time::timeout(REQUEST_TIMEOUT, self.send(method, path, content_type, body))
            .await
            .with_context(|| format!("{what}: no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
            .with_context(|| what.clone())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<RawResponse> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .context("tls handshake")?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::ACCEPT, "application/json");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some(token) = &self.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let resp = sender.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        conn.abort();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<RawResponse> {
        self.request(Method::GET, path, None, Bytes::new()).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<RawResponse> {
        self.request(Method::DELETE, path, None, Bytes::new()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<RawResponse> {
        self.request(
            Method::POST,
            path,
            Some("application/json"),
            serde_json::to_vec(body)?,
        )
        .await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<RawResponse> {
        self.request(
            Method::PUT,
            path,
            Some("application/json"),
            serde_json::to_vec(body)?,
        )
        .await
    }
}
