//! Running the supervisor as a host service: a systemd unit where systemd is PID 1, otherwise
//! a detached process that the CLI can find again through `runDir` and stop.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use super::process::{self, KillSignal, signal_group, signal_pid};
use super::state::{
    ComponentStatus, PID_FILE_NAME, STATE_FILE_NAME, SupervisorState, is_supervisor_process,
    read_pid_file, read_state,
};
use super::{Error, Result};

const UNIT_TEMPLATE: &str = include_str!("../../../templates/kadm-supervisor.service");

/// How often `stop_running` looks whether a process is gone.
const POLL: Duration = Duration::from_millis(50);
/// A SIGKILLed process disappears at once unless stuck in the kernel.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Whether systemd manages this boot, by the rule of `sd_booted(3)`: `/run/systemd/system`
/// is a directory. Checking the name of PID 1 instead would be fooled by containers whose
/// init is called `systemd` but is not.
pub fn systemd_is_pid1() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// The `kadm-supervisor.service` unit that runs `<exe> supervisor run --config <config>`.
pub fn render_systemd_unit(exe: &Path, config: &Path) -> String {
    UNIT_TEMPLATE
        .replace("{{exe}}", &systemd_quote(&exe.to_string_lossy()))
        .replace("{{config}}", &systemd_quote(&config.to_string_lossy()))
}

/// Quotes one `ExecStart=` word: systemd expands `%` specifiers and `$` variables and splits
/// on whitespace, none of which a path should be subject to.
fn systemd_quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        let inner = escaped.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{inner}\"")
    } else {
        escaped
    }
}

/// Starts `exe args…` in a new process group with stdin from `/dev/null` and stdout and
/// stderr appended to `log_file`, and returns its pid without waiting for it.
///
/// The new group keeps the terminal's Ctrl-C and hang-up away from the supervisor, so it
/// outlives the `kadm` command that started it. The working directory is `/` so it pins no
/// mount. The caller is its parent until the caller exits: a long-lived caller that never
/// waits would keep a zombie after the supervisor ends ([`stop_running`] reaps it).
pub fn spawn_detached(exe: &Path, args: &[String], log_file: &Path) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    if let Some(dir) = log_file.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    }
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .map_err(Error::io("open log file", log_file))?;
    let stderr = stdout
        .try_clone()
        .map_err(Error::io("open log file", log_file))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .current_dir("/")
        .process_group(0)
        .spawn()
        .map_err(Error::io("start", exe))?;
    Ok(child.id())
}

/// Stops the supervisor recorded in `run_dir`: SIGTERM, up to `timeout` for it to stop its
/// components and exit, then SIGKILL; and finally SIGKILL for any component process listed
/// in the state file that is still alive (which happens when the supervisor itself had to be
/// killed). Returns whether anything was running.
///
/// Processes are only signalled when they are provably the ones recorded: a running process
/// whose command line names the supervisor, or a component whose kernel start time matches
/// the state file. A pid alone may since have been given to something unrelated.
pub fn stop_running(run_dir: &Path, timeout: Duration) -> Result<bool> {
    let pid_path = run_dir.join(PID_FILE_NAME);
    let state = read_state_if_any(run_dir);
    let me = std::process::id();
    let pid = read_pid_file(&pid_path)?.or(state.as_ref().map(|s| s.pid));
    let mut was_running = false;
    if let Some(pid) = pid {
        reap_if_zombie(pid);
    }

    if let Some(pid) = pid.filter(|&p| p != me && is_recorded_supervisor(p, state.as_ref())) {
        was_running = true;
        tracing::info!(pid, "stopping kadm supervisor");
        signal_pid(pid, KillSignal::Term)?;
        if !wait_gone(pid, timeout) {
            tracing::warn!(
                pid,
                timeout_s = timeout.as_secs(),
                "kadm supervisor did not stop in time; sending SIGKILL"
            );
            signal_pid(pid, KillSignal::Kill)?;
            if !wait_gone(pid, KILL_WAIT) {
                tracing::error!(pid, "kadm supervisor survived SIGKILL");
            }
        }
    }

    // Re-read: a supervisor that stopped cleanly has just recorded every component stopped.
    if let Some(state) = read_state_if_any(run_dir) {
        for c in &state.components {
            let Some(cpid) = c.pid.filter(|&p| p != me && is_recorded_component(p, c)) else {
                continue;
            };
            was_running = true;
            tracing::warn!(component = %c.name, pid = cpid, "component outlived the supervisor; sending SIGKILL");
            signal_group(cpid, KillSignal::Kill)?;
            signal_pid(cpid, KillSignal::Kill)?;
            if !wait_gone(cpid, KILL_WAIT) {
                tracing::error!(component = %c.name, pid = cpid, "component survived SIGKILL");
            }
        }
    }

    if let Some(pid) = read_pid_file(&pid_path)?
        && !is_supervisor_process(pid)
        && let Err(e) = std::fs::remove_file(&pid_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(Error::io("remove", &pid_path)(e));
    }
    Ok(was_running)
}

