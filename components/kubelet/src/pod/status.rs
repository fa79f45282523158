//! A pod's API status from the runtime's view and the last sync's errors, computed the way
//! the kubelet does: container states with Kubernetes' reasons, restart counts and last
//! states, the phase, and the kubelet-owned conditions.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState as KState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::spec::{host_network, qos_class};
use super::state::{ContainerState, PodRuntimeState};
use crate::clock::from_nanos;

/// The conditions the kubelet owns; others on the pod (DisruptionTarget, readiness gates'
/// conditions) are kept as they are.
pub const OWN_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// Why a container is waiting, from the last sync (`CrashLoopBackOff`, `ErrImagePull`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// Inputs besides the pod and the runtime state.
pub struct StatusInputs<'a> {
    pub runtime: &'a PodRuntimeState,
    /// Per container name: the reason it is waiting after the last sync.
    pub waiting: &'a HashMap<String, Waiting>,
    pub host_ip: Option<String>,
    /// `containerd` for `containerd://<id>`.
    pub runtime_name: &'a str,
    /// All containers are stopped for good (the pod is being deleted or has finished).
    pub terminal: bool,
    pub now: Timestamp,
}

fn time(ns: i64) -> Option<Time> {
    from_nanos(ns).map(Time)
}

fn terminated(c: &ContainerState, runtime_name: &str) -> ContainerStateTerminated {
    let reason = if !c.reason.is_empty() {
        c.reason.clone()
    } else if c.exit_code == 0 {
        "Completed".to_string()
    } else {
        "Error".to_string()
    };
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason),
        message: (!c.message.is_empty()).then(|| c.message.clone()),
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        container_id: Some(format!("{runtime_name}://{}", c.id)),
        signal: None,
    }
}

fn waiting(reason: &str, message: Option<&str>) -> KState {
    KState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..KState::default()
    }
}

fn container_status(
    spec: &Container,
    inputs: &StatusInputs<'_>,
    default_waiting: &str,
    init: bool,
) -> ContainerStatus {
    let latest = inputs.runtime.latest(&spec.name);
    let sync = inputs.waiting.get(&spec.name);
    let spec_image = spec.image.clone().unwrap_or_default();
    let Some(c) = latest else {
        let (reason, message) = match sync {
            Some(w) => (w.reason.as_str(), Some(w.message.as_str())),
            None => (default_waiting, None),
        };
        return ContainerStatus {
            name: spec.name.clone(),
            image: spec_image,
            image_id: String::new(),
            state: Some(waiting(reason, message)),
            ready: false,
            restart_count: 0,
            started: Some(false),
            ..ContainerStatus::default()
        };
    };
    let mut last = inputs
        .runtime
        .previous(&spec.name)
        .filter(|p| p.exited())
        .map(|p| KState {
            terminated: Some(terminated(p, inputs.runtime_name)),
            ..KState::default()
        });
    let mut state = match c.state {
        crate::cri::api::ContainerState::ContainerRunning => KState {
            running: Some(ContainerStateRunning {
                started_at: time(c.started_at),
            }),
            ..KState::default()
        },
        crate::cri::api::ContainerState::ContainerExited => KState {
            terminated: Some(terminated(c, inputs.runtime_name)),
            ..KState::default()
        },
        _ => waiting(default_waiting, None),
    };
    // An exited container that the last sync could not (yet) restart: waiting, with the
    // exited run as the last state.
    if let Some(w) = sync
        && c.exited()
    {
        last = Some(state);
        state = waiting(&w.reason, Some(&w.message));
    }
    let running = c.running();
    let ready = if init {
        c.exited() && c.exit_code == 0
    } else {
        running
    };
    ContainerStatus {
        name: spec.name.clone(),
        image: if c.image.is_empty() {
            spec_image
        } else {
            c.image.clone()
        },
        image_id: c.image_ref.clone(),
        container_id: Some(format!("{}://{}", inputs.runtime_name, c.id)),
        state: Some(state),
        last_state: last,
        ready,
        restart_count: c.restart_count,
        started: Some(running),
        ..ContainerStatus::default()
    }
}

fn terminated_of(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|s| s.terminated.as_ref())
}

fn last_terminated_of(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|s| s.terminated.as_ref())
}

