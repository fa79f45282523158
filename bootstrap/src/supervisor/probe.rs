//! Readiness probes.
//!
//! Each attempt is short and bounded: the caller polls every 200 ms and owns the overall
//! readiness timeout, so one hung attempt must not eat that budget. A failed attempt is normal
//! while a component boots, so failures are returned as values and only logged at debug level.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use super::config::{HttpsProbe, Readiness};
use super::{Error, Result};

/// A TCP connect to a local component either succeeds almost at once or the port is closed;
/// a second covers a loaded host without stalling the poll loop.
pub const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Connect, handshake, request and status line together.
pub const HTTPS_TIMEOUT: Duration = Duration::from_secs(3);
/// Exec probes run arbitrary commands; one that hangs is killed after this long.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(5);

/// One probe attempt; `Ok(())` means ready.
pub async fn check(readiness: &Readiness) -> Result<()> {
    match readiness {
        Readiness::Tcp(addr) => tcp(addr).await,
        Readiness::Https(probe) => https(probe).await,
        Readiness::Exec(argv) => exec(argv).await,
    }
}

fn failed(reason: impl Into<String>) -> Error {
    Error::Probe(reason.into())
}

/// Passes when `addr` (`host:port`) accepts a connection.
pub async fn tcp(addr: &str) -> Result<()> {
    match timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(failed(format!("tcp connect to {addr}: {e}"))),
        Err(_) => Err(failed(format!(
            "tcp connect to {addr}: no answer within {TCP_CONNECT_TIMEOUT:?}"
        ))),
    }
}

/// Passes when the command exits 0. It runs without a shell, with no stdio, so a chatty
/// command cannot block on a full pipe.
pub async fn exec(argv: &[String]) -> Result<()> {
    let Some((program, args)) = argv.split_first() else {
        return Err(failed("exec probe has no command"));
    };
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match timeout(EXEC_TIMEOUT, status).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(failed(format!("exec {program}: {s}"))),
        Ok(Err(e)) => Err(failed(format!("exec {program}: {e}"))),
        Err(_) => Err(failed(format!(
            "exec {program}: still running after {EXEC_TIMEOUT:?}"
        ))),
    }
}

/// The parts of an `https://` URL the probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpsTarget {
    /// Without IPv6 brackets, as needed for the TLS server name and the socket address.
    pub host: String,
    pub port: u16,
    /// The authority exactly as written, for the `Host` header.
    pub authority: String,
    pub path: String,
}

/// A deliberately small parser: the URLs are ours (loopback plus a path), and a full URL
/// crate would be a dependency for one line of config.
pub(crate) fn parse_https_url(url: &str) -> std::result::Result<HttpsTarget, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("readiness url {url:?} must start with https://"))?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("readiness url {url:?} has no usable host"));
    }
    let bad_port = |p: &str| format!("readiness url {url:?} has a bad port {p:?}");
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("readiness url {url:?} has an unclosed '['"))?;
        let port = match after {
            "" => 443,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad_port(p))?,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, p)) => (host, p.parse().map_err(|_| bad_port(p))?),
            None => (authority, 443),
        }
    };
    if host.is_empty() {
        return Err(format!("readiness url {url:?} has no usable host"));
    }
    Ok(HttpsTarget {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path,
    })
}