fn read_state_if_any(run_dir: &Path) -> Option<SupervisorState> {
    match read_state(run_dir) {
        Ok(state) => Some(state),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            tracing::warn!(%error, file = STATE_FILE_NAME, "ignoring unreadable supervisor state");
            None
        }
    }
}

fn is_recorded_supervisor(pid: u32, state: Option<&SupervisorState>) -> bool {
    if !is_supervisor_process(pid) {
        return false;
    }
    match state.filter(|s| s.pid == pid).and_then(|s| s.start_time) {
        Some(recorded) => process::proc_stat(pid).is_some_and(|s| s.start_time == recorded),
        None => true,
    }
}

pub(super) fn is_recorded_component(pid: u32, c: &ComponentStatus) -> bool {
    let Some(stat) = process::proc_stat(pid).filter(|s| s.is_running()) else {
        return false;
    };
    match c.start_time {
        Some(recorded) => stat.start_time == recorded,
        // Without a start time, fall back to the program name; a component that exec'd
        // another program is then missed, which is the safe way to be wrong.
        None => process::cmdline(pid)
            .and_then(|argv| argv.into_iter().next())
            .is_some_and(|argv0| Path::new(&argv0) == c.command.as_path()),
    }
}

/// Reaps `pid` if it is an exited child of ours (as after [`spawn_detached`] in a process that
/// lives on), so it does not stay behind as a zombie. For anyone else's process `waitpid`
/// fails with `ECHILD` and changes nothing.
fn reap_if_zombie(pid: u32) {
    if process::proc_stat(pid).is_some_and(|s| !s.is_running())
        && let Ok(raw) = i32::try_from(pid)
        && raw > 1
    {
        let _ = waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG));
    }
}

/// Polls until `pid` has exited.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match process::proc_stat(pid) {
            None => return true,
            Some(stat) if !stat.is_running() => {
                reap_if_zombie(pid);
                return true;
            }
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_unit() {
        let unit = render_systemd_unit(
            Path::new("/usr/local/bin/kadm"),
            Path::new("/etc/kadm/supervisor.yaml"),
        );
        for line in [
            "Type=simple",
            "Restart=always",
            "RestartSec=2",
            "KillMode=mixed",
            "TimeoutStopSec=60",
            "LimitNOFILE=1048576",
            "ExecStart=/usr/local/bin/kadm supervisor run --config /etc/kadm/supervisor.yaml",
            "WantedBy=multi-user.target",
        ] {
            assert!(
                unit.lines().any(|l| l == line),
                "missing {line:?} in\n{unit}"
            );
        }
        assert!(!unit.contains("{{"));
    }

    #[test]
    fn quotes_awkward_paths_for_systemd() {
        assert_eq!(systemd_quote("/usr/bin/kadm"), "/usr/bin/kadm");
        assert_eq!(systemd_quote("/opt/my kadm/kadm"), "\"/opt/my kadm/kadm\"");
        assert_eq!(systemd_quote("/etc/100%/$x"), "/etc/100%%/$$x");
        assert_eq!(systemd_quote(r#"/a"b"#), r#""/a\"b""#);
    }

    #[test]
    fn stop_running_with_nothing_recorded_is_a_no_op() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!stop_running(dir.path(), Duration::from_secs(1)).expect("stop"));
        // A pid file naming a process that is not a supervisor is stale and removed, and the
        // process is left alone.
        let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
        std::fs::write(
            dir.path().join(PID_FILE_NAME),
            format!("{}\n", sleeper.id()),
        )
        .expect("write");
        assert!(!stop_running(dir.path(), Duration::from_secs(1)).expect("stop"));
        assert!(!dir.path().join(PID_FILE_NAME).exists());
        assert!(process::is_running(sleeper.id()));
        sleeper.kill().expect("kill");
        sleeper.wait().expect("reap");
    }
}
