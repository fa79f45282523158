//! The apiserver's limits against a real process: requests over `--max-requests-inflight`
//! / `--max-mutating-requests-inflight` get Kubernetes' 429 (plain text, `Retry-After: 1`)
//! while watches and `system:masters` are not counted, watches per user are capped, header
//! sizes follow Go's 1 MiB, and TLS below 1.2 (or with non-AEAD suites) is refused.
//!
//! A request holds its slot until its response is written, so a request whose body never
//! arrives holds one for as long as its connection stays open: that makes "the pool is
//! full" a state the test controls instead of a race.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kadm_e2e::http::client_tls_config;
use kadm_e2e::{Options, RawClient, TestCluster};
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const TOO_MANY: &str = "Too many requests, please try again later.\n";
/// How long the server may take to notice a slot taken or released.
const SETTLE: Duration = Duration::from_secs(10);

/// A user that is not in `system:masters`, bound to `cluster-admin` so every request of
/// the test is authorized.
struct Jane {
    cert: PathBuf,
    key: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    raw: RawClient,
}

async fn jane(cluster: &TestCluster) -> anyhow::Result<Jane> {
    let (cert_pem, key_pem) = cluster
        .pki()
        .issue_client_cert("jane", &[], Duration::from_secs(3600))
        .context("issue jane's certificate")?;
    let cert = cluster.dir().join("jane.crt");
    let key = cluster.dir().join("jane.key");
    std::fs::write(&cert, cert_pem)?;
    std::fs::write(&key, key_pem)?;
    let admin = cluster.raw()?;
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "jane-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}],
    });
    let r = admin
        .post_json(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &binding,
        )
        .await?;
    anyhow::ensure!(r.status == 201, "bind jane: {} {}", r.status, r.text());
    let raw = RawClient::new(
        cluster.apiserver_addr(),
        &cluster.ca_cert_path(),
        Some((&cert, &key)),
    )?;
    let tls = client_tls_config(&cluster.ca_cert_path(), Some((&cert, &key)), &[b"http/1.1"])?;
    let jane = Jane {
        cert,
        key,
        tls,
        raw,
    };
    // The binding reaches the authorizer through the watch cache.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let r = jane.raw.get(CONFIGMAPS).await?;
        if r.status == 200 {
            return Ok(jane);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "jane is not authorized: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP/1.1 request written by hand over its own TLS connection, left open.
struct OpenRequest {
    stream: TlsStream<TcpStream>,
}

impl OpenRequest {
    /// Sends a request head announcing a body that never comes: the server admits the
    /// request and waits for the body, holding a slot while the connection lives.
    async fn stalled(
        cluster: &TestCluster,
        tls: &Arc<rustls::ClientConfig>,
        method: &str,
        path: &str,
    ) -> anyhow::Result<OpenRequest> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n",
            cluster.apiserver_addr()
        );
        Self::send(cluster, tls, &head).await
    }

    /// A watch: the head is answered at once, events would follow on the open stream.
    async fn watch(
        cluster: &TestCluster,
        tls: &Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<(u16, String, OpenRequest)> {
        let head = format!(
            "GET {CONFIGMAPS}?watch=1 HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            cluster.apiserver_addr()
        );
        let mut open = Self::send(cluster, tls, &head).await?;
        let (status, text) = open.read_response_head().await?;
        Ok((status, text, open))
    }

    async fn send(
        cluster: &TestCluster,
        tls: &Arc<rustls::ClientConfig>,
        head: &str,
    ) -> anyhow::Result<OpenRequest> {
        let addr = cluster.apiserver_addr();
        let tcp = TcpStream::connect(addr).await?;
        let mut stream = TlsConnector::from(tls.clone())
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .context("tls handshake")?;
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await?;
        Ok(OpenRequest { stream })
    }

    /// The status and everything read up to the end of the head (and a short body, when
    /// the answer has one with a Content-Length).
    async fn read_response_head(&mut self) -> anyhow::Result<(u16, String)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let read = async {
            loop {
                let n = self.stream.read(&mut chunk).await?;
                anyhow::ensure!(n > 0, "connection closed before a response");
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>())
                        })
                        .transpose()?;
                    if length.is_none_or(|l| buf.len() >= end + 4 + l) {
                        return anyhow::Ok(text.into_owned());
                    }
                }
            }
        };
        let text = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .context("no response head within 10s")??;
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status line in {text:?}"))?;
        Ok((status, text))
    }
}