/// Built per attempt rather than cached: attempts are at most five a second, and re-reading
/// the files means a CA written by the installer after the supervisor started is picked up.
fn client_config(probe: &HttpsProbe) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let ca_certs = CertificateDer::pem_file_iter(&probe.ca_file)
        .map_err(|e| failed(format!("reading CA {}: {e}", probe.ca_file.display())))?;
    for cert in ca_certs {
        let cert =
            cert.map_err(|e| failed(format!("parsing CA {}: {e}", probe.ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| failed(format!("using CA {}: {e}", probe.ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(failed(format!(
            "CA file {} holds no certificate",
            probe.ca_file.display()
        )));
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(format!("tls setup: {e}")))?
            .with_root_certificates(roots);
    match (&probe.cert_file, &probe.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let certs = CertificateDer::pem_file_iter(cert_file)
                .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| failed(format!("reading {}: {e}", cert_file.display())))?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| failed(format!("reading {}: {e}", key_file.display())))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| failed(format!("client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Passes when `GET <path>` answers with status 200. The request is written by hand: one
/// status line is all we read, and an HTTP client stack would be far more than that needs.
pub async fn https(probe: &HttpsProbe) -> Result<()> {
    let target = parse_https_url(&probe.url).map_err(failed)?;
    let config = client_config(probe)?;
    match timeout(HTTPS_TIMEOUT, https_status_line(&target, config)).await {
        Ok(Ok(status)) => {
            let mut parts = status.split_whitespace();
            let version = parts.next().unwrap_or_default();
            let code = parts.next().unwrap_or_default();
            if version.starts_with("HTTP/") && code == "200" {
                Ok(())
            } else {
                Err(failed(format!("GET {}: {status}", probe.url)))
            }
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(failed(format!(
            "GET {}: no answer within {HTTPS_TIMEOUT:?}",
            probe.url
        ))),
    }
}

async fn https_status_line(target: &HttpsTarget, config: ClientConfig) -> Result<String> {
    let stream = timeout(
        TCP_CONNECT_TIMEOUT,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| failed(format!("connect to {}: timed out", target.authority)))?
    .map_err(|e| failed(format!("connect to {}: {e}", target.authority)))?;
    let server_name = ServerName::try_from(target.host.clone())
        .map_err(|e| failed(format!("server name {:?}: {e}", target.host)))?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .map_err(|e| failed(format!("tls handshake with {}: {e}", target.authority)))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kadm-supervisor\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| failed(format!("sending request to {}: {e}", target.authority)))?;
    // The status line is short; stop at its end or at 4 KiB, whichever comes first.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 4096 {
        let n = tls
            .read(&mut chunk)
            .await
            .map_err(|e| failed(format!("reading from {}: {e}", target.authority)))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.split("\r\n").next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(failed(format!(
            "{} closed the connection without a status line",
            target.authority
        )));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tokio::net::TcpListener;

    #[test]
    fn parses_https_urls() {
        let t = parse_https_url("https://127.0.0.1:6443/readyz?verbose").expect("parse");
        assert_eq!(
            t,
            HttpsTarget {
                host: "127.0.0.1".into(),
                port: 6443,
                authority: "127.0.0.1:6443".into(),
                path: "/readyz?verbose".into()
            }
        );
        let t = parse_https_url("https://[::1]:6443").expect("parse");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 6443, "/")
        );
        let t = parse_https_url("https://localhost/healthz").expect("parse");
        assert_eq!((t.host.as_str(), t.port), ("localhost", 443));
        for bad in [
            "http://x/",
            "https:///x",
            "https://h:port/",
            "https://[::1/",
            "https://u@h/",
        ] {
            assert!(parse_https_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn tcp_probe_sees_open_and_closed_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tcp(&addr).await.expect("open port passes");
        drop(listener);
        assert!(tcp(&addr).await.is_err(), "closed port fails");
    }

    #[tokio::test]
    async fn exec_probe_follows_exit_code() {
        exec(&["true".into()]).await.expect("true passes");
        assert!(exec(&["false".into()]).await.is_err());
        assert!(exec(&["/nonexistent/kadm-probe".into()]).await.is_err());
    }

    struct TestPki {
        ca_pem: String,
        server_cert_pem: String,
        server_key_pem: String,
    }

    fn test_pki() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kadm probe test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .expect("server cert");
        TestPki {
            ca_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    /// Serves one connection per entry of `statuses`, answering with that status line, and
    /// returns the requests it saw.
    async fn serve(
        pki: &TestPki,
        statuses: Vec<&'static str>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .expect("certs");
        let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let task = tokio::spawn(async move {
            let mut requests = Vec::new();
            for status in statuses {
                let Ok((sock, _)) = listener.accept().await else {
                    break;
                };
                // A client that rejects our certificate aborts the handshake; that is the
                // point of some tests, not a server failure.
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    requests.push(String::new());
                    continue;
                };
                let mut buf = vec![0u8; 1024];
                let n = tls.read(&mut buf).await.unwrap_or_default();
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok");
                let _ = tls.write_all(body.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
            requests
        });
        (addr, task)
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    #[tokio::test]
    async fn https_probe_checks_status_and_trust() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = test_pki();
        let ca_file = write(dir.path(), "ca.crt", &pki.ca_pem);
        let (addr, server) = serve(&pki, vec!["200 OK", "500 Internal Server Error"]).await;
        let probe = HttpsProbe {
            url: format!("https://{addr}/readyz"),
            ca_file,
            cert_file: None,
            key_file: None,
        };
        https(&probe).await.expect("200 passes");
        let err = https(&probe).await.expect_err("500 fails").to_string();
        assert!(err.contains("500"), "{err}");
        let requests = server.await.expect("server");
        assert!(
            requests[0].starts_with(&format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\n")),
            "{}",
            requests[0]
        );
        assert!(requests[0].contains("Connection: close\r\n"));

        // A server whose certificate does not chain to caFile is not ready, whatever it says.
        let other = test_pki();
        let (addr, _server) = serve(&other, vec!["200 OK"]).await;
        let probe = HttpsProbe {
            url: format!("https://{addr}/readyz"),
            ..probe
        };
        let err = https(&probe).await.expect_err("untrusted").to_string();
        assert!(err.contains("tls handshake"), "{err}");
    }
}
