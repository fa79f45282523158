//! An in-memory CRI runtime for unit tests: sandboxes get addresses, containers run until
//! the test makes them exit, images appear when pulled. Every call is recorded, and
//! failures can be scripted per image.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{NETWORK_READY, RUNTIME_READY, Runtime, api};
use crate::clock::{Clock, FakeClock, to_nanos};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
struct Sandbox {
    config: api::PodSandboxConfig,
    ready: bool,
    created_at: i64,
    ip: String,
}

impl Sandbox {
    fn state(&self) -> i32 {
        if self.ready {
            api::PodSandboxState::SandboxReady as i32
        } else {
            api::PodSandboxState::SandboxNotready as i32
        }
    }
}

#[derive(Debug, Clone)]
struct Container {
    sandbox_id: String,
    config: api::ContainerConfig,
    state: api::ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    reason: String,
    image_ref: String,
}

#[derive(Default)]
struct State {
    next_id: u64,
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    /// Image name → image id.
    images: HashMap<String, String>,
    pull_failures: HashMap<String, String>,
    start_failures: HashSet<String>,
    network_ready: bool,
    calls: Vec<String>,
    /// `list_pod_sandboxes` and `list_containers` calls, for tests of how often a sync
    /// reads the runtime.
    lists: usize,
}

/// The fake runtime; clones share one state.
#[derive(Clone)]
pub struct FakeRuntime {
    state: Arc<Mutex<State>>,
    clock: FakeClock,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new(FakeClock::default())
    }
}

fn not_found(op: &'static str, what: &str) -> Error {
    Error::cri(op, tonic::Status::not_found(format!("{what} not found")))
}

