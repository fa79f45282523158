//! Process spawning and signalling, behind [`ProcessRunner`] so the ordering and back-off logic
//! can be exercised with a fake that needs no real processes and no waiting.

use std::fmt;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::config::ComponentConfig;
use super::{Error, Result};

/// The two signals the supervisor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillSignal {
    /// Ask to stop; components get their grace period.
    Term,
    /// Stop now; used after the grace period and to clear a dead component's helpers.
    Kill,
}

impl KillSignal {
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Term => "SIGTERM",
            KillSignal::Kill => "SIGKILL",
        }
    }

    fn nix(self) -> Signal {
        match self {
            KillSignal::Term => Signal::SIGTERM,
            KillSignal::Kill => Signal::SIGKILL,
        }
    }
}

/// How a component ended: an exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(sig)) => match Signal::try_from(sig) {
                Ok(s) => write!(f, "killed by signal {sig} ({})", s.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            (None, None) => write!(f, "unknown exit"),
        }
    }
}

impl From<std::process::ExitStatus> for ExitInfo {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        ExitInfo {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

/// Starts components and signals them. The real implementation is [`RealRunner`].
pub trait ProcessRunner: Send + Sync + 'static {
    type Child: RunningChild;

    /// Starts `component` with stdout and stderr appended to `log_file`, as the leader of a
    /// new process group.
    fn spawn(&self, component: &ComponentConfig, log_file: &Path) -> Result<Self::Child>;

    /// Signals the process group led by `pid` (a pid this runner spawned). A group that is
    /// already gone is not an error: the caller wanted it gone.
    fn kill(&self, pid: u32, signal: KillSignal) -> Result<()>;
}

/// A spawned component.
pub trait RunningChild: Send + 'static {
    fn pid(&self) -> u32;

    /// The kernel's start time of the process (clock ticks since boot, `/proc/<pid>/stat`
    /// field 22), recorded so that a later `stop_running` can tell the process from an
    /// unrelated one that reused the pid.
    fn start_time(&self) -> Option<u64>;

    /// Waits for the process to exit and reaps it. Must be cancel-safe: the supervisor races
    /// it against readiness probes and stop requests.
    fn wait(&mut self) -> impl Future<Output = Result<ExitInfo>> + Send;
}

/// Spawns real processes with tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealRunner;

/// A component started by [`RealRunner`].
#[derive(Debug)]
pub struct RealChild {
    child: tokio::process::Child,
    pid: u32,
    start_time: Option<u64>,
}

impl ProcessRunner for RealRunner {
    type Child = RealChild;

    fn spawn(&self, component: &ComponentConfig, log_file: &Path) -> Result<RealChild> {
        if let Some(dir) = log_file.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_file)
            .map_err(Error::io("open log file", log_file))?;
        // A marker line makes restarts visible in the component's own log, next to the lines
        // that explain them.
        let header = format!(
            "==== kadm supervisor {}: starting {}: {} {}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            component.name,
            component.command.display(),
            component.args.join(" ")
        );
        log.write_all(header.as_bytes())
            .map_err(Error::io("write log file", log_file))?;
        let stderr = log
            .try_clone()
            .map_err(Error::io("open log file", log_file))?;
        let child = tokio::process::Command::new(&component.command)
            .args(&component.args)
            .envs(&component.env)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|source| Error::Spawn {
                component: component.name.clone(),
                command: component.command.clone(),
                source,
            })?;
        // `id()` is `None` only after the child was reaped, which cannot have happened yet.
        let pid = child.id().unwrap_or_default();
        Ok(RealChild {
            child,
            pid,
            start_time: proc_stat(pid).map(|s| s.start_time),
        })
    }

    fn kill(&self, pid: u32, signal: KillSignal) -> Result<()> {
        signal_group(pid, signal)
    }
}

impl RunningChild for RealChild {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn start_time(&self) -> Option<u64> {
        self.start_time
    }

    fn wait(&mut self) -> impl Future<Output = Result<ExitInfo>> + Send {
        let pid = self.pid;
        let wait = self.child.wait();
        async move {
            wait.await.map(ExitInfo::from).map_err(|source| Error::Io {
                action: "wait for",
                path: format!("/proc/{pid}").into(),
                source,
            })
        }
    }
}