/// Kubernetes' pod phase from the container statuses.
pub fn phase(
    restart_policy: &str,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for s in init {
        let st = s.state.clone().unwrap_or_default();
        if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if st.waiting.is_some() && last_terminated_of(s).is_some_and(|t| t.exit_code != 0) {
            failed_init += 1;
        } else {
            pending_init += 1;
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in app {
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if let Some(t) = last_terminated_of(s) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else {
            waiting += 1;
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        if terminal && running == 0 {
            return if stopped > 0
                && stopped == succeeded
                && pending_init + failed_init + waiting == 0
            {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn names(list: &[String]) -> String {
    format!("[{}]", list.join(" "))
}

/// The pod's status. `old` is the status on the API (for startTime, transition times,
/// and conditions the kubelet does not own).
pub fn compute(pod: &Pod, inputs: &StatusInputs<'_>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let has_init = spec.init_containers.as_ref().is_some_and(|v| !v.is_empty());
    let default_waiting = if has_init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let init: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(c, inputs, default_waiting, true))
        .collect();
    let app: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, inputs, default_waiting, false))
        .collect();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let old_phase = old.phase.clone().unwrap_or_default();
    let phase = if matches!(old_phase.as_str(), "Succeeded" | "Failed") {
        old_phase
    } else {
        phase(&restart_policy, &init, &app, inputs.terminal).to_string()
    };

    let sandbox = inputs.runtime.latest_sandbox();
    let host_ip = inputs.host_ip.clone();
    let pod_ips: Vec<String> = if host_network(pod) {
        host_ip.iter().cloned().collect()
    } else {
        sandbox
            .filter(|s| s.ready)
            .map(|s| s.ips.clone())
            .unwrap_or_default()
    };

    // Conditions.
    let old_conditions = old.conditions.clone().unwrap_or_default();
    let cond = |kind: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let transition = old_conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(inputs.now));
        PodCondition {
            type_: kind.to_string(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time: Some(transition),
            last_probe_time: None,
            observed_generation: None,
        }
    };
    let sandbox_ready =
        sandbox.is_some_and(|s| s.ready && (host_network(pod) || !s.ips.is_empty()));
    let any_app_started = app.iter().any(|s| s.container_id.is_some());
    let incomplete: Vec<String> = init
        .iter()
        .filter(|s| terminated_of(s).is_none_or(|t| t.exit_code != 0))
        .map(|s| s.name.clone())
        .collect();
    let completed = phase == "Succeeded";
    let initialized = if incomplete.is_empty() || any_app_started {
        cond(
            "Initialized",
            true,
            completed.then_some("PodCompleted"),
            None,
        )
    } else {
        cond(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(&incomplete)
            )),
        )
    };
    let unready: Vec<String> = app
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let (ready, reason, message) = match phase.as_str() {
        "Succeeded" => (false, Some("PodCompleted"), None),
        "Failed" => (false, Some("PodFailed"), None),
        _ if unready.is_empty() => (true, None, None),
        _ => (
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                names(&unready)
            )),
        ),
    };
    let mut conditions: Vec<PodCondition> = vec![
        cond("PodReadyToStartContainers", sandbox_ready, None, None),
        initialized,
        cond("Ready", ready, reason, message.clone()),
        cond("ContainersReady", ready, reason, message),
        cond("PodScheduled", true, None, None),
    ];
    // PodScheduled keeps the scheduler's transition time.
    if let Some(s) = old_conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        && let Some(c) = conditions.iter_mut().find(|c| c.type_ == "PodScheduled")
    {
        c.last_transition_time = s.last_transition_time.clone();
    }
    conditions.extend(
        old_conditions
            .iter()
            .filter(|c| !OWN_CONDITIONS.contains(&c.type_.as_str()))
            .cloned(),
    );

    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        host_ip: host_ip.clone(),
        host_ips: host_ip.map(|ip| vec![HostIP { ip }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: old.start_time.clone().or(Some(Time(inputs.now))),
        qos_class: Some(qos_class(pod).as_str().to_string()),
        init_container_statuses: has_init.then_some(init),
        container_statuses: Some(app),
        nominated_node_name: old.nominated_node_name.clone(),
        ..PodStatus::default()
    }
}

/// A pod's container names by kind, for messages.
pub fn container_names(pod: &Pod) -> BTreeMap<String, bool> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.init_containers
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), true))
        .chain(spec.containers.iter().map(|c| (c.name.clone(), false)))
        .collect()
}
