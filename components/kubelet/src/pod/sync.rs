//! One sync of one pod: compare the pod's spec with what the runtime has, act (sandbox,
//! init containers in order, app containers by restart policy, with crash and image-pull
//! back-off), and compute the status to report. The pod worker calls this whenever the
//! pod or its containers change; every call is idempotent.
//!
//! ```text
//!  deleting ─► stop containers (grace) + sandbox ─► status (terminal) ─► remove all
//!  no usable sandbox ─► stop what is left ─► RunPodSandbox (attempt + 1)
//!  init containers: a failed one restarts (or fails the pod with Never); a running one
//!                   is waited for; else the next one starts
//!  app containers:  running → kept (replaced if its spec changed); exited → restarted
//!                   by restartPolicy after back-off; all done → stop the sandbox
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodStatus, Secret};
use kube::Client;
use kube::api::Api;

use super::backoff::{Backoff, go_duration};
use super::env::{self, EnvInputs, Sources};
use super::images::{self, PullDecision};
use super::labels;
use super::spec::{self, PodSettings, host_network};
use super::state::{ContainerState, PodRuntimeState};
use super::status::{self, StatusInputs, Waiting};
use crate::clock::Clock;
use crate::cri::{Runtime, api};
use crate::error::{Error, Result};
use crate::events::{EventType, Recorder};
use crate::node::NodeView;

/// Where ConfigMaps and Secrets for environments come from.
#[derive(Clone)]
pub enum ObjectSource {
    Api(Client),
    /// Fixed data (unit tests): (namespace, name) → data.
    Fixed {
        config_maps: HashMap<(String, String), BTreeMap<String, String>>,
        secrets: HashMap<(String, String), BTreeMap<String, String>>,
    },
}

impl ObjectSource {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        match self {
            ObjectSource::Api(c) => {
                let cm = Api::<ConfigMap>::namespaced(c.clone(), ns)
                    .get_opt(name)
                    .await
                    .map_err(|e| Error::api("get", format!("configmap {ns}/{name}"), e))?;
                Ok(cm.map(|cm| {
                    let mut d = cm.data.unwrap_or_default();
                    for (k, v) in cm.binary_data.unwrap_or_default() {
                        d.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                    d
                }))
            }
            ObjectSource::Fixed { config_maps, .. } => Ok(config_maps
                .get(&(ns.to_string(), name.to_string()))
                .cloned()),
        }
    }

    async fn secret(&self, ns: &str, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        match self {
            ObjectSource::Api(c) => {
                let s = Api::<Secret>::namespaced(c.clone(), ns)
                    .get_opt(name)
                    .await
                    .map_err(|e| Error::api("get", format!("secret {ns}/{name}"), e))?;
                Ok(s.map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect()
                }))
            }
            ObjectSource::Fixed { secrets, .. } => {
                Ok(secrets.get(&(ns.to_string(), name.to_string())).cloned())
            }
        }
    }
}

/// What every pod's sync shares.
pub struct Syncer<R: Runtime, C: Clock> {
    pub runtime: std::sync::Arc<R>,
    pub clock: C,
    pub settings: PodSettings,
    pub recorder: Recorder,
    pub objects: ObjectSource,
    /// `containerd` in `containerd://<id>`.
    pub runtime_name: String,
    crash_backoff: Mutex<Backoff>,
    image_backoff: Mutex<Backoff>,
    /// Image pulls one at a time (the kubelet's serializeImagePulls).
    pulls: tokio::sync::Semaphore,
    /// The last pull error per back-off key, for ImagePullBackOff messages.
    pull_errors: Mutex<HashMap<String, String>>,
}

/// The result of one sync.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: PodStatus,
    /// Sync again after this long at the latest (a back-off ends, a retry is due).
    pub retry_after: Option<Duration>,
    /// The pod was being deleted and nothing of it is left in the runtime.
    pub removed: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `name_namespace(uid)`, as Kubernetes formats a pod in messages.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

fn field_path(init: bool, name: &str) -> Option<String> {
    Some(if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    })
}

/// The grace period to stop a pod's containers with.
pub fn grace_period(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0)
}

fn should_restart(policy: &str, c: &ContainerState) -> bool {
    if c.running() {
        return false;
    }
    if !c.exited() {
        return true;
    }
    match policy {
        "Never" => false,
        "OnFailure" => c.exit_code != 0,
        _ => true,
    }
}

