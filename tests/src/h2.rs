//! HTTP/2 over TLS to the apiserver, as client-go talks to it: one connection carries
//! many concurrent requests and watch streams. The flow-control windows are the
//! caller's, so a test can open a watcher that never reads (the server can send it no
//! more than one window).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::http::{RawResponse, client_tls_config};

/// How long one request (not a stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Flow-control windows of a connection (bytes).
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    pub stream: u32,
    pub connection: u32,
}

impl Windows {
    /// Roughly client-go's (Go's HTTP/2: 4 MiB per stream, 1 GiB per connection,
    /// here 16 MiB).
    pub const GENEROUS: Windows = Windows {
        stream: 4 << 20,
        connection: 16 << 20,
    };
    /// HTTP/2's initial 64 KiB: a client that never reads stops the server after this.
    pub const MINIMAL: Windows = Windows {
        stream: 65_535,
        connection: 65_535,
    };
}

/// One HTTP/2 connection with the admin certificate; clones share the connection.
#[derive(Clone)]
pub struct H2Client {
    sender: SendRequest<Full<Bytes>>,
    authority: String,
}

impl H2Client {
    /// Connects to `addr`, trusting `ca` and presenting `cert`/`key`.
    pub async fn connect(
        addr: SocketAddr,
        ca: &Path,
        cert: &Path,
        key: &Path,
        windows: Windows,
    ) -> anyhow::Result<H2Client> {
        let config = client_tls_config(ca, Some((cert, key)), &[b"h2"])?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(config)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .context("tls handshake")?;
        anyhow::ensure!(
            tls.get_ref().1.alpn_protocol() == Some(b"h2"),
            "the server did not agree to HTTP/2"
        );
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(windows.stream)
            .initial_connection_window_size(windows.connection)
            .adaptive_window(false)
            .max_frame_size(16_384)
            .handshake(TokioIo::new(tls))
            .await
            .context("http/2 handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H2Client {
            sender,
            authority: addr.to_string(),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<http::Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.authority))
            .header(header::ACCEPT, "application/json");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let mut sender = self.sender.clone();
        sender.ready().await.context("connection closed")?;
        Ok(sender.send_request(req.body(Full::new(body))?).await?)
    }

    /// One request, its whole answer read.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> anyhow::Result<RawResponse> {
        let what = format!("{method} {path}");
        let body = body.into();
        let fut = async {
            let resp = self.send(method, path, content_type, body).await?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok(RawResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .with_context(|| format!("{what}: no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
            .with_context(|| what.clone())
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<RawResponse> {
        self.request(Method::GET, path, None, Bytes::new()).await
    }

    /// A GET whose body is received in full but only counted: the time a client needs
    /// to have a response, without what it does with it afterwards.
    pub async fn get_counted(&self, path: &str) -> anyhow::Result<(u16, usize)> {
        let fut = async {
            let resp = self.send(Method::GET, path, None, Bytes::new()).await?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut n = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    n += data.len();
                }
            }
            anyhow::Ok((status, n))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .with_context(|| format!("GET {path}: no answer within {REQUEST_TIMEOUT:?}"))?
    }

    /// Starts a streaming GET (a watch): the status, and the body to read line by line.
    pub async fn stream(&self, path: &str) -> anyhow::Result<(u16, Lines)> {
        let resp = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.send(Method::GET, path, None, Bytes::new()),
        )
        .await
        .with_context(|| format!("GET {path}: no headers within {REQUEST_TIMEOUT:?}"))??;
        Ok((
            resp.status().as_u16(),
            Lines {
                body: resp.into_body(),
                buf: BytesMut::new(),
                ended: false,
            },
        ))
    }
}

/// The lines of a streaming response body.
pub struct Lines {
    body: Incoming,
    buf: BytesMut,
    ended: bool,
}

impl Lines {
    /// The next complete line (without its `\n`); `None` once the stream has ended.
    pub async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(i + 1).freeze();
                return Ok(Some(line.slice(..i)));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(mut data) = frame?.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                None => self.ended = true,
            }
        }
    }

    /// [`next`](Self::next) bounded by `wait`: `Err` when nothing arrives in time.
    pub async fn next_within(&mut self, wait: Duration) -> anyhow::Result<Option<Bytes>> {
        tokio::time::timeout(wait, self.next())
            .await
            .with_context(|| format!("no watch line within {wait:?}"))?
    }
}
