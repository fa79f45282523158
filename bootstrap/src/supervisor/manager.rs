//! Starting in order, waiting for readiness, restarting with back-off, stopping in reverse.
//!
//! Each component has one task (a [`Worker`]) that owns its process for the supervisor's whole
//! life; the main loop only decides when a worker is created and when it is told to stop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use super::config::{ComponentConfig, SupervisorConfig};
use super::probe;
use super::process::{Backoff, ExitInfo, KillSignal, ProcessRunner, RunningChild};
use super::state::{ComponentPhase, LastExit, StateStore};
use super::{Error, Result};

/// Time between readiness attempts.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// After SIGKILL a process is gone within milliseconds unless it is stuck in the kernel
/// (uninterruptible I/O); past this the supervisor stops waiting for it and moves on.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Decides whether a component is ready; [`RealProbes`] runs the configured probe.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// One attempt; only called for components that have a readiness probe.
    fn check(&self, component: &ComponentConfig) -> impl Future<Output = Result<()>> + Send;
}

/// Runs the probe from the component's configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealProbes;

impl ReadinessCheck for RealProbes {
    async fn check(&self, component: &ComponentConfig) -> Result<()> {
        match &component.readiness {
            Some(readiness) => probe::check(readiness).await,
            None => Ok(()),
        }
    }
}

/// Completes on the first SIGTERM or SIGINT. Handlers are installed when this is called, not
/// when the future is first polled.
pub(crate) fn signal_shutdown() -> Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| Error::SignalHandler {
            signal: name,
            source,
        })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = install(SignalKind::hangup(), "SIGHUP")?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!(signal = "SIGTERM", "stopping components in reverse order");
                    return;
                }
                _ = int.recv() => {
                    tracing::info!(signal = "SIGINT", "stopping components in reverse order");
                    return;
                }
                _ = hup.recv() => {
                    tracing::info!(signal = "SIGHUP", "ignoring SIGHUP");
                }
            }
        }
    })
}