/// What one sync accumulates.
#[derive(Default)]
struct Pass {
    waiting: HashMap<String, Waiting>,
    retry: Option<Duration>,
    /// Whether this pass created or stopped a container, i.e. whether the state read at
    /// its start is stale (a steady pod's sync then reads the runtime only once).
    changed_runtime: bool,
}

impl Pass {
    fn retry_in(&mut self, d: Duration) {
        self.retry = Some(self.retry.map_or(d, |r| r.min(d)));
    }

    /// Records why container `name` cannot run (its status' waiting reason).
    fn wait(&mut self, name: &str, reason: &str, message: String) {
        self.waiting.insert(
            name.to_string(),
            Waiting {
                reason: reason.to_string(),
                message,
            },
        );
    }
}

impl<R: Runtime, C: Clock> Syncer<R, C> {
    pub fn new(
        runtime: std::sync::Arc<R>,
        clock: C,
        settings: PodSettings,
        recorder: Recorder,
        objects: ObjectSource,
        crash_backoff: (Duration, Duration),
    ) -> Self {
        Self {
            runtime,
            clock,
            settings,
            recorder,
            objects,
            runtime_name: "containerd".into(),
            crash_backoff: Mutex::new(Backoff::new(crash_backoff.0, crash_backoff.1)),
            image_backoff: Mutex::new(Backoff::new(
                Duration::from_secs(10),
                Duration::from_secs(300),
            )),
            pulls: tokio::sync::Semaphore::new(1),
            pull_errors: Mutex::default(),
        }
    }

    /// Forgets a pod's back-off entries (it is gone).
    pub fn forget(&self, pod_uid: &str) {
        lock(&self.crash_backoff).forget_prefix(&format!("{pod_uid}_"));
        lock(&self.image_backoff).forget_prefix(&format!("{pod_uid}_"));
        lock(&self.pull_errors).retain(|k, _| !k.starts_with(&format!("{pod_uid}_")));
        let now = self.clock.now();
        lock(&self.crash_backoff).gc(now);
        lock(&self.image_backoff).gc(now);
    }

    fn event(
        &self,
        pod: &Pod,
        init: Option<(bool, &str)>,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        let path = init.and_then(|(i, n)| field_path(i, n));
        if kind == EventType::Warning {
            tracing::info!(pod = %format_pod(pod), container = ?init.map(|(_, n)| n), reason, %message, "pod event");
        }
        self.recorder.pod_event(pod, path, kind, reason, message);
    }

    /// Syncs `pod` once against the runtime.
    pub async fn sync(&self, pod: &Pod, node: &NodeView) -> Result<Outcome> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = PodRuntimeState::gather(self.runtime.as_ref(), &uid).await?;
        let spec_ = pod.spec.clone().unwrap_or_default();
        let policy = spec_
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let old_phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let mut pass = Pass::default();

        if pod.metadata.deletion_timestamp.is_some() {
            self.kill_pod(pod, &state, grace_period(pod)).await?;
            let stopped = PodRuntimeState::gather(self.runtime.as_ref(), &uid).await?;
            let status = self.status(pod, &stopped, &pass, node, true);
            self.remove_pod(pod, &stopped).await?;
            self.forget(&uid);
            return Ok(Outcome {
                status,
                retry_after: None,
                removed: true,
            });
        }
        if matches!(old_phase.as_str(), "Succeeded" | "Failed") {
            // A finished pod keeps its exited containers (logs) but not its sandbox.
            return self.finish(pod, state, &pass, node).await;
        }