/// Repeats jane's GET until it has the wanted status (the server took or released a slot).
async fn until_status(jane: &Jane, want: u16) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let r = jane.raw.get(CONFIGMAPS).await?;
        if r.status == want {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "GET stayed {} (want {want}): {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_kubernetes_429(r: &kadm_e2e::RawResponse) {
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        r.headers.get(header::RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(
        r.headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/plain; charset=utf-8"[..])
    );
    assert_eq!(r.text(), TOO_MANY);
}

#[tokio::test]
async fn requests_over_the_inflight_limits_get_429_while_watches_and_masters_pass()
-> anyhow::Result<()> {
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec![
            "--max-requests-inflight=2".into(),
            "--max-mutating-requests-inflight=1".into(),
            "--max-watches-per-user=2".into(),
        ],
        ..Default::default()
    })
    .await?;
    let jane = jane(&cluster).await?;
    let admin = cluster.raw()?;

    // A burst of 50 concurrent reads against 2 slots: each is answered, 200 or Kubernetes' 429.
    let burst = futures::future::join_all((0..50).map(|_| jane.raw.get(CONFIGMAPS))).await;
    for r in burst {
        let r = r?;
        if r.status != 200 {
            assert_kubernetes_429(&r);
        }
    }

    // Two reads that never finish fill the read-only pool.
    let s1 = OpenRequest::stalled(&cluster, &jane.tls, "GET", CONFIGMAPS).await?;
    let s2 = OpenRequest::stalled(&cluster, &jane.tls, "GET", &format!("{CONFIGMAPS}/x")).await?;
    until_status(&jane, 429).await?;
    let burst = futures::future::join_all((0..50).map(|_| jane.raw.get(CONFIGMAPS))).await;
    for r in burst {
        assert_kubernetes_429(&r?);
    }
    // system:masters are served beyond the limit, as in Kubernetes.
    assert_eq!(admin.get(CONFIGMAPS).await?.status, 200);
    // Writes have their own pool.
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let r = jane.raw.post_json(CONFIGMAPS, &cm("first")).await?;
    assert_eq!(r.status, 201, "{}", r.text());

    // Watches are long-running: not counted against the full read-only pool…
    let (status, head, w1) = OpenRequest::watch(&cluster, &jane.tls).await?;
    assert_eq!(status, 200, "{head}");
    let (status, head, w2) = OpenRequest::watch(&cluster, &jane.tls).await?;
    assert_eq!(status, 200, "{head}");
    // …but capped per user (`--max-watches-per-user=2`), with a Status the client can read.
    let (status, head, _refused) = OpenRequest::watch(&cluster, &jane.tls).await?;
    assert_eq!(status, 429, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{head}"
    );
    let body = head.split("\r\n\r\n").nth(1).unwrap_or_default();
    let st: serde_json::Value =
        serde_json::from_str(body).with_context(|| format!("watch refusal body {body:?}"))?;
    assert_eq!(st["reason"], "TooManyRequests");
    assert_eq!(st["code"], 429);
    assert_eq!(st["details"]["retryAfterSeconds"], 1);

    // A write that never finishes fills the mutating pool (1).
    let m1 = OpenRequest::stalled(&cluster, &jane.tls, "POST", CONFIGMAPS).await?;
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let r = jane.raw.post_json(CONFIGMAPS, &cm("second")).await?;
        if r.status == 429 {
            assert_kubernetes_429(&r);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mutating pool never filled: {} {}",
            r.status,
            r.text()
        );
        let _ = jane.raw.delete(&format!("{CONFIGMAPS}/second")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Closing the connections releases the slots and the watches.
    drop((s1, s2, m1));
    until_status(&jane, 200).await?;
    for _ in 0..10 {
        assert_eq!(jane.raw.get(CONFIGMAPS).await?.status, 200);
    }
    let r = jane.raw.post_json(CONFIGMAPS, &cm("third")).await?;
    assert_eq!(r.status, 201, "{}", r.text());
    drop((w1, w2));
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let (status, head, _w) = OpenRequest::watch(&cluster, &jane.tls).await?;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed watches were not released: {head}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A request with `size` bytes of one extra header, over HTTP/1.1; the status, or None when
/// the server closed the connection without one.
async fn h1_with_header(
    cluster: &TestCluster,
    jane: &Jane,
    size: usize,
) -> anyhow::Result<Option<u16>> {
    let head = format!(
        "GET {CONFIGMAPS} HTTP/1.1\r\nHost: {}\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        cluster.apiserver_addr(),
        "a".repeat(size)
    );
    let mut open = OpenRequest::send(cluster, &jane.tls, &head).await?;
    Ok(open.read_response_head().await.ok().map(|(s, _)| s))
}

/// The same over HTTP/2.
async fn h2_with_header(cluster: &TestCluster, jane: &Jane, size: usize) -> anyhow::Result<u16> {
    let addr = cluster.apiserver_addr();
    let tls = client_tls_config(
        &cluster.ca_cert_path(),
        Some((&jane.cert, &jane.key)),
        &[b"h2"],
    )?;
    let tcp = TcpStream::connect(addr).await?;
    let stream = TlsConnector::from(tls)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await?;
    let conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(Method::GET)
        .uri(format!("https://{addr}{CONFIGMAPS}"))
        .header("x-padding", "a".repeat(size))
        .body(Full::new(Bytes::new()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req)).await??;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    conn.abort();
    Ok(status)
}

#[tokio::test]
async fn request_headers_up_to_one_mebibyte_are_accepted_and_larger_ones_refused()
-> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    let jane = jane(&cluster).await?;
    // Kubernetes (Go) accepts 1 MiB of headers on HTTP/1.1 and HTTP/2.
    assert_eq!(
        h1_with_header(&cluster, &jane, 512 * 1024).await?,
        Some(200)
    );
    assert_eq!(h2_with_header(&cluster, &jane, 512 * 1024).await?, 200);
    // Beyond it: 431 on HTTP/1.1 (or the connection closes), 431 on HTTP/2. The HTTP/1.1
    // limit is the read buffer's (1 MiB + 4 KiB), which one read may overshoot, as Go's.
    let big = 2 * 1024 * 1024;
    match h1_with_header(&cluster, &jane, big).await? {
        None | Some(431) => {}
        Some(other) => panic!("{big} bytes of headers answered {other}"),
    }
    assert_eq!(h2_with_header(&cluster, &jane, big).await?, 431);
    // The server is still fine.
    assert_eq!(jane.raw.get(CONFIGMAPS).await?.status, 200);
    Ok(())
}