fn checked_pid(pid: u32) -> Result<Pid> {
    match i32::try_from(pid) {
        Ok(raw) if raw > 1 => Ok(Pid::from_raw(raw)),
        _ => Err(Error::UnsafePid(pid)),
    }
}

/// Signals the process group led by `pid`; `ESRCH` (nothing left) counts as success.
pub(crate) fn signal_group(pid: u32, signal: KillSignal) -> Result<()> {
    match killpg(checked_pid(pid)?, signal.nix()) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(Error::Signal {
            pid,
            signal: signal.name(),
            source,
        }),
    }
}

/// Signals one process; `ESRCH` counts as success.
pub(crate) fn signal_pid(pid: u32, signal: KillSignal) -> Result<()> {
    match nix::sys::signal::kill(checked_pid(pid)?, signal.nix()) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(Error::Signal {
            pid,
            signal: signal.name(),
            source,
        }),
    }
}

/// Restart delays: 1 s, doubling to at most 30 s, and back to 1 s once a run lasted 60 s.
///
/// Short first delays make a one-off crash nearly invisible; the cap keeps a component that
/// cannot start (etcd with a broken data dir) from filling its log while still retrying often
/// enough to recover soon after the cause is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff {
            initial,
            max,
            reset_after,
            next: initial,
        }
    }

    /// The delay before the next restart of a component that ran for `uptime`.
    pub fn next_delay(&mut self, uptime: Duration) -> Duration {
        if uptime >= self.reset_after {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }
}

/// The fields of `/proc/<pid>/stat` the supervisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie has exited and only waits to be reaped; for "is it still running" it is gone.
    pub fn is_running(self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so field 22 (starttime) is index 19.
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Whether `pid` names a process that has not exited (zombies count as exited).
pub(crate) fn is_running(pid: u32) -> bool {
    pid > 0 && proc_stat(pid).is_some_and(ProcStat::is_running)
}

/// The argv of `pid`, or `None` if it is gone (or a zombie, whose cmdline is empty).
pub(crate) fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay(secs(0)).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn backoff_resets_after_a_long_enough_run() {
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.next_delay(secs(5));
        }
        assert_eq!(b.next_delay(secs(59)), secs(16), "59 s is not long enough");
        assert_eq!(b.next_delay(secs(60)), secs(1), "60 s resets");
        assert_eq!(b.next_delay(secs(0)), secs(2));
        assert_eq!(b.next_delay(secs(3600)), secs(1));
    }

    #[test]
    fn backoff_never_overflows() {
        let huge = secs(u64::MAX / 2 + 1);
        let mut b = Backoff::new(huge, Duration::MAX, secs(60));
        assert_eq!(b.next_delay(secs(0)), huge);
        assert_eq!(b.next_delay(secs(0)), Duration::MAX);
        assert_eq!(b.next_delay(secs(0)), Duration::MAX);
    }

    #[test]
    fn parses_proc_stat_with_awkward_names() {
        let line =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("1 (x) Z"), None);
        let own = proc_stat(std::process::id()).expect("own stat");
        assert!(own.is_running());
        assert!(is_running(std::process::id()));
        assert!(cmdline(std::process::id()).is_some_and(|a| !a.is_empty()));
    }

    #[test]
    fn refuses_to_signal_init_or_everything() {
        for pid in [0, 1, u32::MAX] {
            assert!(matches!(
                signal_group(pid, KillSignal::Term),
                Err(Error::UnsafePid(_))
            ));
            assert!(matches!(
                signal_pid(pid, KillSignal::Term),
                Err(Error::UnsafePid(_))
            ));
        }
    }

    #[test]
    fn exit_info_reads_well() {
        let code = ExitInfo {
            code: Some(3),
            signal: None,
        };
        assert_eq!(code.to_string(), "exit code 3");
        let sig = ExitInfo {
            code: None,
            signal: Some(9),
        };
        assert_eq!(sig.to_string(), "killed by signal 9 (SIGKILL)");
    }
}
