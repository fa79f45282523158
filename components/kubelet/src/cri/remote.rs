//! The real runtime: CRI v1 over gRPC (tonic) on a unix socket, as containerd serves it.
//!
//! The channel connects lazily and reconnects by itself, so the kubelet starts (and reports
//! `RuntimeReady` false) while containerd is still coming up, and survives its restarts.

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{API_VERSION, Runtime, api};
use crate::error::{Error, Result};

/// Kubernetes' `--runtime-request-timeout` default: every call but pulls.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Pulls may take long on slow registries; they are still bounded.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// A CRI client on one unix socket.
#[derive(Clone)]
pub struct RemoteRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    timeout: Duration,
}

/// The socket path of a CRI endpoint: `unix:///run/containerd/containerd.sock` or a plain
/// absolute path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(Error::Endpoint(endpoint.to_string()))
    }
}

impl RemoteRuntime {
    /// A client for `endpoint`; nothing is dialled until the first call.
    pub fn new(endpoint: &str) -> Result<Self> {
        Self::with_timeout(endpoint, REQUEST_TIMEOUT)
    }

    /// The same with another per-call deadline (tests).
    pub fn with_timeout(endpoint: &str, timeout: Duration) -> Result<Self> {
        let path = socket_path(endpoint)?;
        // The URI is required by tonic but unused: the connector below dials the socket.
        let channel =
            Endpoint::from_static("http://cri.invalid")
                .connect_timeout(Duration::from_secs(5))
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }));
        Ok(Self {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(16 * 1024 * 1024),
            images: ImageServiceClient::new(channel).max_decoding_message_size(16 * 1024 * 1024),
            timeout,
        })
    }
}

/// Runs one call under a deadline and maps its failure.
async fn call<T>(
    op: &'static str,
    timeout: Duration,
    fut: impl Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(Error::cri(op, status)),
        Err(_) => Err(Error::CriTimeout {
            op,
            seconds: timeout.as_secs(),
        }),
    }
}

impl Runtime for RemoteRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        let mut c = self.runtime.clone();
        call(
            "version",
            self.timeout,
            c.version(api::VersionRequest {
                version: API_VERSION.to_string(),
            }),
        )
        .await
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        let mut c = self.runtime.clone();
        let r = call(
            "status",
            self.timeout,
            c.status(api::StatusRequest { verbose: false }),
        )
        .await?;
        Ok(r.status.unwrap_or_default())
    }

    async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: String,
    ) -> Result<String> {
        let mut c = self.runtime.clone();
        let r = call(
            "run pod sandbox",
            self.timeout,
            c.run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler,
            }),
        )
        .await?;
        Ok(r.pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        call(
            "stop pod sandbox",
            self.timeout,
            c.stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        )
        .await
        .map(drop)
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        call(
            "remove pod sandbox",
            self.timeout,
            c.remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: id.to_string(),
            }),
        )
        .await
        .map(drop)
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let mut c = self.runtime.clone();
        let r = call(
            "pod sandbox status",
            self.timeout,
            c.pod_sandbox_status(api::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            }),
        )
        .await?;
        r.status.ok_or_else(|| {
            Error::cri(
                "pod sandbox status",
                tonic::Status::not_found(format!("no status for sandbox {id}")),
            )
        })
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let mut c = self.runtime.clone();
        let r = call(
            "list pod sandboxes",
            self.timeout,
            c.list_pod_sandbox(api::ListPodSandboxRequest { filter }),
        )
        .await?;
        Ok(r.items)
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let mut c = self.runtime.clone();
        let r = call(
            "create container",
            self.timeout,
            c.create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            }),
        )
        .await?;
        Ok(r.container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        call(
            "start container",
            self.timeout,
            c.start_container(api::StartContainerRequest {
                container_id: id.to_string(),
            }),
        )
        .await
        .map(drop)
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        let mut c = self.runtime.clone();
        // The runtime waits the grace period itself; give the call that much more time.
        let grace = Duration::from_secs(u64::try_from(timeout_seconds.max(0)).unwrap_or(0));
        call(
            "stop container",
            self.timeout + grace,
            c.stop_container(api::StopContainerRequest {
                container_id: id.to_string(),
                timeout: timeout_seconds,
            }),
        )
        .await
        .map(drop)
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut c = self.runtime.clone();
        call(
            "remove container",
            self.timeout,
            c.remove_container(api::RemoveContainerRequest {
                container_id: id.to_string(),
            }),
        )
        .await
        .map(drop)
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let mut c = self.runtime.clone();
        let r = call(
            "list containers",
            self.timeout,
            c.list_containers(api::ListContainersRequest { filter }),
        )
        .await?;
        Ok(r.containers)
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let mut c = self.runtime.clone();
        let r = call(
            "container status",
            self.timeout,
            c.container_status(api::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            }),
        )
        .await?;
        r.status.ok_or_else(|| {
            Error::cri(
                "container status",
                tonic::Status::not_found(format!("no status for container {id}")),
            )
        })
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_seconds: i64,
    ) -> Result<api::ExecSyncResponse> {
        let mut c = self.runtime.clone();
        let limit = Duration::from_secs(u64::try_from(timeout_seconds.max(1)).unwrap_or(1))
            + Duration::from_secs(5);
        call(
            "exec sync",
            limit,
            c.exec_sync(api::ExecSyncRequest {
                container_id: id.to_string(),
                cmd,
                timeout: timeout_seconds,
            }),
        )
        .await
    }

    async fn pull_image(
        &self,
        image: api::ImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        let mut c = self.images.clone();
        let r = call(
            "pull image",
            PULL_TIMEOUT,
            c.pull_image(api::PullImageRequest {
                image: Some(image),
                auth,
                sandbox_config,
            }),
        )
        .await?;
        Ok(r.image_ref)
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        let mut c = self.images.clone();
        let r = call(
            "list images",
            self.timeout,
            c.list_images(api::ListImagesRequest { filter: None }),
        )
        .await?;
        Ok(r.images)
    }

    async fn image_status(&self, image: api::ImageSpec) -> Result<Option<api::Image>> {
        let mut c = self.images.clone();
        let r = call(
            "image status",
            self.timeout,
            c.image_status(api::ImageStatusRequest {
                image: Some(image),
                verbose: false,
            }),
        )
        .await?;
        Ok(r.image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_sockets() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").expect("unix"),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/tmp/c.sock").expect("path"),
            PathBuf::from("/tmp/c.sock")
        );
        assert!(socket_path("tcp://127.0.0.1:1").is_err());
        assert!(socket_path("relative.sock").is_err());
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_prompt_error_not_a_hang() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("none.sock");
        let rt = RemoteRuntime::with_timeout(
            &format!("unix://{}", sock.display()),
            Duration::from_secs(5),
        )
        .expect("client");
        let started = std::time::Instant::now();
        let err = rt.version().await.expect_err("no runtime there");
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(err.to_string().starts_with("cri version"), "{err}");
    }
}
