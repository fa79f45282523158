//! The node side of the kubelet: registration, the Lease, the node status, and the pod
//! CIDR (→ CNI config).
//!
//! ```text
//!  register (create, or adopt the existing Node) ─► loop:
//!     every 10 s (1 s until Ready): measure host + CRI status ─► post status if changed,
//!                                   or if the last post is 5 min old
//!     every 10 s:                   renew the Lease
//!     on Node change:               spec.podCIDR ─► write the CNI conflist ─► post soon
//! ```
//!
//! What the pod workers need from here (node IP, pod CIDR, network readiness,
//! allocatable) is published on a watch channel as a [`NodeView`].

pub mod host;
pub mod lease;
pub mod pressure;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus, NodeSystemInfo, Taint};
use kadm_base::process::Shutdown;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cni::{self, CniSettings};
use crate::cri::{self, Runtime};
use crate::error::{Error, Result};
use pressure::{Observations, PressureTracker, Threshold};

/// The node's conditions the kubelet owns.
const OWN_CONDITIONS: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// Parses `key[=value]:Effect` (the kubelet's `--register-with-taints` syntax).
pub fn parse_taint(s: &str) -> std::result::Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?}: expected key[=value]:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "{s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(format!("{s:?}: the key is empty"));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// What the rest of the kubelet needs to know about its node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    /// Empty until the Node is registered.
    pub uid: String,
    pub name: String,
    pub ip: Option<IpAddr>,
    pub pod_cidrs: Vec<String>,
    /// Why pods needing the pod network cannot start yet (None: they can).
    pub network_error: Option<String>,
    pub runtime_ready: bool,
    pub allocatable_cpu_milli: i64,
    pub allocatable_memory: i64,
    pub memory_capacity: i64,
}

/// Settings of the node agent (from the flags).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub hostname: String,
    pub node_ip: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub max_pods: u32,
    pub root_dir: PathBuf,
    pub image_fs_dir: PathBuf,
    pub thresholds: Vec<Threshold>,
    pub pressure_transition: Duration,
    pub update_frequency: Duration,
    pub report_frequency: Duration,
    pub lease_duration_seconds: i32,
    /// Write the CNI conflist from `spec.podCIDR` (`--pod-cidr-from-node`).
    pub cni: Option<CniSettings>,
}

/// Registers the node and keeps its status, lease and CNI config current.
pub struct NodeAgent<R: Runtime, C: Clock> {
    client: Client,
    runtime: Arc<R>,
    clock: C,
    cfg: NodeConfig,
    view: watch::Sender<NodeView>,
    pressure: PressureTracker,
    runtime_version: Option<String>,
    last_report: Option<Instant>,
}

impl<R: Runtime, C: Clock> NodeAgent<R, C> {
    pub fn new(
        client: Client,
        runtime: Arc<R>,
        clock: C,
        cfg: NodeConfig,
    ) -> (Self, watch::Receiver<NodeView>) {
        let (view, rx) = watch::channel(NodeView {
            name: cfg.name.clone(),
            ip: Some(cfg.node_ip),
            network_error: Some("container runtime status check may not have completed yet".into()),
            ..NodeView::default()
        });
        (
            Self {
                client,
                runtime,
                clock,
                cfg,
                view,
                pressure: PressureTracker::default(),
                runtime_version: None,
                last_report: None,
            },
            rx,
        )
    }

