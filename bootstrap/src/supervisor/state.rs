//! The files in `runDir`: `supervisor.json` (what is running, for `kadm status` and for
//! `stop_running`'s last resort) and `supervisor.pid` (one supervisor per host).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::SupervisorConfig;
use super::process::{self, ExitInfo};
use super::{Error, Result};

pub const STATE_FILE_NAME: &str = "supervisor.json";
pub const PID_FILE_NAME: &str = "supervisor.pid";

/// The content of `<runDir>/supervisor.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorState {
    /// The supervisor's pid; the file outlives the supervisor, so check it is still running.
    pub pid: u32,
    /// Kernel start time of the supervisor (see [`ComponentStatus::start_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// In configuration (start) order.
    pub components: Vec<ComponentStatus>,
}

/// One component as the supervisor last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub name: String,
    /// The command, so a reader can recognise the process behind `pid`.
    pub command: PathBuf,
    /// Set while a process exists (starting or ready).
    pub pid: Option<u32>,
    /// Kernel start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22).
    /// A pid alone can be reused by an unrelated process; pid plus start time cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
    pub state: ComponentPhase,
    /// How many times the supervisor started the component again after it exited.
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<LastExit>,
    /// When `state` last changed.
    pub since: DateTime<Utc>,
}

/// Where a component is in its lifecycle (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentPhase {
    /// Spawned, readiness probe not passed yet.
    Starting,
    /// Probe passed; components after it may start.
    Ready,
    /// Exited; waiting out the back-off before starting again.
    Restarting,
    /// Not running and not about to be: not started yet, or stopped by the supervisor.
    Stopped,
}

/// The last time a component's process ended (or could not be started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastExit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Set when the process could not be spawned at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl LastExit {
    pub(crate) fn from_exit(exit: ExitInfo) -> Self {
        LastExit {
            code: exit.code,
            signal: exit.signal,
            error: None,
            at: Utc::now(),
        }
    }

    pub(crate) fn from_error(error: &Error) -> Self {
        LastExit {
            code: None,
            signal: None,
            error: Some(error.to_string()),
            at: Utc::now(),
        }
    }
}

/// Reads `<run_dir>/supervisor.json`.
pub fn read_state(run_dir: &Path) -> Result<SupervisorState> {
    let path = run_dir.join(STATE_FILE_NAME);
    let text = std::fs::read(&path).map_err(Error::io("read", &path))?;
    serde_json::from_slice(&text).map_err(|source| Error::State { path, source })
}

/// Replaces the state file in one rename, so a reader never sees half a file.
///
/// No fsync: the file describes live processes, which do not survive a crash of the machine
/// either, and `runDir` is a tmpfs on real hosts.
pub(crate) fn write_state(run_dir: &Path, state: &SupervisorState) -> Result<()> {
    let path = run_dir.join(STATE_FILE_NAME);
    let tmp = run_dir.join(format!(".{STATE_FILE_NAME}.{}.tmp", std::process::id()));
    let mut json = serde_json::to_vec_pretty(state).map_err(|source| Error::State {
        path: path.clone(),
        source,
    })?;
    json.push(b'\n');
    std::fs::write(&tmp, &json).map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("rename into place", &path))
}

/// The supervisor's in-memory state, written through to the state file on every change.
#[derive(Debug)]
pub(crate) struct StateStore {
    run_dir: PathBuf,
    state: Mutex<SupervisorState>,
}

impl StateStore {
    pub fn new(config: &SupervisorConfig) -> Self {
        let now = Utc::now();
        let pid = std::process::id();
        let state = SupervisorState {
            pid,
            start_time: process::proc_stat(pid).map(|s| s.start_time),
            started_at: now,
            updated_at: now,
            components: config
                .components
                .iter()
                .map(|c| ComponentStatus {
                    name: c.name.clone(),
                    command: c.command.clone(),
                    pid: None,
                    start_time: None,
                    state: ComponentPhase::Stopped,
                    restarts: 0,
                    last_exit: None,
                    since: now,
                })
                .collect(),
        };
        let store = StateStore {
            run_dir: config.run_dir.clone(),
            state: Mutex::new(state),
        };
        store.update(|_| {});
        store
    }

    /// Applies `f` and rewrites the file. A failed write is logged, not returned: losing
    /// `kadm status` output is much better than stopping the control plane over it.
    pub fn update(&self, f: impl FnOnce(&mut SupervisorState)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state);
        state.updated_at = Utc::now();
        if let Err(error) = write_state(&self.run_dir, &state) {
            tracing::warn!(%error, "could not write supervisor state file");
        }
    }

    pub fn update_component(&self, index: usize, f: impl FnOnce(&mut ComponentStatus)) {
        self.update(|s| {
            if let Some(c) = s.components.get_mut(index) {
                f(c);
            }
        });
    }

    #[cfg(test)]
    pub fn snapshot(&self) -> SupervisorState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Reads a pid file; `None` when it is missing or does not hold a pid.
