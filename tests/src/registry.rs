//! A local OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
//! loopback port with its storage in a temp dir, and a pusher speaking the registry HTTP
//! API v2 (blob upload POST + PUT, manifest PUT) for images kadm builds — no docker CLI.
//!
//! Images pushed here are pulled by containerd through `localhost:PORT` over plain HTTP
//! (kadm's `hosts.toml` for insecure local registries, or `ctr … --plain-http`). Nothing
//! leaves the machine: the registry listens on 127.0.0.1 only and proxies nowhere.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kadm_images::OciImage;

use crate::process::{Process, tail};

/// The registry binary from Debian's `docker-registry` package.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// One registry request (blobs are a few MiB at most in tests).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running registry; stopped (by pid) and its storage removed on drop.
pub struct TestRegistry {
    _dir: tempfile::TempDir,
    storage: PathBuf,
    port: u16,
    process: Process,
}

impl TestRegistry {
    pub fn start() -> anyhow::Result<TestRegistry> {
        if !Path::new(DOCKER_REGISTRY).exists() {
            bail!(
                "{DOCKER_REGISTRY} is missing; install Debian's docker-registry package (make test-deps)"
            );
        }
        let dir = tempfile::Builder::new().prefix("kadm-registry").tempdir()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let port = crate::ports::free_port()?;
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                serde_json::to_string(&storage.to_string_lossy())?
            ),
        )?;
        let log = dir.path().join("registry.log");
        let mut process = Process::spawn(
            "docker-registry",
            Path::new(DOCKER_REGISTRY),
            &["serve".into(), config.into_os_string()],
            &[],
            &log,
        )?;
        let started = Instant::now();
        loop {
            if let Some(status) = process.exited() {
                bail!(
                    "docker-registry exited ({status}); its log:\n{}",
                    tail(&log, 30)
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "docker-registry did not listen on 127.0.0.1:{port}; its log:\n{}",
                    tail(&log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(TestRegistry {
            _dir: dir,
            storage,
            port,
            process,
        })
    }

    /// `localhost:PORT`: the registry part of image names, and the `hosts.toml` name.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Pushes `image` as `<repository>:<tag>` and returns the full reference
    /// (`localhost:PORT/<repository>:<tag>`). Blobs the registry has are not re-sent.
    pub async fn push(
        &self,
        image: &OciImage,
        repository: &str,
        tag: &str,
    ) -> anyhow::Result<String> {
        // Layer and config first: a registry refuses a manifest whose blobs it lacks.
        for (digest, blob) in &image.blobs()[..2] {
            let path = format!("/v2/{repository}/blobs/{digest}");
            let head = self
                .request(Method::HEAD, &path, None, Bytes::new())
                .await?;
            if head.0 == StatusCode::OK {
                continue;
            }
            let start = self
                .request(
                    Method::POST,
                    &format!("/v2/{repository}/blobs/uploads/"),
                    None,
                    Bytes::new(),
                )
                .await?;
            if start.0 != StatusCode::ACCEPTED {
                bail!("start upload of {digest}: {} {}", start.0, start.2);
            }
            let location = start.1.context("upload start without a Location header")?;
            let sep = if location.contains('?') { '&' } else { '?' };
            let put = self
                .request(
                    Method::PUT,
                    &format!("{}{sep}digest={digest}", self.path_of(&location)?),
                    Some("application/octet-stream"),
                    Bytes::copy_from_slice(blob),
                )
                .await?;
            if put.0 != StatusCode::CREATED {
                bail!("upload {digest}: {} {}", put.0, put.2);
            }
        }
        let put = self
            .request(
                Method::PUT,
                &format!("/v2/{repository}/manifests/{tag}"),
                Some(kadm_images::oci::MEDIA_TYPE_MANIFEST),
                Bytes::from(image.manifest_json.clone()),
            )
            .await?;
        if put.0 != StatusCode::CREATED {
            bail!("put manifest {repository}:{tag}: {} {}", put.0, put.2);
        }
        Ok(format!("{}/{repository}:{tag}", self.host()))
    }

    /// `GET /v2/<repository>/manifests/<tag>`'s status and body (tests check pushes with it).
    pub async fn manifest(
        &self,
        repository: &str,
        tag: &str,
    ) -> anyhow::Result<(StatusCode, String)> {
        // distribution answers OCI manifests only to clients that accept them.
        let (status, _, body) = self
            .request(
                Method::GET,
                &format!("/v2/{repository}/manifests/{tag}"),
                Some(kadm_images::oci::MEDIA_TYPE_MANIFEST),
                Bytes::new(),
            )
            .await?;
        Ok((status, body))
    }

    /// An upload `Location` may be absolute (`http://127.0.0.1:PORT/v2/…`) or a path.
    fn path_of(&self, location: &str) -> anyhow::Result<String> {
        if location.starts_with('/') {
            return Ok(location.to_string());
        }
        let uri: http::Uri = location
            .parse()
            .with_context(|| format!("location {location:?}"))?;
        Ok(uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()))
    }

    /// One HTTP/1.1 request on its own connection: (status, Location, body). `media_type`
    /// is both the body's `Content-Type` and the `Accept`ed answer.
    async fn request(
        &self,
        method: Method,
        path: &str,
        media_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Option<String>, String)> {
        let port = self.port;
        let fut = async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            let driver = tokio::spawn(conn);
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, format!("localhost:{port}"))
                .header(http::header::CONTENT_LENGTH, body.len());
            if let Some(ct) = media_type {
                // Sent as the body's type, and as the one type accepted back.
                req = req
                    .header(http::header::CONTENT_TYPE, ct)
                    .header(http::header::ACCEPT, ct);
            }
            let resp = sender.send_request(req.body(Full::new(body))?).await?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.into_body().collect().await?.to_bytes();
            driver.abort();
            anyhow::Ok((
                status,
                location,
                String::from_utf8_lossy(&body).into_owned(),
            ))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .with_context(|| format!("registry request {path} timed out"))?
    }
}