        // The sandbox.
        let sandbox_ok = state
            .latest_sandbox()
            .is_some_and(|s| s.ready && (host_network(pod) || !s.ips.is_empty()));
        if !sandbox_ok {
            let ran_before = !state.containers.is_empty();
            if policy == "Never" && ran_before {
                // Kubernetes does not recreate the sandbox of a Never pod whose
                // containers ran: the pod ends with what they did.
                return self.finish(pod, state, &pass, node).await;
            }
            if !host_network(pod)
                && let Some(err) = &node.network_error
            {
                self.event(
                    pod,
                    None,
                    EventType::Warning,
                    "NetworkNotReady",
                    format!("network is not ready: {err}"),
                );
                pass.retry_in(Duration::from_secs(2));
                return Ok(Outcome {
                    status: self.status(pod, &state, &pass, node, false),
                    retry_after: pass.retry,
                    removed: false,
                });
            }
            let attempt = state.latest_sandbox().map_or(0, |s| s.attempt + 1);
            if state.latest_sandbox().is_some() {
                self.event(
                    pod,
                    None,
                    EventType::Normal,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.".into(),
                );
                self.kill_pod(pod, &state, grace_period(pod)).await?;
            }
            let config = spec::sandbox_config(pod, attempt, &self.settings);
            if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
                tracing::warn!(dir = %config.log_directory, error = %e, "cannot create the pod log directory");
            }
            let handler = spec_.runtime_class_name.clone().unwrap_or_default();
            if let Err(e) = self.runtime.run_pod_sandbox(config, handler).await {
                self.event(
                    pod,
                    None,
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                pass.retry_in(Duration::from_secs(5));
                return Ok(Outcome {
                    status: self.status(pod, &state, &pass, node, false),
                    retry_after: pass.retry,
                    removed: false,
                });
            }
            state = PodRuntimeState::gather(self.runtime.as_ref(), &uid).await?;
        }
        let Some(sandbox) = state.latest_sandbox().cloned() else {
            pass.retry_in(Duration::from_secs(1));
            return Ok(Outcome {
                status: self.status(pod, &state, &pass, node, false),
                retry_after: pass.retry,
                removed: false,
            });
        };

        // Init containers, in order.
        let init = spec_.init_containers.clone().unwrap_or_default();
        let app_started = spec_
            .containers
            .iter()
            .any(|c| state.latest(&c.name).is_some());
        if !app_started && !init.is_empty() {
            match next_init(&init, &state) {
                InitStep::Wait => {}
                InitStep::Failed(_) if policy == "Never" => {
                    return self.finish(pod, state, &pass, node).await;
                }
                InitStep::Failed(i) | InitStep::Start(i) => {
                    self.start_container(pod, &init[i], true, &state, &sandbox, node, &mut pass)
                        .await?;
                }
                InitStep::Done => {
                    self.start_app_containers(pod, &policy, &state, &sandbox, node, &mut pass)
                        .await?;
                }
            }
        } else {
            self.start_app_containers(pod, &policy, &state, &sandbox, node, &mut pass)
                .await?;
        }