    fn api(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: Shutdown) -> Result<()> {
        let mut delay = Duration::from_millis(500);
        let uid = loop {
            match self.register().await {
                Ok(uid) => break uid,
                Err(e) => {
                    tracing::warn!(node = %self.cfg.name, error = %e, "unable to register the node; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.wait() => return Ok(()),
                    }
                    delay = (delay * 2).min(Duration::from_secs(7));
                }
            }
        };
        tracing::info!(node = %self.cfg.name, %uid, "node registered");
        self.view.send_modify(|v| v.uid = uid.clone());

        let mut lease = lease::LeaseKeeper::new(
            self.client.clone(),
            &self.cfg.name,
            self.cfg.lease_duration_seconds,
        );
        let mut lease_tick = tokio::time::interval(lease.interval());
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_status = Instant::now();
        let mut nodes = watcher(
            self.api(),
            watcher::Config::default().fields(&format!("metadata.name={}", self.cfg.name)),
        )
        .default_backoff()
        .applied_objects()
        .boxed();

        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                _ = lease_tick.tick() => {
                    if let Err(e) = lease.renew(&uid, self.clock.now()).await {
                        tracing::warn!(error = %e, "failed to renew the node lease");
                    }
                }
                () = tokio::time::sleep_until(next_status) => {
                    let ready = match self.sync_status().await {
                        Ok(ready) => ready,
                        Err(e) => {
                            tracing::warn!(error = %e, "failed to update the node status");
                            false
                        }
                    };
                    // Until Ready, look again every second (the kubelet's fast status
                    // updates after start), then at the update frequency.
                    let wait = if ready { self.cfg.update_frequency } else { Duration::from_secs(1) };
                    next_status = Instant::now() + wait;
                }
                ev = nodes.next() => match ev {
                    Some(Ok(node)) => {
                        if self.on_node(&node) {
                            next_status = Instant::now();
                        }
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "node watch error"),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Creates the Node, or takes over an existing one (a restart, a re-registration);
    /// returns its uid.
    async fn register(&self) -> Result<String> {
        let api = self.api();
        let node = status::initial_node(
            &self.cfg.name,
            &self.cfg.hostname,
            &self.cfg.labels,
            &self.cfg.taints,
        );
        let object = format!("node {}", self.cfg.name);
        match api.create(&PostParams::default(), &node).await {
            Ok(n) => Ok(n.metadata.uid.unwrap_or_default()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = api
                    .get(&self.cfg.name)
                    .await
                    .map_err(|e| Error::api("get", &object, e))?;
                // Keep the labels the kubelet owns current (hostname, os, arch).
                let want = node.metadata.labels.unwrap_or_default();
                let have = existing.metadata.labels.clone().unwrap_or_default();
                let stale: BTreeMap<&String, &String> = want
                    .iter()
                    .filter(|(k, v)| have.get(*k) != Some(*v))
                    .collect();
                if !stale.is_empty() {
                    api.patch(
                        &self.cfg.name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"labels": stale}})),
                    )
                    .await
                    .map_err(|e| Error::api("update labels of", &object, e))?;
                }
                Ok(existing.metadata.uid.unwrap_or_default())
            }
            Err(e) => Err(Error::api("register", object, e)),
        }
    }

    /// Takes the pod CIDR from the Node; returns whether something changed.
    fn on_node(&mut self, node: &Node) -> bool {
        let Some(settings) = &self.cfg.cni else {
            return false;
        };
        let spec = node.spec.clone().unwrap_or_default();
        let cidrs = match spec.pod_cidrs {
            Some(v) if !v.is_empty() => v,
            _ => spec.pod_cidr.into_iter().collect(),
        };
        if cidrs.is_empty() || self.view.borrow().pod_cidrs == cidrs {
            return false;
        }
        match cni::write(settings, &cidrs) {
            Ok(_) => {
                tracing::info!(pod_cidrs = ?cidrs, "pod CIDR set");
                self.view.send_modify(|v| v.pod_cidrs = cidrs);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write the CNI config");
                false
            }
        }
    }

    fn observe(&self) -> Result<Observations> {
        Ok(Observations {
            memory: host::memory()?,
            nodefs: host::filesystem(&self.cfg.root_dir)?,
            imagefs: host::filesystem(&self.cfg.image_fs_dir)?,
            pids: host::pids()?,
        })
    }

    /// The runtime's errors for the Ready condition, the network's among them.
    async fn runtime_errors(&mut self) -> (Vec<String>, Option<String>, bool) {
        if self.runtime_version.is_none()
            && let Ok(v) = self.runtime.version().await
        {
            self.runtime_version = Some(format!("{}://{}", v.runtime_name, v.runtime_version));
        }
        match self.runtime.status().await {
            Err(e) => {
                tracing::warn!(error = %e, "container runtime status check failed");
                let down = "container runtime is down".to_string();
                (vec![down.clone()], Some(down), false)
            }
            Ok(s) => {
                let mut errors = Vec::new();
                let rt = cri::find_condition(&s, cri::RUNTIME_READY);
                let runtime_ready = rt.is_some_and(|c| c.status);
                if !runtime_ready {
                    errors.push(format!(
                        "container runtime not ready: {}",
                        cri::condition_string(rt)
                    ));
                }
                let net = cri::find_condition(&s, cri::NETWORK_READY);
                let network_error = (!net.is_some_and(|c| c.status)).then(|| {
                    format!(
                        "container runtime network not ready: {}",
                        cri::condition_string(net)
                    )
                });
                errors.extend(network_error.clone());
                (errors, network_error, runtime_ready)
            }
        }
    }

    /// Measures, compares with the Node, posts when needed; returns whether Ready.
    async fn sync_status(&mut self) -> Result<bool> {
        let now = self.clock.now();
        let observed = match self.observe() {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::warn!(error = %e, "cannot measure the host");
                None
            }
        };
        let pressure = self.pressure.update(
            observed
                .map(|o| pressure::observe(&self.cfg.thresholds, &o))
                .unwrap_or_default(),
            now,
            self.cfg.pressure_transition,
        );
        let (errors, network_error, runtime_ready) = self.runtime_errors().await;
        let images = match self.runtime.list_images().await {
            Ok(l) => status::images(&l),
            Err(_) => Vec::new(),
        };
        let node = self
            .api()
            .get(&self.cfg.name)
            .await
            .map_err(|e| Error::api("get", format!("node {}", self.cfg.name), e))?;
        self.on_node(&node);

        let mem = observed.map(|o| o.memory.total).unwrap_or_default();
        let disk = observed.map(|o| o.nodefs.capacity).unwrap_or_default();
        let capacity = status::Capacity {
            cpus: host::cpu_count(),
            memory_bytes: mem,
            ephemeral_storage_bytes: disk,
            pods: self.cfg.max_pods,
            memory_reserved: pressure::reserved(
                &self.cfg.thresholds,
                pressure::Signal::MemoryAvailable,
                mem,
            ),
            ephemeral_storage_reserved: pressure::reserved(
                &self.cfg.thresholds,
                pressure::Signal::NodeFsAvailable,
                disk,
            ),
        };
        let facts = status::Facts {
            internal_ip: self.cfg.node_ip.to_string(),
            hostname: self.cfg.hostname.clone(),
            capacity: capacity.clone(),
            info: self.system_info(),
            images,
        };
        let old = node.status.clone().unwrap_or_default();
        let old_conditions = old.conditions.clone().unwrap_or_default();
        let conditions = status::conditions(&old_conditions, pressure, &errors, now);
        let new = status::node_status(&facts, conditions);
        let old_part = reported_part(&old);
        let changed = status::without_heartbeats(&old_part) != status::without_heartbeats(&new);
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= self.cfg.report_frequency);
        if changed || due {
            let to_json = |s: &NodeStatus| {
                serde_json::to_value(s).map_err(|source| Error::Json {
                    what: "node status",
                    source,
                })
            };
            let patch = crate::patch::two_way(
                &to_json(&old_part)?,
                &to_json(&new)?,
                crate::patch::status_merge_keys,
            );
            self.api()
                .patch_status(
                    &self.cfg.name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({ "status": patch })),
                )
                .await
                .map_err(|e| {
                    Error::api("update status of", format!("node {}", self.cfg.name), e)
                })?;
            self.last_report = Some(Instant::now());
            tracing::debug!(changed, "node status posted");
        }
        let ready = errors.is_empty();
        let allocatable = capacity.allocatable();
        let quantity = |k: &str| {
            allocatable
                .get(k)
                .and_then(|q| kadm_apimachinery::quantity::Quantity::parse(&q.0).ok())
        };
        self.view.send_if_modified(|v| {
            let next = NodeView {
                network_error: network_error.clone(),
                runtime_ready,
                allocatable_cpu_milli: quantity("cpu").map_or(0, |q| q.milli_value()),
                allocatable_memory: quantity("memory").map_or(0, |q| q.value()),
                memory_capacity: i64::try_from(mem).unwrap_or(i64::MAX),
                ..v.clone()
            };
            let modified = *v != next;
            *v = next;
            modified
        });
        Ok(ready)
    }

    fn system_info(&self) -> NodeSystemInfo {
        NodeSystemInfo {
            architecture: host::go_arch().to_string(),
            boot_id: host::boot_id().unwrap_or_default(),
            container_runtime_version: self.runtime_version.clone().unwrap_or_default(),
            kernel_version: host::kernel_version().unwrap_or_default(),
            kube_proxy_version: String::new(),
            kubelet_version: kadm_base::git_version(),
            machine_id: host::machine_id(),
            operating_system: "linux".to_string(),
            os_image: host::os_image(),
            system_uuid: host::system_uuid(),
            ..NodeSystemInfo::default()
        }
    }
}

/// The part of a Node's status the kubelet writes (its own conditions only).
fn reported_part(s: &NodeStatus) -> NodeStatus {
    NodeStatus {
        addresses: s.addresses.clone(),
        allocatable: s.allocatable.clone(),
        capacity: s.capacity.clone(),
        conditions: s.conditions.as_ref().map(|cs| {
            cs.iter()
                .filter(|c| OWN_CONDITIONS.contains(&c.type_.as_str()))
                .cloned()
                .collect()
        }),
        images: s.images.clone(),
        node_info: s.node_info.clone(),
        ..NodeStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_like_the_kubelet_flag() {
        let t = parse_taint("node-role.kubernetes.io/control-plane:NoSchedule").expect("taint");
        assert_eq!(t.key, "node-role.kubernetes.io/control-plane");
        assert_eq!(t.value, None);
        assert_eq!(t.effect, "NoSchedule");
        let t = parse_taint("dedicated=gpu:NoExecute").expect("taint");
        assert_eq!(t.value.as_deref(), Some("gpu"));
        assert!(parse_taint("nokey").is_err());
        assert!(parse_taint(":NoSchedule").is_err());
        assert!(parse_taint("a=b:Never").is_err());
    }
}