fn labels_match(selector: &HashMap<String, String>, labels: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl FakeRuntime {
    /// A runtime whose timestamps come from `clock`; the network is ready.
    pub fn new(clock: FakeClock) -> Self {
        let state = State {
            network_ready: true,
            ..State::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> i64 {
        to_nanos(self.clock.now())
    }

    /// Makes an image present, as if pulled earlier.
    pub fn add_image(&self, name: &str) {
        let mut s = self.lock();
        let id = format!("sha256:{:064x}", s.images.len() + 1);
        s.images.insert(name.to_string(), id);
    }

    /// Pulls of `image` fail with `message` from now on.
    pub fn fail_pull(&self, image: &str, message: &str) {
        self.lock()
            .pull_failures
            .insert(image.to_string(), message.to_string());
    }

    /// Starting containers of `image` fails from now on.
    pub fn fail_start(&self, image: &str) {
        self.lock().start_failures.insert(image.to_string());
    }

    pub fn set_network_ready(&self, ready: bool) {
        self.lock().network_ready = ready;
    }

    /// The process of container `id` ends with `code` (reason as containerd reports it).
    pub fn exit(&self, id: &str, code: i32) {
        let now = self.now();
        let mut s = self.lock();
        if let Some(c) = s.containers.get_mut(id)
            && c.state == api::ContainerState::ContainerRunning
        {
            c.state = api::ContainerState::ContainerExited;
            c.finished_at = now;
            c.exit_code = code;
            c.reason = if code == 0 { "Completed" } else { "Error" }.to_string();
        }
    }

    /// The container was killed by the kernel's OOM killer.
    pub fn oom_kill(&self, id: &str) {
        self.exit(id, 137);
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.reason = "OOMKilled".to_string();
        }
    }

    /// Ids of the containers named `name` (metadata), oldest first.
    pub fn containers_named(&self, name: &str) -> Vec<String> {
        let s = self.lock();
        let mut v: Vec<(i64, String)> = s
            .containers
            .iter()
            .filter(|(_, c)| c.config.metadata.as_ref().is_some_and(|m| m.name == name))
            .map(|(id, c)| (c.created_at, id.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// The id of the running container named `name`, if one runs.
    pub fn running(&self, name: &str) -> Option<String> {
        let s = self.lock();
        s.containers
            .iter()
            .find(|(_, c)| {
                c.state == api::ContainerState::ContainerRunning
                    && c.config.metadata.as_ref().is_some_and(|m| m.name == name)
            })
            .map(|(id, _)| id.clone())
    }

    pub fn sandbox_count(&self) -> usize {
        self.lock().sandboxes.len()
    }

    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    /// The config a container was created with.
    pub fn container_config(&self, id: &str) -> Option<api::ContainerConfig> {
        self.lock().containers.get(id).map(|c| c.config.clone())
    }

    /// The config of the only sandbox (tests with one pod).
    pub fn sandbox_configs(&self) -> Vec<api::PodSandboxConfig> {
        self.lock()
            .sandboxes
            .values()
            .map(|s| s.config.clone())
            .collect()
    }

    /// The calls so far, as `op` or `op name` strings.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// How many times sandboxes or containers were listed so far.
    pub fn list_calls(&self) -> usize {
        self.lock().lists
    }

    fn record(&self, call: String) {
        self.lock().calls.push(call);
    }

    fn container_status_of(id: &str, c: &Container) -> api::ContainerStatus {
        api::ContainerStatus {
            id: id.to_string(),
            metadata: c.config.metadata.clone(),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: c.image_ref.clone(),
            reason: c.reason.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.config.log_path.clone(),
            image_id: c.image_ref.clone(),
            ..Default::default()
        }
    }
}

impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<api::VersionResponse> {
        Ok(api::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "fake".into(),
            runtime_version: "1.0.0".into(),
            runtime_api_version: "v1".into(),
        })
    }

    async fn status(&self) -> Result<api::RuntimeStatus> {
        let network_ready = self.lock().network_ready;
        let network = if network_ready {
            api::RuntimeCondition {
                r#type: NETWORK_READY.into(),
                status: true,
                ..Default::default()
            }
        } else {
            api::RuntimeCondition {
                r#type: NETWORK_READY.into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: "Network plugin returns error: cni plugin not initialized".into(),
            }
        };
        Ok(api::RuntimeStatus {
            conditions: vec![
                api::RuntimeCondition {
                    r#type: RUNTIME_READY.into(),
                    status: true,
                    ..Default::default()
                },
                network,
            ],
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        _runtime_handler: String,
    ) -> Result<String> {
        let now = self.now();
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.record(format!("run_pod_sandbox {name}"));
        let mut s = self.lock();
        s.next_id += 1;
        let n = s.next_id;
        let id = format!("sandbox{n:04}");
        let host_network = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|sc| sc.namespace_options.as_ref())
            .is_some_and(|ns| ns.network == api::NamespaceMode::Node as i32);
        let ip = if host_network {
            String::new()
        } else {
            format!("10.88.{}.{}", n / 250, n % 250 + 2)
        };
        s.sandboxes.insert(
            id.clone(),
            Sandbox {
                config,
                ready: true,
                created_at: now,
                ip,
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        self.record(format!("stop_pod_sandbox {id}"));
        let now = self.now();
        let mut s = self.lock();
        if let Some(sb) = s.sandboxes.get_mut(id) {
            sb.ready = false;
        }
        for c in s.containers.values_mut() {
            if c.sandbox_id == id && c.state == api::ContainerState::ContainerRunning {
                c.state = api::ContainerState::ContainerExited;
                c.finished_at = now;
                c.exit_code = 137;
                c.reason = "Error".into();
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        self.record(format!("remove_pod_sandbox {id}"));
        let mut s = self.lock();
        s.sandboxes.remove(id);
        s.containers.retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &str) -> Result<api::PodSandboxStatus> {
        let s = self.lock();
        let sb = s
            .sandboxes
            .get(id)
            .ok_or_else(|| not_found("pod sandbox status", id))?;
        Ok(api::PodSandboxStatus {
            id: id.to_string(),
            metadata: sb.config.metadata.clone(),
            state: sb.state(),
            created_at: sb.created_at,
            network: Some(api::PodSandboxNetworkStatus {
                ip: sb.ip.clone(),
                additional_ips: vec![],
            }),
            labels: sb.config.labels.clone(),
            annotations: sb.config.annotations.clone(),
            ..Default::default()
        })
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>> {
        let mut s = self.lock();
        s.lists += 1;
        let filter = filter.unwrap_or_default();
        Ok(s.sandboxes
            .iter()
            .filter(|(id, sb)| {
                (filter.id.is_empty() || filter.id == **id)
                    && labels_match(&filter.label_selector, &sb.config.labels)
            })
            .map(|(id, sb)| api::PodSandbox {
                id: id.clone(),
                metadata: sb.config.metadata.clone(),
                state: sb.state(),
                created_at: sb.created_at,
                labels: sb.config.labels.clone(),
                annotations: sb.config.annotations.clone(),
                runtime_handler: String::new(),
            })
            .filter(|p| filter.state.is_none_or(|st| st.state == p.state))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: api::ContainerConfig,
        _sandbox_config: api::PodSandboxConfig,
    ) -> Result<String> {
        let now = self.now();
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.record(format!("create_container {name}"));
        let mut s = self.lock();
        if !s.sandboxes.contains_key(sandbox_id) {
            return Err(not_found("create container", sandbox_id));
        }
        let image = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let image_ref = s.images.get(&image).cloned().unwrap_or(image);
        s.next_id += 1;
        let id = format!("container{:04}", s.next_id);
        s.containers.insert(
            id.clone(),
            Container {
                sandbox_id: sandbox_id.to_string(),
                config,
                state: api::ContainerState::ContainerCreated,
                created_at: now,
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                reason: String::new(),
                image_ref,
            },
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let now = self.now();
        let mut s = self.lock();
        let image = {
            let c = s
                .containers
                .get(id)
                .ok_or_else(|| not_found("start container", id))?;
            c.config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default()
        };
        let fails = s.start_failures.contains(&image);
        let name = {
            let c = s
                .containers
                .get_mut(id)
                .ok_or_else(|| not_found("start container", id))?;
            if fails {
                c.state = api::ContainerState::ContainerExited;
                c.finished_at = now;
                c.exit_code = 128;
                c.reason = "StartError".into();
            } else {
                c.state = api::ContainerState::ContainerRunning;
                c.started_at = now;
            }
            c.config
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default()
        };
        s.calls.push(format!("start_container {name}"));
        if fails {
            return Err(Error::cri(
                "start container",
                tonic::Status::unknown(
                    "failed to create containerd task: exec: \"nope\": executable file not found in $PATH",
                ),
            ));
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, timeout_seconds: i64) -> Result<()> {
        let now = self.now();
        let mut s = self.lock();
        let name = match s.containers.get_mut(id) {
            Some(c) => {
                if c.state == api::ContainerState::ContainerRunning {
                    c.state = api::ContainerState::ContainerExited;
                    c.finished_at = now;
                    c.exit_code = 137;
                    c.reason = "Error".into();
                }
                c.config
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default()
            }
            None => return Err(not_found("stop container", id)),
        };
        s.calls
            .push(format!("stop_container {name} {timeout_seconds}"));
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut s = self.lock();
        if let Some(c) = s.containers.remove(id) {
            let name = c.config.metadata.map(|m| m.name).unwrap_or_default();
            s.calls.push(format!("remove_container {name}"));
        }
        Ok(())
    }

    async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>> {
        let mut s = self.lock();
        s.lists += 1;
        let filter = filter.unwrap_or_default();
        Ok(s.containers
            .iter()
            .filter(|(id, c)| {
                (filter.id.is_empty() || filter.id == **id)
                    && (filter.pod_sandbox_id.is_empty() || filter.pod_sandbox_id == c.sandbox_id)
                    && filter.state.is_none_or(|st| st.state == c.state as i32)
                    && labels_match(&filter.label_selector, &c.config.labels)
            })
            .map(|(id, c)| api::Container {
                id: id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: c.image_ref.clone(),
                state: c.state as i32,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                image_id: c.image_ref.clone(),
            })
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<api::ContainerStatus> {
        let s = self.lock();
        let c = s
            .containers
            .get(id)
            .ok_or_else(|| not_found("container status", id))?;
        Ok(Self::container_status_of(id, c))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        _timeout_seconds: i64,
    ) -> Result<api::ExecSyncResponse> {
        let running = self
            .lock()
            .containers
            .get(id)
            .is_some_and(|c| c.state == api::ContainerState::ContainerRunning);
        if !running {
            return Err(not_found("exec sync", id));
        }
        // `true` succeeds, anything else fails: enough for probe tests.
        let ok = cmd.first().is_some_and(|c| c == "true");
        Ok(api::ExecSyncResponse {
            stdout: vec![],
            stderr: vec![],
            exit_code: if ok { 0 } else { 1 },
        })
    }

    async fn pull_image(
        &self,
        image: api::ImageSpec,
        _auth: Option<api::AuthConfig>,
        _sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        self.record(format!("pull_image {}", image.image));
        let failure = self.lock().pull_failures.get(&image.image).cloned();
        if let Some(message) = failure {
            return Err(Error::cri("pull image", tonic::Status::unknown(message)));
        }
        self.add_image(&image.image);
        Ok(self
            .lock()
            .images
            .get(&image.image)
            .cloned()
            .unwrap_or_default())
    }

    async fn list_images(&self) -> Result<Vec<api::Image>> {
        let s = self.lock();
        Ok(s.images
            .iter()
            .map(|(name, id)| api::Image {
                id: id.clone(),
                repo_tags: vec![name.clone()],
                size: 1_000_000,
                ..Default::default()
            })
            .collect())
    }

    async fn image_status(&self, image: api::ImageSpec) -> Result<Option<api::Image>> {
        let s = self.lock();
        Ok(s.images.get(&image.image).map(|id| api::Image {
            id: id.clone(),
            repo_tags: vec![image.image.clone()],
            size: 1_000_000,
            ..Default::default()
        }))
    }
}