        if pass.changed_runtime {
            state = PodRuntimeState::gather(self.runtime.as_ref(), &uid).await?;
        }
        // Everything finished for good: the sandbox goes, the pod is terminal.
        let all_done = !spec_.containers.is_empty()
            && spec_.containers.iter().all(|c| {
                state
                    .latest(&c.name)
                    .is_some_and(|s| s.exited() && !should_restart(&policy, s))
            });
        if all_done {
            return self.finish(pod, state, &pass, node).await;
        }
        Ok(Outcome {
            status: self.status(pod, &state, &pass, node, false),
            retry_after: pass.retry,
            removed: false,
        })
    }

    /// Ends a pod that runs no more: stops what still runs (its exited containers stay, for
    /// logs) and reports the terminal status.
    async fn finish(
        &self,
        pod: &Pod,
        mut state: PodRuntimeState,
        pass: &Pass,
        node: &NodeView,
    ) -> Result<Outcome> {
        // A finished pod is synced again every resync: read the runtime once when there is
        // nothing left to stop.
        if state.running().next().is_some() || state.sandboxes.iter().any(|s| s.ready) {
            self.kill_pod(pod, &state, grace_period(pod)).await?;
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            state = PodRuntimeState::gather(self.runtime.as_ref(), uid).await?;
        }
        Ok(Outcome {
            status: self.status(pod, &state, pass, node, true),
            retry_after: None,
            removed: false,
        })
    }

    fn status(
        &self,
        pod: &Pod,
        state: &PodRuntimeState,
        pass: &Pass,
        node: &NodeView,
        terminal: bool,
    ) -> PodStatus {
        status::compute(
            pod,
            &StatusInputs {
                runtime: state,
                waiting: &pass.waiting,
                host_ip: node.ip.map(|ip| ip.to_string()),
                runtime_name: &self.runtime_name,
                terminal,
                now: self.clock.now(),
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_app_containers(
        &self,
        pod: &Pod,
        policy: &str,
        state: &PodRuntimeState,
        sandbox: &super::state::SandboxState,
        node: &NodeView,
        pass: &mut Pass,
    ) -> Result<()> {
        let containers = pod.spec.clone().unwrap_or_default().containers;
        for c in &containers {
            match state.latest(&c.name) {
                Some(s) if s.running() => {
                    let want = format!("{:x}", labels::container_hash(c));
                    if !s.hash.is_empty() && s.hash != want {
                        self.event(
                            pod,
                            Some((false, &c.name)),
                            EventType::Normal,
                            "Killing",
                            format!("Container {} definition changed, will be restarted", c.name),
                        );
                        pass.changed_runtime = true;
                        self.runtime
                            .stop_container(&s.id, grace_period(pod))
                            .await?;
                        let fresh = PodRuntimeState::gather(
                            self.runtime.as_ref(),
                            pod.metadata.uid.as_deref().unwrap_or_default(),
                        )
                        .await?;
                        self.start_container(pod, c, false, &fresh, sandbox, node, pass)
                            .await?;
                    }
                }
                Some(s) if !should_restart(policy, s) => {}
                _ => {
                    self.start_container(pod, c, false, state, sandbox, node, pass)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Starts (or restarts) one container, honouring back-off; failures become the
    /// container's waiting reason.
    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &self,
        pod: &Pod,
        c: &Container,
        init: bool,
        state: &PodRuntimeState,
        sandbox: &super::state::SandboxState,
        node: &NodeView,
        pass: &mut Pass,
    ) -> Result<()> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let latest = state.latest(&c.name);
        let now = self.clock.now();
        let hash = format!("{:x}", labels::container_hash(c));
        let key = format!("{uid}_{}_{hash}", c.name);

        // Crash back-off, from the last run's finish.
        if let Some(l) = latest.filter(|l| l.exited())
            && let Some(finished) = crate::clock::from_nanos(l.finished_at)
        {
            let remaining = lock(&self.crash_backoff).remaining(&key, finished, now);
            if let Some(rem) = remaining {
                let period = lock(&self.crash_backoff).get(&key);
                self.event(
                    pod,
                    Some((init, &c.name)),
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {} in pod {}",
                        c.name,
                        format_pod(pod)
                    ),
                );
                pass.wait(
                    &c.name,
                    "CrashLoopBackOff",
                    format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(period),
                        c.name,
                        format_pod(pod)
                    ),
                );
                pass.retry_in(rem);
                return Ok(());
            }
            lock(&self.crash_backoff).next(&key, finished, now);
        }
        let restart_count = latest.map_or(0, |l| l.restart_count + 1);

        // The image.
        let spec_image = c.image.clone().unwrap_or_default();
        let image = match images::with_default_tag(&spec_image) {
            Ok(i) => i,
            Err(msg) => {
                self.event(
                    pod,
                    Some((init, &c.name)),
                    EventType::Warning,
                    "InspectFailed",
                    msg.clone(),
                );
                self.event(
                    pod,
                    Some((init, &c.name)),
                    EventType::Warning,
                    "Failed",
                    "Error: InvalidImageName".into(),
                );
                pass.wait(&c.name, "InvalidImageName", msg);
                return Ok(());
            }
        };
        let image_ref = match self
            .ensure_image(pod, c, init, &image, &spec_image, pass)
            .await?
        {
            Some(r) => r,
            None => return Ok(()),
        };

        // The environment.
        let (cm_names, secret_names) = env::referenced(pod);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut config_maps: Sources = HashMap::new();
        for n in cm_names {
            let v = self.objects.config_map(&ns, &n).await?;
            config_maps.insert(n, v);
        }
        let mut secrets: Sources = HashMap::new();
        for n in secret_names {
            let v = self.objects.secret(&ns, &n).await?;
            secrets.insert(n, v);
        }
        let host_ips: Vec<String> = node.ip.iter().map(|i| i.to_string()).collect();
        let pod_ips = if host_network(pod) {
            host_ips.clone()
        } else {
            sandbox.ips.clone()
        };
        let env = match env::resolve(
            c,
            &EnvInputs {
                pod,
                host_ips: &host_ips,
                pod_ips: &pod_ips,
                config_maps: &config_maps,
                secrets: &secrets,
                node_cpu_milli: node.allocatable_cpu_milli,
                node_memory: node.allocatable_memory,
            },
        ) {
            Ok(e) => e,
            Err(msg) => {
                self.event(
                    pod,
                    Some((init, &c.name)),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                pass.wait(&c.name, "CreateContainerConfigError", msg);
                pass.retry_in(Duration::from_secs(10));
                return Ok(());
            }
        };

        let sandbox_config = spec::sandbox_config(pod, sandbox.attempt, &self.settings);
        let config = spec::container_config(
            pod,
            c,
            restart_count,
            &image_ref,
            &env,
            node.memory_capacity,
        );
        let log_dir = std::path::Path::new(&sandbox_config.log_directory).join(&c.name);
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            tracing::warn!(dir = %log_dir.display(), error = %e, "cannot create the container log directory");
        }
        pass.changed_runtime = true;
        let id = match self
            .runtime
            .create_container(&sandbox.id, config, sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let msg = e.to_string();
                self.event(
                    pod,
                    Some((init, &c.name)),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                pass.wait(&c.name, "CreateContainerError", msg);
                pass.retry_in(Duration::from_secs(10));
                return Ok(());
            }
        };
        self.event(
            pod,
            Some((init, &c.name)),
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = self.runtime.start_container(&id).await {
            let msg = e.to_string();
            self.event(
                pod,
                Some((init, &c.name)),
                EventType::Warning,
                "Failed",
                format!("Error: {msg}"),
            );
            pass.wait(&c.name, "RunContainerError", msg);
            pass.retry_in(Duration::from_secs(1));
            return Ok(());
        }
        self.event(
            pod,
            Some((init, &c.name)),
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        self.prune_dead(state, &c.name).await;
        Ok(())
    }

    /// Keeps one dead container per name (for `logs --previous`); older ones go.
    async fn prune_dead(&self, state: &PodRuntimeState, name: &str) {
        // `state` predates the new container: its newest dead one becomes "previous".
        for old in state
            .containers
            .iter()
            .filter(|c| c.name == name && !c.running())
            .skip(1)
        {
            if let Err(e) = self.runtime.remove_container(&old.id).await {
                tracing::debug!(container = %old.id, error = %e, "cannot remove a dead container");
            }
        }
    }

    /// Makes sure the image is there by the pull policy; `None` when the container cannot
    /// start (the waiting reason is recorded).
    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        init: bool,
        image: &str,
        spec_image: &str,
        pass: &mut Pass,
    ) -> Result<Option<String>> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec_ = api::ImageSpec {
            image: image.to_string(),
            user_specified_image: spec_image.to_string(),
            ..Default::default()
        };
        let present = self.runtime.image_status(spec_.clone()).await?;
        let policy = images::effective_policy(c.image_pull_policy.as_deref(), spec_image);
        let at = Some((init, c.name.as_str()));
        match images::decide(&policy, present.is_some()) {
            PullDecision::UsePresent => {
                self.event(
                    pod,
                    at,
                    EventType::Normal,
                    "Pulled",
                    format!("Container image {spec_image:?} already present on machine"),
                );
                Ok(present.map(|i| i.id))
            }
            PullDecision::NeverPull => {
                let msg = format!(
                    "Container image {spec_image:?} is not present with pull policy of Never"
                );
                self.event(
                    pod,
                    at,
                    EventType::Warning,
                    "ErrImageNeverPull",
                    msg.clone(),
                );
                self.event(
                    pod,
                    at,
                    EventType::Warning,
                    "Failed",
                    "Error: ErrImageNeverPull".into(),
                );
                pass.wait(&c.name, "ErrImageNeverPull", msg);
                pass.retry_in(Duration::from_secs(10));
                Ok(None)
            }
            PullDecision::Pull => {
                let key = format!("{uid}_{spec_image}");
                let now = self.clock.now();
                let remaining = lock(&self.image_backoff).remaining_since_update(&key, now);
                if let Some(rem) = remaining {
                    let last = lock(&self.pull_errors)
                        .get(&key)
                        .cloned()
                        .unwrap_or_default();
                    self.event(
                        pod,
                        at,
                        EventType::Normal,
                        "BackOff",
                        format!("Back-off pulling image {spec_image:?}"),
                    );
                    self.event(
                        pod,
                        at,
                        EventType::Warning,
                        "Failed",
                        "Error: ImagePullBackOff".into(),
                    );
                    pass.wait(
                        &c.name,
                        "ImagePullBackOff",
                        format!("Back-off pulling image {spec_image:?}: ErrImagePull: {last}"),
                    );
                    pass.retry_in(rem);
                    return Ok(None);
                }
                self.event(
                    pod,
                    at,
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image {spec_image:?}"),
                );
                let waited_from = std::time::Instant::now();
                let _permit = self.pulls.acquire().await;
                let started = std::time::Instant::now();
                let sandbox_config = None;
                match self
                    .runtime
                    .pull_image(spec_.clone(), None, sandbox_config)
                    .await
                {
                    Ok(r) => {
                        lock(&self.image_backoff).reset(&key);
                        lock(&self.pull_errors).remove(&key);
                        let size = self
                            .runtime
                            .image_status(spec_)
                            .await
                            .ok()
                            .flatten()
                            .map_or(0, |i| i.size);
                        self.event(
                            pod,
                            at,
                            EventType::Normal,
                            "Pulled",
                            format!(
                                "Successfully pulled image {spec_image:?} in {} ({} including waiting). Image size: {size} bytes.",
                                go_seconds(started.elapsed()),
                                go_seconds(waited_from.elapsed())
                            ),
                        );
                        Ok(Some(r))
                    }
                    Err(e) => {
                        let msg = match &e {
                            Error::Cri { status, .. } => status.message().to_string(),
                            other => other.to_string(),
                        };
                        lock(&self.image_backoff).next(&key, now, now);
                        lock(&self.pull_errors).insert(key, msg.clone());
                        self.event(
                            pod,
                            at,
                            EventType::Warning,
                            "Failed",
                            format!("Failed to pull image {spec_image:?}: {msg}"),
                        );
                        self.event(
                            pod,
                            at,
                            EventType::Warning,
                            "Failed",
                            "Error: ErrImagePull".into(),
                        );
                        pass.wait(&c.name, "ErrImagePull", msg);
                        pass.retry_in(Duration::from_secs(1));
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Stops every running container (with `grace` seconds) and every ready sandbox.
    pub async fn kill_pod(&self, pod: &Pod, state: &PodRuntimeState, grace: i64) -> Result<()> {
        let names = status::container_names(pod);
        let stops = state.running().map(|c| {
            let init = names.get(&c.name).copied().unwrap_or(false);
            self.event(
                pod,
                Some((init, &c.name)),
                EventType::Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            );
            let id = c.id.clone();
            async move {
                match self.runtime.stop_container(&id, grace).await {
                    Err(e) if !e.is_not_found() => Err(e),
                    _ => Ok(()),
                }
            }
        });
        for r in futures::future::join_all(stops).await {
            r?;
        }
        for sb in state.sandboxes.iter().filter(|s| s.ready) {
            match self.runtime.stop_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes a stopped pod's containers, sandboxes and cgroup.
    pub async fn remove_pod(&self, pod: &Pod, state: &PodRuntimeState) -> Result<()> {
        self.remove_all(state).await?;
        if self.settings.cgroup_driver == crate::options::CgroupDriver::Cgroupfs {
            super::cgroups::remove_pod_cgroup(&spec::cgroup_parent(pod, &self.settings));
        }
        Ok(())
    }

    /// Removes a stopped pod's containers and sandboxes.
    pub async fn remove_all(&self, state: &PodRuntimeState) -> Result<()> {
        for c in &state.containers {
            match self.runtime.remove_container(&c.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        for sb in &state.sandboxes {
            match self.runtime.stop_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
            match self.runtime.remove_pod_sandbox(&sb.id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Go's `time.Duration` print of a pull time (`1.234s`, `313ms`).
fn go_seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// What to do about init containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitStep {
    /// One is running: wait for it.
    Wait,
    /// Init container `i` failed (restart it, or fail the pod under Never).
    Failed(usize),
    /// Start init container `i`.
    Start(usize),
    /// All succeeded: start the app containers.
    Done,
}

fn next_init(init: &[Container], state: &PodRuntimeState) -> InitStep {
    for (i, c) in init.iter().enumerate().rev() {
        if state
            .latest(&c.name)
            .is_some_and(|s| s.exited() && s.exit_code != 0)
        {
            return InitStep::Failed(i);
        }
    }
    for (i, c) in init.iter().enumerate().rev() {
        if let Some(s) = state.latest(&c.name) {
            if s.running() {
                return InitStep::Wait;
            }
            if s.exited() && s.exit_code == 0 {
                return if i + 1 < init.len() {
                    InitStep::Start(i + 1)
                } else {
                    InitStep::Done
                };
            }
            // Created but never started: start it (again).
            return InitStep::Start(i);
        }
    }
    InitStep::Start(0)
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