/// `openssl s_client` against the apiserver: whether the handshake succeeded, and what
/// was negotiated (`-brief` output).
async fn s_client(cluster: &TestCluster, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let addr = cluster.apiserver_addr().to_string();
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new("openssl")
            .args(["s_client", "-brief", "-connect", &addr])
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("openssl s_client did not finish within 20s")?
    .context("run openssl s_client (install openssl)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let connected = out.status.success() && text.contains("CONNECTION ESTABLISHED");
    Ok((connected, text))
}

#[tokio::test]
async fn tls_below_1_2_and_non_aead_suites_are_refused() -> anyhow::Result<()> {
    let cluster = TestCluster::start().await?;
    // SECLEVEL=0 lets this openssl offer TLS 1.1 at all: the refusal must be the server's.
    let (ok, out) = s_client(&cluster, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]).await?;
    assert!(!ok, "TLS 1.1 was accepted:\n{out}");
    // The refusal is the server's: it answers the TLS 1.1 hello with an alert.
    assert!(out.contains("SSL alert number"), "{out}");
    let (ok, out) = s_client(&cluster, &["-tls1_2"]).await?;
    assert!(ok, "TLS 1.2 was refused:\n{out}");
    assert!(out.contains("Protocol version: TLSv1.2"), "{out}");
    assert!(
        out.contains("ECDHE-") && (out.contains("GCM") || out.contains("CHACHA20")),
        "{out}"
    );
    // CBC and static-RSA suites are not offered by the server.
    let (ok, out) = s_client(
        &cluster,
        &[
            "-tls1_2",
            "-cipher",
            "AES128-SHA:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384",
        ],
    )
    .await?;
    assert!(!ok, "a non-AEAD or non-ECDHE suite was accepted:\n{out}");
    let (ok, out) = s_client(&cluster, &["-tls1_3"]).await?;
    assert!(ok, "TLS 1.3 was refused:\n{out}");
    Ok(())
}

#[tokio::test]
async fn tls_min_version_13_refuses_tls_1_2() -> anyhow::Result<()> {
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec!["--tls-min-version=VersionTLS13".into()],
        ..Default::default()
    })
    .await?;
    let (ok, out) = s_client(&cluster, &["-tls1_2"]).await?;
    assert!(
        !ok,
        "TLS 1.2 was accepted with --tls-min-version=VersionTLS13:\n{out}"
    );
    let (ok, out) = s_client(&cluster, &["-tls1_3"]).await?;
    assert!(ok, "TLS 1.3 was refused:\n{out}");
    assert!(out.contains("Protocol version: TLSv1.3"), "{out}");
    Ok(())
}