/// Starts every component in order, each after its predecessor is ready, until `shutdown`
/// completes; then stops the started ones in reverse order and returns.
///
/// If `shutdown` completes while a component is still waiting to become ready, the remaining
/// components are never started.
pub(crate) async fn supervise<R, P>(
    config: &SupervisorConfig,
    runner: Arc<R>,
    probes: Arc<P>,
    backoff: Backoff,
    store: Arc<StateStore>,
    shutdown: impl Future<Output = ()>,
) where
    R: ProcessRunner,
    P: ReadinessCheck,
{
    tokio::pin!(shutdown);
    let mut started = Vec::new();
    let mut shutting_down = false;
    for (index, spec) in config.components.iter().enumerate() {
        let (ready_tx, mut ready_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = Worker {
            index,
            spec: spec.clone(),
            log_file: spec.log_file(&config.log_dir),
            runner: Arc::clone(&runner),
            probes: Arc::clone(&probes),
            store: Arc::clone(&store),
            backoff: backoff.clone(),
            ready_tx,
        };
        let handle = tokio::spawn(worker.run(stop_rx));
        started.push((spec.name.clone(), stop_tx, handle));
        tokio::select! {
            ready = ready_rx.wait_for(|ready| *ready) => {
                if ready.is_err() {
                    tracing::error!(component = %spec.name, "component task ended before the component was ready");
                }
            }
            () = &mut shutdown => {
                shutting_down = true;
                break;
            }
        }
    }
    if !shutting_down {
        tracing::info!(
            components = config.components.len(),
            "all components started and ready"
        );
        shutdown.await;
    }
    for (name, stop_tx, handle) in started.into_iter().rev() {
        stop_tx.send_replace(true);
        if let Err(error) = handle.await {
            tracing::error!(component = %name, %error, "component task failed");
        }
    }
}

enum Outcome {
    Exited(Result<ExitInfo>),
    Stop,
}

/// Owns one component: spawns it, probes it, restarts it, and stops it when told to.
struct Worker<R: ProcessRunner, P: ReadinessCheck> {
    index: usize,
    spec: ComponentConfig,
    log_file: PathBuf,
    runner: Arc<R>,
    probes: Arc<P>,
    store: Arc<StateStore>,
    backoff: Backoff,
    /// Flips to true once, at the first time the component is ready; only start-up ordering
    /// needs it, restarts later do not hold back the other components.
    ready_tx: watch::Sender<bool>,
}

/// Completes once a stop was requested (or the supervisor dropped the sender).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl<R: ProcessRunner, P: ReadinessCheck> Worker<R, P> {
    async fn run(mut self, mut stop_rx: watch::Receiver<bool>) {
        let name = self.spec.name.clone();
        let mut restarts: u32 = 0;
        loop {
            if *stop_rx.borrow() {
                self.mark_stopped(None);
                return;
            }
            let (last_exit, uptime) = match self.runner.spawn(&self.spec, &self.log_file) {
                Err(error) => {
                    tracing::error!(component = %name, restarts, %error, "could not start component");
                    (LastExit::from_error(&error), Duration::ZERO)
                }
                Ok(mut child) => {
                    let pid = child.pid();
                    let started = Instant::now();
                    self.store.update_component(self.index, |c| {
                        c.pid = Some(pid);
                        c.start_time = child.start_time();
                        c.state = ComponentPhase::Starting;
                        c.restarts = restarts;
                        c.since = chrono::Utc::now();
                    });
                    tracing::info!(component = %name, pid, restarts, "component started");
                    let outcome = tokio::select! {
                        biased;
                        () = stop_requested(&mut stop_rx) => Outcome::Stop,
                        exit = child.wait() => Outcome::Exited(exit),
                        never = self.become_ready(pid) => match never {},
                    };
                    match outcome {
                        Outcome::Stop => {
                            let exit = self.terminate(&mut child).await;
                            self.mark_stopped(exit);
                            return;
                        }
                        Outcome::Exited(exit) => {
                            // Helpers the component forked would otherwise linger, holding its
                            // ports, and make the restart fail.
                            if let Err(error) = self.runner.kill(pid, KillSignal::Kill) {
                                tracing::debug!(component = %name, pid, %error, "clearing process group");
                            }
                            let last_exit = match exit {
                                Ok(exit) => LastExit::from_exit(exit),
                                Err(error) => LastExit::from_error(&error),
                            };
                            (last_exit, started.elapsed())
                        }
                    }
                }
            };
            let delay = self.backoff.next_delay(uptime);
            tracing::warn!(
                component = %name,
                exit_code = last_exit.code,
                signal = last_exit.signal,
                error = last_exit.error.as_deref(),
                uptime_ms = u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
                restarts,
                backoff_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "component exited; restarting after back-off"
            );
            self.store.update_component(self.index, |c| {
                c.pid = None;
                c.start_time = None;
                c.state = ComponentPhase::Restarting;
                c.last_exit = Some(last_exit);
                c.since = chrono::Utc::now();
            });
            tokio::select! {
                () = sleep(delay) => {}
                () = stop_requested(&mut stop_rx) => {
                    self.mark_stopped(None);
                    return;
                }
            }
            restarts = restarts.saturating_add(1);
        }
    }

    /// Probes until the component is ready, records it, then never completes, so it can sit in
    /// a `select!` next to the child's exit for the whole life of the process.
    async fn become_ready(&self, pid: u32) -> std::convert::Infallible {
        let name = &self.spec.name;
        if self.spec.readiness.is_some() {
            let started = Instant::now();
            let timeout = self.spec.readiness_timeout();
            let mut next_complaint = started + timeout;
            loop {
                match self.probes.check(&self.spec).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::debug!(component = %name, pid, %error, "readiness probe failed");
                        if Instant::now() >= next_complaint {
                            tracing::error!(
                                component = %name,
                                pid,
                                waited_s = started.elapsed().as_secs(),
                                readiness_timeout_s = timeout.as_secs(),
                                last_error = %error,
                                "COMPONENT NOT READY after its readiness timeout; still waiting (later components stay stopped until it is ready)"
                            );
                            next_complaint += timeout;
                        }
                    }
                }
                sleep(PROBE_INTERVAL).await;
            }
        }
        self.store.update_component(self.index, |c| {
            c.state = ComponentPhase::Ready;
            c.since = chrono::Utc::now();
        });
        tracing::info!(component = %name, pid, "component ready");
        self.ready_tx.send_replace(true);
        std::future::pending().await
    }

    /// SIGTERM to the group, the grace period, then SIGKILL.
    async fn terminate(&self, child: &mut R::Child) -> Option<ExitInfo> {
        let name = &self.spec.name;
        let pid = child.pid();
        let grace = self.spec.stop_timeout();
        tracing::info!(component = %name, pid, grace_s = grace.as_secs(), "stopping component");
        if let Err(error) = self.runner.kill(pid, KillSignal::Term) {
            tracing::warn!(component = %name, pid, %error, "could not send SIGTERM");
        }
        let exit = match timeout(grace, child.wait()).await {
            Ok(exit) => exit,
            Err(_) => {
                tracing::warn!(component = %name, pid, grace_s = grace.as_secs(), "component did not stop in time; sending SIGKILL");
                if let Err(error) = self.runner.kill(pid, KillSignal::Kill) {
                    tracing::warn!(component = %name, pid, %error, "could not send SIGKILL");
                }
                match timeout(KILL_WAIT, child.wait()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        tracing::error!(component = %name, pid, "component survived SIGKILL; leaving it behind");
                        return None;
                    }
                }
            }
        };
        if let Err(error) = self.runner.kill(pid, KillSignal::Kill) {
            tracing::debug!(component = %name, pid, %error, "clearing process group");
        }
        match exit {
            Ok(exit) => {
                tracing::info!(component = %name, pid, exit = %exit, "component stopped");
                Some(exit)
            }
            Err(error) => {
                tracing::warn!(component = %name, pid, %error, "could not collect exit status");
                None
            }
        }
    }

    fn mark_stopped(&self, exit: Option<ExitInfo>) {
        self.store.update_component(self.index, |c| {
            c.pid = None;
            c.start_time = None;
            c.state = ComponentPhase::Stopped;
            if let Some(exit) = exit {
                c.last_exit = Some(LastExit::from_exit(exit));
            }
            c.since = chrono::Utc::now();
        });
    }
}

