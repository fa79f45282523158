//! Real-process tests: a real supervisor process (this test binary re-executed, started with
//! [`spawn_detached`]) running `sh` components, stopped with [`stop_running`].
//!
//! Every component carries `KADM_TEST_MARKER=<its test's tempdir>` in its environment, so a
//! test can find every process it caused, however deep, by scanning `/proc/*/environ`: at the
//! end it asserts there are none left, and on a failed assertion the harness kills them by pid.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// The test that, when given a config path, becomes the supervisor; run normally it does
/// nothing.
const CHILD_TEST: &str = "supervisor::tests::child_supervisor_main";
/// Config files the child recognises among its arguments (libtest treats it as one more
/// name filter, which matches no test).
const CHILD_CONFIG_SUFFIX: &str = "kadm-supervisor-test.yaml";
const EXIT_RESULT: &str = "supervisor-exit-result";

#[test]
fn child_supervisor_main() {
    let Some(path) = std::env::args().find(|a| a.ends_with(CHILD_CONFIG_SUFFIX)) else {
        return;
    };
    let path = PathBuf::from(path);
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let config = SupervisorConfig::load(&path).expect("load config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(run(config));
    let dir = path.parent().expect("config dir");
    std::fs::write(dir.join(EXIT_RESULT), format!("{result:?}")).expect("record exit");
    result.expect("supervisor run");
}

struct Harness {
    dir: tempfile::TempDir,
    config: SupervisorConfig,
    config_path: PathBuf,
    supervisor: Option<u32>,
}

impl Harness {
    /// One component per `(name, sh script)`, ready once `$T/<name>.up` exists.
    fn new(components: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().to_string_lossy().into_owned();
        let config = SupervisorConfig {
            log_dir: dir.path().join("log"),
            run_dir: dir.path().join("run"),
            components: components
                .iter()
                .map(|(name, script)| ComponentConfig {
                    name: name.to_string(),
                    command: "/bin/sh".into(),
                    args: vec!["-c".into(), script.to_string()],
                    env: BTreeMap::from([
                        ("T".to_string(), t.clone()),
                        ("N".to_string(), name.to_string()),
                        ("KADM_TEST_MARKER".to_string(), t.clone()),
                    ]),
                    readiness: Some(Readiness::Exec(vec![
                        "test".into(),
                        "-f".into(),
                        format!("{t}/{name}.up"),
                    ])),
                    readiness_timeout_seconds: 10,
                    stop_timeout_seconds: 5,
                })
                .collect(),
        };
        let config_path = dir.path().join(CHILD_CONFIG_SUFFIX);
        std::fs::write(&config_path, serde_yaml::to_string(&config).expect("yaml"))
            .expect("write config");
        Harness {
            dir,
            config,
            config_path,
            supervisor: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run_dir(&self) -> &Path {
        &self.config.run_dir
    }

    /// Starts the supervisor detached and waits for its pid file.
    fn start(&mut self) -> u32 {
        let exe = std::env::current_exe().expect("test binary");
        let args: Vec<String> = [
            CHILD_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            &self.config_path.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let pid = spawn_detached(&exe, &args, &self.path("supervisor.log")).expect("spawn");
        self.supervisor = Some(pid);
        let pid_file = self.run_dir().join(PID_FILE_NAME);
        self.wait_for("the pid file", Duration::from_secs(5), || {
            state::read_pid_file(&pid_file).ok().flatten() == Some(pid)
        });
        pid
    }

    fn state(&self) -> SupervisorState {
        read_state(self.run_dir()).expect("state file")
    }

    /// Polls `cond` every 20 ms; on timeout fails with the supervisor's log.
    fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.path("supervisor.log")).unwrap_or_default();
                panic!("timed out after {timeout:?} waiting for {what}; supervisor log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_all_ready(&self) -> SupervisorState {
        self.wait_for("all components ready", Duration::from_secs(8), || {
            read_state(self.run_dir()).is_ok_and(|s| {
                s.components
                    .iter()
                    .all(|c| c.state == ComponentPhase::Ready)
            })
        });
        self.state()
    }

    /// Processes carrying this test's marker, i.e. everything its components started.
    fn marked_processes(&self) -> Vec<u32> {
        let needle = format!("KADM_TEST_MARKER={}", self.dir.path().display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| process::is_running(pid))
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
            })
            .collect()
    }

    /// Stops the supervisor and proves nothing it started is left.
    fn finish(mut self) {
        if let Some(pid) = self.supervisor.take() {
            stop_running(self.run_dir(), Duration::from_secs(8)).expect("stop");
            assert!(!process::is_running(pid), "supervisor {pid} still running");
        }
        let leaked = self.marked_processes();
        assert!(leaked.is_empty(), "leaked processes: {leaked:?}");
    }
}

impl Drop for Harness {
    /// Cleans up after a failed assertion, by pid only.
    fn drop(&mut self) {
        if self.supervisor.take().is_some() {
            let _ = stop_running(&self.config.run_dir, Duration::from_secs(5));
        }
        for pid in self.marked_processes() {
            let _ = process::signal_pid(pid, KillSignal::Kill);
        }
    }
}

fn read_nanos(path: &Path) -> u128 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn real_start_order_waits_for_readiness() {
    let mut h = Harness::new(&[
        (
            "first",
            r#"date +%s%N > "$T/first.started"; sleep 1; date +%s%N > "$T/first.up.tmp"; mv "$T/first.up.tmp" "$T/first.up"; exec sleep 1000"#,
        ),
        (
            "second",
            r#"date +%s%N > "$T/second.started"; touch "$T/second.up"; exec sleep 1000"#,
        ),
    ]);
    h.start();
    let state = h.wait_all_ready();
    let first_started = read_nanos(&h.path("first.started"));
    let first_ready = read_nanos(&h.path("first.up"));
    let second_started = read_nanos(&h.path("second.started"));
    assert!(first_ready - first_started >= 1_000_000_000);
    assert!(
        second_started >= first_ready,
        "second started {} ms before first was ready",
        (first_ready - second_started) / 1_000_000
    );
    assert!(state.components.iter().all(|c| c.pid.is_some()));
    let log = std::fs::read_to_string(h.config.log_dir.join("first.log")).expect("component log");
    assert!(log.contains("starting first"), "{log}");
    h.finish();
}

#[test]
fn real_killed_component_is_restarted() {
    let script = r#"echo started >> "$T/$N.starts"; touch "$T/$N.up"; exec sleep 1000"#;
    let mut h = Harness::new(&[("etcd", script), ("apiserver", script)]);
    h.start();
    let before = h.wait_all_ready();
    let old = before.components[1].pid.expect("apiserver pid");
    let etcd = before.components[0].pid.expect("etcd pid");

    let killed_at = Instant::now();
    process::signal_pid(old, KillSignal::Kill).expect("kill apiserver");
    h.wait_for("the apiserver restart", Duration::from_secs(3), || {
        read_state(h.run_dir()).is_ok_and(|s| {
            let c = &s.components[1];
            c.restarts == 1 && c.state == ComponentPhase::Ready && c.pid.is_some_and(|p| p != old)
        })
    });
    let took = killed_at.elapsed();
    assert!(took >= Duration::from_secs(1), "back-off skipped: {took:?}");

    let after = h.state();
    let api = &after.components[1];
    assert_eq!(api.last_exit.as_ref().and_then(|e| e.signal), Some(9));
    assert!(process::is_running(api.pid.expect("new pid")));
    assert_eq!(after.components[0].pid, Some(etcd), "etcd untouched");
    assert_eq!(after.components[0].restarts, 0);
    let starts = std::fs::read_to_string(h.path("apiserver.starts")).expect("starts");
    assert_eq!(starts.lines().count(), 2);
    h.finish();
}

#[test]
fn real_shutdown_stops_in_reverse_order() {
    let script =
        r#"trap 'echo "$N" >> "$T/stop-order"; exit 0' TERM; touch "$T/$N.up"; sleep 1000 & wait"#;
    let mut h = Harness::new(&[("a", script), ("b", script), ("c", script)]);
    let pid = h.start();
    h.wait_all_ready();

    assert!(stop_running(h.run_dir(), Duration::from_secs(8)).expect("stop"));
    assert!(!process::is_running(pid));
    let order = std::fs::read_to_string(h.path("stop-order")).expect("stop order");
    assert_eq!(order, "c\nb\na\n");
    let exit = std::fs::read_to_string(h.path(EXIT_RESULT)).expect("exit result");
    assert_eq!(exit, "Ok(())");
    assert!(
        !h.run_dir().join(PID_FILE_NAME).exists(),
        "pid file removed"
    );
    let state = h.state();
    for c in &state.components {
        assert_eq!(c.state, ComponentPhase::Stopped, "{}", c.name);
        assert_eq!(c.pid, None);
        assert_eq!(
            c.last_exit.as_ref().and_then(|e| e.code),
            Some(0),
            "{}",
            c.name
        );
    }
    assert!(!stop_running(h.run_dir(), Duration::from_secs(1)).expect("stop again"));
    h.supervisor = None;
    h.finish();
}

#[test]
fn real_second_supervisor_refuses_to_start() {
    let mut h = Harness::new(&[("only", r#"touch "$T/only.up"; exec sleep 1000"#)]);
    let pid = h.start();
    h.wait_all_ready();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = runtime
        .block_on(run(h.config.clone()))
        .expect_err("second supervisor must refuse");
    assert!(
        matches!(err, Error::AlreadyRunning { pid: p } if p == pid),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "a kadm supervisor is already running as pid {pid}; stop it with `kadm reset` first"
        )
    );
    // The first one is unaffected.
    assert!(process::is_running(pid));
    assert_eq!(
        state::read_pid_file(&h.run_dir().join(PID_FILE_NAME)).expect("pid file"),
        Some(pid)
    );
    assert_eq!(h.state().pid, pid);
    h.finish();
}

#[test]
fn real_stop_running_kills_components_of_a_killed_supervisor() {
    let script = r#"touch "$T/$N.up"; sleep 1000 & wait"#;
    let mut h = Harness::new(&[("etcd", script), ("apiserver", script)]);
    let pid = h.start();
    let state = h.wait_all_ready();
    // The supervisor dies without stopping anything; its components live on.
    process::signal_pid(pid, KillSignal::Kill).expect("kill supervisor");
    h.wait_for("the supervisor to die", Duration::from_secs(3), || {
        !process::is_running(pid)
    });
    for c in &state.components {
        assert!(
            process::is_running(c.pid.expect("pid")),
            "{} still running",
            c.name
        );
    }
    assert!(stop_running(h.run_dir(), Duration::from_secs(2)).expect("stop"));
    for c in &state.components {
        assert!(
            !process::is_running(c.pid.expect("pid")),
            "{} stopped",
            c.name
        );
    }
    assert!(
        !h.run_dir().join(PID_FILE_NAME).exists(),
        "stale pid file removed"
    );
    assert!(
        !h.path(EXIT_RESULT).exists(),
        "the supervisor never got to exit cleanly"
    );
    h.supervisor = None;
    h.finish();
}

/// The CLI may run the supervisor on a multi-threaded runtime or spawn it as a task.
#[test]
fn run_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let config =
        SupervisorConfig::from_yaml("components: [{name: a, command: /bin/true}]").expect("config");
    assert_send(&run(config.clone()));
    assert_send(&run_until(config, std::future::pending()));
}