pub(crate) fn read_pid_file(path: &Path) -> Result<Option<u32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path)(e)),
    }
}

/// Whether `pid` is running and its command line mentions "supervisor", as
/// `kadm supervisor run` does. The pid file may be left over from a supervisor that died
/// uncleanly, and its pid reused since; refusing to start because of, say, a shell that got
/// that pid would leave the host without a control plane for no reason.
pub(crate) fn is_supervisor_process(pid: u32) -> bool {
    process::is_running(pid)
        && process::cmdline(pid).is_some_and(|argv| argv.iter().any(|a| a.contains("supervisor")))
}

/// The held pid file. An exclusive `flock` on it is held for the supervisor's lifetime; the
/// kernel drops it when the process dies however it dies, so two supervisors starting at the
/// same moment cannot both win, and a crashed one never blocks the next.
#[derive(Debug)]
pub(crate) struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    pub fn acquire(run_dir: &Path) -> Result<PidFile> {
        let path = run_dir.join(PID_FILE_NAME);
        let me = std::process::id();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        let mut previous = String::new();
        file.read_to_string(&mut previous)
            .map_err(Error::io("read", &path))?;
        let previous: Option<u32> = previous.trim().parse().ok();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::AlreadyRunning {
                    pid: previous.unwrap_or_default(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path)(e)),
        }
        // The lock is free, but a supervisor that does not lock (started by an older kadm,
        // or whose file was deleted and recreated) may still be alive.
        if let Some(pid) = previous.filter(|&p| p != me && is_supervisor_process(p)) {
            return Err(Error::AlreadyRunning { pid });
        }
        if let Some(stale) = previous.filter(|&p| p != me) {
            tracing::info!(pid = stale, path = %path.display(), "replacing stale supervisor pid file");
        }
        file.set_len(0).map_err(Error::io("truncate", &path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(Error::io("write", &path))?;
        writeln!(file, "{me}").map_err(Error::io("write", &path))?;
        Ok(PidFile { path, file })
    }

    /// Removes the file, unless someone else's pid is in it by now.
    pub fn release(self) {
        let me = std::process::id();
        match read_pid_file(&self.path) {
            Ok(Some(pid)) if pid != me => {}
            _ => {
                if let Err(e) = std::fs::remove_file(&self.path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %self.path.display(), error = %e, "could not remove pid file");
                }
            }
        }
        drop(self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trips_with_the_documented_field_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().expect("time");
        let state = SupervisorState {
            pid: 100,
            start_time: Some(5),
            started_at: at,
            updated_at: at,
            components: vec![ComponentStatus {
                name: "etcd".into(),
                command: "/usr/bin/etcd".into(),
                pid: Some(101),
                start_time: Some(7),
                state: ComponentPhase::Restarting,
                restarts: 2,
                last_exit: Some(LastExit {
                    code: None,
                    signal: Some(9),
                    error: None,
                    at,
                }),
                since: at,
            }],
        };
        write_state(dir.path(), &state).expect("write");
        assert_eq!(read_state(dir.path()).expect("read"), state);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE_NAME)).expect("raw"))
                .expect("json");
        let c = &json["components"][0];
        assert_eq!(c["state"], "restarting");
        assert_eq!(c["lastExit"]["signal"], 9);
        assert_eq!(c["since"], "2026-01-02T03:04:05Z");
        assert_eq!(json["pid"], 100);
        // No temp files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [STATE_FILE_NAME]);
    }

    #[test]
    fn pid_file_is_exclusive_and_replaces_stale_pids() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A live process that is not a supervisor: its pid in the file is stale.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let path = dir.path().join(PID_FILE_NAME);
        std::fs::write(&path, format!("{}\n", sleeper.id())).expect("write");
        let held = PidFile::acquire(dir.path()).expect("stale pid file is replaced");
        assert_eq!(
            read_pid_file(&path).expect("read"),
            Some(std::process::id())
        );
        // While held, the lock refuses a second holder even from the same process.
        match PidFile::acquire(dir.path()) {
            Err(Error::AlreadyRunning { pid }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected AlreadyRunning, got {other:?}"),
        }
        held.release();
        assert!(!path.exists());
        PidFile::acquire(dir.path()).expect("free again").release();
        sleeper.kill().expect("kill sleep");
        sleeper.wait().expect("reap sleep");
    }
}