#[cfg(test)]
mod tests {
    //! The ordering and back-off logic against a fake runner, on tokio's paused clock: what
    //! takes minutes of back-off for real runs in milliseconds, with exact timings.

    use super::*;
    use crate::supervisor::config::Readiness;
    use std::collections::{HashMap, HashSet};
    use std::path::Path;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::oneshot;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Event {
        Spawn { name: String, pid: u32, at: Instant },
        Term { pid: u32 },
    }

    #[derive(Default)]
    struct Fake {
        next_pid: AtomicU32,
        events: Mutex<Vec<Event>>,
        exits: Mutex<HashMap<u32, oneshot::Sender<ExitInfo>>>,
        pids: Mutex<HashMap<String, u32>>,
        ready: Mutex<HashSet<String>>,
    }

    impl Fake {
        fn events(&self) -> Vec<Event> {
            self.events.lock().expect("lock").clone()
        }
        fn spawns_of(&self, name: &str) -> Vec<Instant> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Spawn { name: n, at, .. } if n == name => Some(at),
                    _ => None,
                })
                .collect()
        }
        fn set_ready(&self, name: &str) {
            self.ready.lock().expect("lock").insert(name.to_string());
        }
        /// Makes the current process of `name` exit with `code`.
        fn crash(&self, name: &str, code: i32) -> Instant {
            let pid = self.pids.lock().expect("lock")[name];
            let tx = self
                .exits
                .lock()
                .expect("lock")
                .remove(&pid)
                .expect("running");
            tx.send(ExitInfo {
                code: Some(code),
                signal: None,
            })
            .expect("child waits");
            Instant::now()
        }
    }

    struct FakeRunner(Arc<Fake>);
    struct FakeProbes(Arc<Fake>);

    struct FakeChild {
        pid: u32,
        exit: oneshot::Receiver<ExitInfo>,
    }

    impl ProcessRunner for FakeRunner {
        type Child = FakeChild;
        fn spawn(&self, component: &ComponentConfig, _log: &Path) -> Result<FakeChild> {
            let pid = self.0.next_pid.fetch_add(1, Ordering::SeqCst) + 1000;
            let (tx, rx) = oneshot::channel();
            self.0.exits.lock().expect("lock").insert(pid, tx);
            self.0
                .pids
                .lock()
                .expect("lock")
                .insert(component.name.clone(), pid);
            self.0.events.lock().expect("lock").push(Event::Spawn {
                name: component.name.clone(),
                pid,
                at: Instant::now(),
            });
            Ok(FakeChild { pid, exit: rx })
        }
        fn kill(&self, pid: u32, signal: KillSignal) -> Result<()> {
            if let Some(tx) = self.0.exits.lock().expect("lock").remove(&pid) {
                if signal == KillSignal::Term {
                    self.0
                        .events
                        .lock()
                        .expect("lock")
                        .push(Event::Term { pid });
                }
                let _ = tx.send(ExitInfo {
                    code: None,
                    signal: Some(if signal == KillSignal::Term { 15 } else { 9 }),
                });
            }
            Ok(())
        }
    }

    impl RunningChild for FakeChild {
        fn pid(&self) -> u32 {
            self.pid
        }
        fn start_time(&self) -> Option<u64> {
            None
        }
        async fn wait(&mut self) -> Result<ExitInfo> {
            match (&mut self.exit).await {
                Ok(exit) => Ok(exit),
                Err(_) => std::future::pending().await,
            }
        }
    }

    impl ReadinessCheck for FakeProbes {
        async fn check(&self, component: &ComponentConfig) -> Result<()> {
            if self.0.ready.lock().expect("lock").contains(&component.name) {
                Ok(())
            } else {
                Err(Error::Probe("fake: not ready".into()))
            }
        }
    }

    fn component(name: &str) -> ComponentConfig {
        ComponentConfig {
            name: name.into(),
            command: "/fake".into(),
            args: vec![],
            env: Default::default(),
            readiness: Some(Readiness::Exec(vec!["fake".into()])),
            readiness_timeout_seconds: 5,
            stop_timeout_seconds: 10,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn orders_start_restarts_with_backoff_and_stops_in_reverse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SupervisorConfig {
            log_dir: dir.path().join("log"),
            run_dir: dir.path().join("run"),
            components: vec![component("etcd"), component("apiserver")],
        };
        std::fs::create_dir_all(&config.run_dir).expect("run dir");
        let fake = Arc::new(Fake::default());
        let store = Arc::new(StateStore::new(&config));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let (fake, store, config) = (Arc::clone(&fake), Arc::clone(&store), config.clone());
            async move {
                supervise(
                    &config,
                    Arc::new(FakeRunner(Arc::clone(&fake))),
                    Arc::new(FakeProbes(fake)),
                    Backoff::default(),
                    store,
                    async move {
                        let _ = stop_rx.await;
                    },
                )
                .await;
            }
        });

        // The apiserver waits for etcd, even past etcd's readiness timeout.
        sleep(Duration::from_secs(20)).await;
        assert_eq!(fake.spawns_of("etcd").len(), 1);
        assert!(fake.spawns_of("apiserver").is_empty());
        assert_eq!(
            store.snapshot().components[0].state,
            ComponentPhase::Starting
        );

        let etcd_ready_at = Instant::now();
        fake.set_ready("etcd");
        sleep(Duration::from_secs(1)).await;
        let api_started = fake.spawns_of("apiserver");
        assert_eq!(api_started.len(), 1);
        assert!(api_started[0] >= etcd_ready_at);
        assert!(api_started[0] - etcd_ready_at <= PROBE_INTERVAL);
        fake.set_ready("apiserver");
        sleep(Duration::from_secs(1)).await;
        assert_eq!(store.snapshot().components[1].state, ComponentPhase::Ready);

        // Crashes right after each start: 1 s, 2 s, 4 s.
        for (n, want) in [(1, 1), (2, 2), (3, 4)] {
            let crashed_at = fake.crash("apiserver", 1);
            sleep(Duration::from_millis(want * 1000 - 1)).await;
            assert_eq!(
                fake.spawns_of("apiserver").len(),
                n,
                "not yet after {want} s"
            );
            let s = store.snapshot();
            assert_eq!(s.components[1].state, ComponentPhase::Restarting);
            assert_eq!(
                s.components[1].last_exit.as_ref().and_then(|e| e.code),
                Some(1)
            );
            sleep(Duration::from_millis(2)).await;
            let spawns = fake.spawns_of("apiserver");
            assert_eq!(spawns.len(), n + 1, "restarted after {want} s");
            assert_eq!(spawns[n] - crashed_at, Duration::from_secs(want));
            assert_eq!(store.snapshot().components[1].restarts, n as u32);
        }

        // A minute of uptime resets the back-off to 1 s.
        sleep(Duration::from_secs(61)).await;
        let crashed_at = fake.crash("apiserver", 2);
        sleep(Duration::from_millis(1100)).await;
        let spawns = fake.spawns_of("apiserver");
        assert_eq!(spawns.len(), 5);
        assert_eq!(spawns[4] - crashed_at, Duration::from_secs(1));
        assert_eq!(fake.spawns_of("etcd").len(), 1, "etcd was left alone");

        stop_tx.send(()).expect("supervisor waits");
        task.await.expect("supervise returns");
        let terms: Vec<u32> = fake
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Term { pid } => Some(pid),
                _ => None,
            })
            .collect();
        let pids = fake.pids.lock().expect("lock").clone();
        assert_eq!(terms, [pids["apiserver"], pids["etcd"]], "reverse order");
        let s = store.snapshot();
        assert!(
            s.components
                .iter()
                .all(|c| c.state == ComponentPhase::Stopped && c.pid.is_none())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_before_ready_never_starts_later_components() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = SupervisorConfig {
            log_dir: dir.path().join("log"),
            run_dir: dir.path().to_path_buf(),
            components: vec![component("etcd"), component("apiserver")],
        };
        let fake = Arc::new(Fake::default());
        let store = Arc::new(StateStore::new(&config));
        supervise(
            &config,
            Arc::new(FakeRunner(Arc::clone(&fake))),
            Arc::new(FakeProbes(Arc::clone(&fake))),
            Backoff::default(),
            Arc::clone(&store),
            sleep(Duration::from_secs(3)),
        )
        .await;
        assert_eq!(fake.spawns_of("etcd").len(), 1);
        assert!(fake.spawns_of("apiserver").is_empty());
        assert_eq!(
            store.snapshot().components[0].state,
            ComponentPhase::Stopped
        );
    }
}
