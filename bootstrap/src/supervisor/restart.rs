//! Restarting one component of a running supervisor from outside it (`kadm secrets
//! rotate-key` after changing the apiserver's encryption config).
//!
//! The supervisor has no control channel: it restarts a component whose process exits. So a
//! restart is a SIGTERM to the component's process group — only once the recorded pid is
//! proven to be the recorded process (its kernel start time) — and then a wait until the
//! state file shows a new process that passed its readiness probe.

use std::path::Path;
use std::time::{Duration, Instant};

use super::detach::is_recorded_component;
use super::process::{KillSignal, signal_group};
use super::state::{ComponentPhase, is_supervisor_process, read_state};
use super::{Error, Result};

const POLL: Duration = Duration::from_millis(200);

/// Stops `component` so the supervisor starts it again; returns the pid it stopped.
pub fn restart_component(run_dir: &Path, component: &str) -> Result<u32> {
    let state = read_state(run_dir)?;
    if !is_supervisor_process(state.pid) {
        return Err(Error::NotRunning(format!(
            "the kadm supervisor (pid {}) is not running; start the control plane with `kadm init`",
            state.pid
        )));
    }
    let c = state
        .components
        .iter()
        .find(|c| c.name == component)
        .ok_or_else(|| {
            Error::NotRunning(format!(
                "the kadm supervisor runs no component named {component}"
            ))
        })?;
    let pid = c
        .pid
        .filter(|&p| is_recorded_component(p, c))
        .ok_or_else(|| {
            Error::NotRunning(format!(
                "{component} is not running (state {:?}); look at its log and retry",
                c.state
            ))
        })?;
    tracing::info!(component, pid, "restarting component");
    signal_group(pid, KillSignal::Term)?;
    Ok(pid)
}

/// Waits until `component` runs as a process other than `old_pid` and is ready.
pub async fn wait_restarted(
    run_dir: &Path,
    component: &str,
    old_pid: u32,
    timeout: Duration,
) -> Result<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(state) = read_state(run_dir)
            && let Some(c) = state.components.iter().find(|c| c.name == component)
            && let Some(pid) = c.pid
            && pid != old_pid
            && c.state == ComponentPhase::Ready
        {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            return Err(Error::NotRunning(format!(
                "{component} was not ready again within {}s after its restart; look at its log",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
