//! The container runtime interface (CRI v1) as the kubelet uses it: one trait at the host
//! boundary, the real gRPC client on containerd's socket ([`remote`]) and an in-memory
//! runtime for unit tests ([`fake`]).
//!
//! The trait speaks the CRI's own message types (`k8s_cri::v1`), so what the pod workers
//! build is exactly what containerd receives; only the call shapes are narrowed to what the
//! kubelet needs (ids in, the interesting part of the response out).

pub mod fake;
pub mod remote;

pub use k8s_cri::v1 as api;

use crate::error::Result;

/// The CRI API version the kubelet speaks.
pub const API_VERSION: &str = "v1";

/// A container runtime reachable over the CRI.
///
/// Every call is independent and may run concurrently with any other; implementations
/// bound each call in time. A missing sandbox, container or image is an error whose
/// [`crate::Error::is_not_found`] is true.
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's name and version (`containerd`, `1.6.20~ds1`).
    fn version(&self) -> impl Future<Output = Result<api::VersionResponse>> + Send;

    /// The runtime's conditions (`RuntimeReady`, `NetworkReady`).
    fn status(&self) -> impl Future<Output = Result<api::RuntimeStatus>> + Send;

    /// Creates and starts a pod sandbox; returns its id.
    fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: String,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Stops every process of the sandbox and tears its network down; idempotent.
    fn stop_pod_sandbox(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Removes a stopped sandbox (and any container left in it); idempotent.
    fn remove_pod_sandbox(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    fn pod_sandbox_status(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<api::PodSandboxStatus>> + Send;

    fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> impl Future<Output = Result<Vec<api::PodSandbox>>> + Send;

    /// Creates a container in a sandbox; returns its id.
    fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> impl Future<Output = Result<String>> + Send;

    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Stops a container, killing it after `timeout_seconds` (0: at once).
    fn stop_container(
        &self,
        id: &str,
        timeout_seconds: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    fn remove_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> impl Future<Output = Result<Vec<api::Container>>> + Send;

    fn container_status(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<api::ContainerStatus>> + Send;

    /// Runs a command in a running container and waits for it (probes).
    fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_seconds: i64,
    ) -> impl Future<Output = Result<api::ExecSyncResponse>> + Send;

    /// Pulls an image; returns the image reference the runtime resolved it to.
    fn pull_image(
        &self,
        image: api::ImageSpec,
        auth: Option<api::AuthConfig>,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> impl Future<Output = Result<String>> + Send;

    fn list_images(&self) -> impl Future<Output = Result<Vec<api::Image>>> + Send;

    /// The image if the runtime has it, `None` if not.
    fn image_status(
        &self,
        image: api::ImageSpec,
    ) -> impl Future<Output = Result<Option<api::Image>>> + Send;
}

/// The runtime condition types every CRI runtime reports.
pub const RUNTIME_READY: &str = "RuntimeReady";
pub const NETWORK_READY: &str = "NetworkReady";

/// A condition as Kubernetes prints it in node messages
/// (`NetworkReady=false reason:NetworkPluginNotReady message:…`); `<nil>` when absent.
pub fn condition_string(c: Option<&api::RuntimeCondition>) -> String {
    match c {
        Some(c) => format!(
            "{}={} reason:{} message:{}",
            c.r#type, c.status, c.reason, c.message
        ),
        None => "<nil>".to_string(),
    }
}

/// The named condition of a runtime status.
pub fn find_condition<'a>(
    status: &'a api::RuntimeStatus,
    kind: &str,
) -> Option<&'a api::RuntimeCondition> {
    status.conditions.iter().find(|c| c.r#type == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_print_like_kubernetes() {
        let status = api::RuntimeStatus {
            conditions: vec![api::RuntimeCondition {
                r#type: NETWORK_READY.into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: "Network plugin returns error: cni plugin not initialized".into(),
            }],
        };
        assert_eq!(
            condition_string(find_condition(&status, NETWORK_READY)),
            "NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"
        );
        assert_eq!(
            condition_string(find_condition(&status, RUNTIME_READY)),
            "<nil>"
        );
    }
}
