//! The host supervisor: one long-running process per host that runs kadm's components
//! (etcd, kadm-apiserver, later the scheduler, controller-manager, kubelet and proxy).
//!
//! It exists so that a host needs exactly one service, whether or not systemd is PID 1: under
//! systemd it is the `kadm-supervisor.service` unit ([`render_systemd_unit`]); elsewhere the
//! CLI starts it detached ([`spawn_detached`]) and stops it with [`stop_running`].
//!
//! # Component lifecycle
//!
//! ```text
//!  init ───────► start ─────────► ready ──────────► stop
//!  (config       (spawn; probe    (the next         (reverse order: SIGTERM to the
//!   validated)    every 200 ms)    component         process group, grace period,
//!                  ▲     │         may start)        then SIGKILL)
//!                  │     │ exits       │ exits
//!                  │     ▼             │
//!                  └─ restarting ◄─────┘
//!                     (back-off 1 s, 2 s, 4 s … 30 s;
//!                      1 s again after 60 s of uptime)
//! ```
//!
//! Components start in configuration order and component *i + 1* is spawned only once
//! component *i* has passed its readiness probe, because each one needs its predecessor (the
//! apiserver cannot serve without etcd). A readiness timeout is logged as an error but does not
//! stop the supervisor: it keeps waiting, and keeps restarting the component if it exits,
//! because a host that recovers by itself once a slow disk catches up is better than one that
//! needs an operator. Shutdown runs in reverse order so that nothing loses its backend while it
//! is still serving.
//!
//! Each component runs in its own process group: a Ctrl-C on the supervisor's terminal then
//! reaches only the supervisor, which stops the components in order, and signals go to the
//! whole group so helper processes a component forked do not outlive it.
//!
//! State for `kadm status` is written to `<runDir>/supervisor.json` ([`read_state`]), and
//! `<runDir>/supervisor.pid` keeps a second supervisor from starting on the same host.

mod config;
mod detach;
mod manager;
pub mod probe;
mod process;
mod restart;
mod state;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

pub use config::{ComponentConfig, DEFAULT_CONFIG_PATH, HttpsProbe, Readiness, SupervisorConfig};
pub use detach::{render_systemd_unit, spawn_detached, stop_running, systemd_is_pid1};
pub use manager::{ReadinessCheck, RealProbes};
pub use process::{Backoff, ExitInfo, KillSignal, ProcessRunner, RealRunner, RunningChild};
pub use restart::{restart_component, wait_restarted};
pub use state::{
    ComponentPhase, ComponentStatus, LastExit, PID_FILE_NAME, STATE_FILE_NAME, SupervisorState,
    read_state,
};

/// What can go wrong in the supervisor. Messages are lowercase and say what to do next when
/// there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem call failed; the action and path say which file to look at.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("parse supervisor config {path}: {source}")]
    ConfigParse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },

    #[error("invalid supervisor config: {0}")]
    InvalidConfig(String),

    /// Two supervisors would fight over the same components and state file.
    #[error("a kadm supervisor is already running as pid {pid}; stop it with `kadm reset` first")]
    AlreadyRunning { pid: u32 },

    #[error("parse supervisor state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// One readiness attempt failed; expected while a component boots.
    #[error("not ready: {0}")]
    Probe(String),

    #[error("start component {component} ({command}): {source}")]
    Spawn {
        component: String,
        command: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("send {signal} to pid {pid}: {source}")]
    Signal {
        pid: u32,
        signal: &'static str,
        #[source]
        source: nix::errno::Errno,
    },

    /// Signalling pid 0 or 1 (or a group that large) would hit far more than a component.
    #[error("refusing to signal pid {0}: not a process the supervisor started")]
    UnsafePid(u32),

    #[error("install handler for {signal}: {source}")]
    SignalHandler {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A component (or the supervisor) is not running when it was asked to restart.
    #[error("{0}")]
    NotRunning(String),
}

/// Result with the supervisor error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds the `map_err` closure for an I/O call so each call site names action and path.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// Runs the supervisor until SIGTERM or SIGINT, then stops the components in reverse order
/// and returns `Ok(())`; the caller exits 0.
///
/// SIGHUP is ignored (logged) rather than fatal: a detached supervisor must not die with the
/// terminal of whoever started it.
pub async fn run(config: SupervisorConfig) -> Result<()> {
    run_with_shutdown(config, ShutdownSource::<std::future::Pending<()>>::Signals).await
}

/// Like [`run`], but stops when `shutdown` completes instead of on signals; for embedding the
/// supervisor in a process that owns its own signal handling (and for tests).
pub async fn run_until(
    config: SupervisorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    run_with_shutdown(config, ShutdownSource::Future(shutdown)).await
}

enum ShutdownSource<F> {
    Signals,
    Future(F),
}

async fn run_with_shutdown<F>(config: SupervisorConfig, source: ShutdownSource<F>) -> Result<()>
where
    F: Future<Output = ()> + Send,
{
    config.validate()?;
    for dir in [&config.run_dir, &config.log_dir] {
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    }
    let pid_file = state::PidFile::acquire(&config.run_dir)?;
    // Handlers go in before any component is spawned: a SIGTERM arriving between the two
    // would otherwise kill the supervisor and orphan what it had started.
    let shutdown: Pin<Box<dyn Future<Output = ()> + Send + '_>> = match source {
        ShutdownSource::Signals => match manager::signal_shutdown() {
            Ok(f) => Box::pin(f),
            Err(e) => {
                pid_file.release();
                return Err(e);
            }
        },
        ShutdownSource::Future(f) => Box::pin(f),
    };
    tracing::info!(
        pid = std::process::id(),
        run_dir = %config.run_dir.display(),
        log_dir = %config.log_dir.display(),
        components = config.components.len(),
        "kadm supervisor starting"
    );
    let store = Arc::new(state::StateStore::new(&config));
    manager::supervise(
        &config,
        Arc::new(RealRunner),
        Arc::new(RealProbes),
        Backoff::default(),
        store,
        shutdown,
    )
    .await;
    pid_file.release();
    tracing::info!("kadm supervisor stopped");
    Ok(())
}
