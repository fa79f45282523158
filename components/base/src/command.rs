//! Running a host tool to completion within a time bound, with its output captured: how
//! kadm-proxy drives `nft`, `conntrack` and `ip`, and bootstrap drives `ctr`. A tool that
//! hangs (a wedged containerd, a stuck netlink call) then fails its caller instead of
//! hanging it.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a running command is checked for its end.
const POLL: Duration = Duration::from_millis(5);

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Why a command gave no [`Output`]; callers add the command and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not be started (missing binary, no permission), or its input not written.
    #[error("cannot start it: {0}")]
    Spawn(#[source] std::io::Error),
    /// It did not end within the bound and was killed.
    #[error("did not finish within {0:?} and was killed")]
    Timeout(Duration),
    /// Its end could not be waited for.
    #[error("cannot wait for it: {0}")]
    Wait(#[source] std::io::Error),
}

/// Runs `cmd` with `stdin` (else no input) to its end, killing it after `timeout`.
///
/// Both output pipes are drained on threads, so a chatty command never blocks on a full
/// pipe. `stdin` is written whole before waiting: meant for tools that read all of their
/// input before printing much (`nft -f -`).
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, RunError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take())
        && let Err(e) = pipe.write_all(input.as_bytes())
    {
        reap(&mut child);
        return Err(RunError::Spawn(e));
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                reap(&mut child);
                return Err(RunError::Timeout(timeout));
            }
            Err(e) => {
                reap(&mut child);
                return Err(RunError::Wait(e));
            }
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_input_pass_through() {
        let out = run_bounded(
            Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            Some("in\n"),
            Duration::from_secs(10),
        )
        .expect("run");
        assert_eq!(
            (out.status.code(), out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "in\n", "err\n")
        );
    }

    #[test]
    fn a_hung_command_is_killed_at_the_bound() {
        let started = Instant::now();
        let err = run_bounded(
            Command::new("sleep").arg("30"),
            None,
            Duration::from_millis(200),
        )
        .expect_err("bounded");
        assert!(matches!(err, RunError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run_bounded(
            &mut Command::new("/nonexistent/kadm-tool"),
            None,
            Duration::from_secs(1),
        )
        .expect_err("missing");
        assert!(matches!(err, RunError::Spawn(_)), "{err}");
    }
}
