//! Wiring: apiserver client, health endpoint, warm caches, leader election, the scheduling
//! thread, and shutdown.
//!
//! ```text
//!  start ─► client ─► /healthz ─► watchers listed ─► acquire lease ─► scheduling thread
//!                                 (standbys keep      (standby waits     + renew lease
//!                                  warm caches)        here, healthy)     │
//!        SIGTERM: stop the thread, release the lease, exit 0 ◄────────────┤
//!        lease lost: stop scheduling at once, exit 1 ◄────────────────────┘
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kadm_base::health::HealthServer;
use kadm_base::leader::{self, LeaderElectionConfig, LeaderElector};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::binder::Binder;
use crate::error::{Error, Result};
use crate::events::EventRecorder;
use crate::informers::Informers;
use crate::options::Options;
use crate::queue::{Backoff, SchedulingQueue};
use crate::scheduler::{Config, Scheduler, Shared};

/// How long the scheduling thread may take to finish its current pod after a stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the scheduler until SIGTERM/SIGINT (`Ok`) or until leadership is lost (`Err`, so
/// the process exits non-zero and its supervisor restarts it as a standby).
pub async fn run(opts: Options) -> Result<()> {
    opts.validate()?;
    let names = opts.scheduler_names();
    let client = client_from_kubeconfig(&opts.kubeconfig).await?;
    let shutdown = Shutdown::on_signals()?;
    let _health = HealthServer::start(SocketAddr::new(opts.bind_address, opts.secure_port)).await?;
    tracing::info!(version = kadm_base::VERSION, scheduler_names = ?names, leader_elect = opts.leader_elect, "kadm-scheduler starting");

    let queue = SchedulingQueue::new(Backoff {
        initial: Duration::from_secs(opts.pod_initial_backoff_seconds),
        max: Duration::from_secs(opts.pod_max_backoff_seconds),
    });
    let shared = Arc::new(Shared::new(queue, names));
    let informers = tokio::select! {
        i = Informers::start(client.clone(), Arc::clone(&shared)) => i,
        () = shutdown.wait() => {
            tracing::info!("shutting down before the caches were filled");
            return Ok(());
        }
    };
    tracing::info!("caches filled");

    let elector = if opts.leader_elect {
        Some(Arc::new(LeaderElector::new(
            client.clone(),
            leader_config(&opts)?,
        )?))
    } else {
        None
    };
    let mut renewing: Option<JoinHandle<kadm_base::Error>> = None;
    if let Some(e) = &elector {
        tokio::select! {
            () = e.acquire() => {}
            () = shutdown.wait() => {
                tracing::info!("shutting down before leading");
                release(e).await;
                return Ok(());
            }
        }
        let e = Arc::clone(e);
        renewing = Some(tokio::spawn(async move { e.keep_renewing().await }));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let thread = start_scheduling_thread(&opts, Arc::clone(&shared), client, Arc::clone(&stop))?;
    let lost = tokio::select! {
        e = leadership_lost(renewing.as_mut()) => Some(e),
        () = shutdown.wait() => None,
    };
    stop.store(true, Ordering::SeqCst);
    shared.queue.close();
    if let Some(err) = lost {
        tracing::error!(error = %err, "leaderelection lost");
        return Err(err);
    }
    let joined = tokio::task::spawn_blocking(move || thread.join());
    if tokio::time::timeout(STOP_GRACE, joined).await.is_err() {
        tracing::warn!(
            grace_s = STOP_GRACE.as_secs(),
            "the scheduling thread did not stop in time"
        );
    }
    drop(informers);
    if let Some(h) = renewing {
        h.abort();
    }
    if let Some(e) = &elector {
        release(e).await;
    }
    tracing::info!("kadm-scheduler stopped");
    Ok(())
}

fn start_scheduling_thread(
    opts: &Options,
    shared: Arc<Shared>,
    client: Client,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = opts.parallelism.min(cpus).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("kadm-filter-{i}"))
        .build()
        .map_err(|e| Error::ThreadPool(e.to_string()))?;
    let runtime = tokio::runtime::Handle::current();
    let instance = leader::default_identity()
        .ok()
        .and_then(|id| id.rsplit_once('_').map(|(host, _)| host.to_string()))
        .unwrap_or_else(|| "kadm".to_string());
    let events = EventRecorder::start(client.clone(), instance);
    let binder = Binder::new(client.clone(), opts.concurrent_binds, runtime.clone());
    let config = Config {
        percentage_of_nodes_to_score: opts.percentage_of_nodes_to_score,
    };
    let scheduler = Scheduler::new(shared, client, events, binder, runtime, pool, config);
    tracing::info!(filter_threads = threads, "scheduling");
    std::thread::Builder::new()
        .name("kadm-schedule".into())
        .spawn(move || scheduler.run(stop))
        .map_err(|source| Error::Thread {
            what: "scheduling",
            source,
        })
}

/// Gives the lease up if this process holds it; a failure only delays the next leader.
async fn release(elector: &LeaderElector) {
    if let Err(err) = elector.release().await {
        tracing::warn!(error = %err, "could not release the leader lease; a standby takes over after it expires");
    }
}

/// A client for the apiserver named in a kubeconfig, with its credentials.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig_err = |source| Error::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kc = Kubeconfig::read_from(path).map_err(kubeconfig_err)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_err)?;
    Client::try_from(config).map_err(|source| Error::Client {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

fn leader_config(opts: &Options) -> Result<LeaderElectionConfig> {
    let identity = match &opts.leader_elect_identity {
        Some(id) => id.clone(),
        None => leader::default_identity()?,
    };
    Ok(LeaderElectionConfig {
        lease_namespace: opts.leader_elect_resource_namespace.clone(),
        lease_name: opts.leader_elect_resource_name.clone(),
        identity,
        lease_duration: opts.leader_elect_lease_duration,
        renew_deadline: opts.leader_elect_renew_deadline,
        retry_period: opts.leader_elect_retry_period,
    })
}

/// Resolves when the renewal task ends, i.e. leadership is lost; never without elections.
async fn leadership_lost(renewing: Option<&mut JoinHandle<kadm_base::Error>>) -> Error {
    match renewing {
        Some(h) => match h.await {
            Ok(e) => Error::Base(e),
            Err(join) => Error::RenewTask(join.to_string()),
        },
        None => std::future::pending().await,
    }
}

/// Process shutdown on SIGTERM or SIGINT, observable by any number of tasks.
#[derive(Clone)]
struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers now (so an early SIGTERM is not lost).
    fn on_signals() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("received SIGTERM, shutting down"),
                _ = int.recv() => tracing::info!("received SIGINT, shutting down"),
            }
            let _ = tx.send(true);
        });
        Ok(Self { rx })
    }

    async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}
