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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kadm_base::health::HealthServer;
use kadm_base::leader::{self, LeaderElectionConfig};
use kadm_base::process::{Ended, STOP_GRACE, Shutdown, client_from_kubeconfig, run_leader_elected};
use kube::Client;

use crate::binder::Binder;
use crate::error::{Error, Result};
use crate::events::EventRecorder;
use crate::informers::Informers;
use crate::options::Options;
use crate::queue::{Backoff, SchedulingQueue};
use crate::scheduler::{Config, Scheduler, Shared};

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

    let election = if opts.leader_elect {
        Some(leader_config(&opts)?)
    } else {
        None
    };
    let work = async {
        let stop = Arc::new(AtomicBool::new(false));
        // Stops scheduling as soon as the work ends or is dropped (leadership lost).
        let _stopping = StopOnDrop {
            stop: Arc::clone(&stop),
            shared: Arc::clone(&shared),
        };
        let thread = start_scheduling_thread(
            &opts,
            Arc::clone(&shared),
            client.clone(),
            Arc::clone(&stop),
        )?;
        shutdown.wait().await;
        stop.store(true, Ordering::SeqCst);
        shared.queue.close();
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(STOP_GRACE, joined).await.is_err() {
            tracing::warn!(
                grace_s = STOP_GRACE.as_secs(),
                "the scheduling thread did not stop in time"
            );
        }
        drop(informers);
        Ok::<(), Error>(())
    };
    if run_leader_elected(client.clone(), election, &shutdown, work).await? == Ended::Stopped {
        tracing::info!("kadm-scheduler stopped");
    }
    Ok(())
}

/// Tells the scheduling thread to stop and wakes it from the queue.
struct StopOnDrop {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shared.queue.close();
    }
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
