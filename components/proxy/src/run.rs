//! The process: reflectors for Services and EndpointSlices, a coalescing sync loop, the
//! service-range route and `/healthz`.
//!
//! ```text
//!  watch events ─► Notify ─► wait min-sync-period since the last sync ─► snapshot stores
//!  (or sync-period timer)      ─► Syncer::sync in a blocking task (nft, conntrack)
//!  SIGTERM ─► stop; routes this process added are removed; the table stays, so Services
//!             keep working while the proxy restarts (as kube-proxy leaves its rules)
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kadm_base::health::HealthServer;
use kadm_base::process::{Shutdown, client_from_kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::host::{Conntrack, Exec, Nft, RouteKind};
use crate::model::{Snapshot, build_snapshot};
use crate::options::Options;
use crate::routes::RouteGuard;
use crate::rules::RuleConfig;
use crate::sync::Syncer;

/// Runs kadm-proxy until SIGTERM/SIGINT.
pub async fn run(opts: Options) -> Result<()> {
    let config = RuleConfig {
        node_name: opts.node_name()?,
        cluster_cidrs: opts.cluster_cidrs()?,
        masquerade_all: opts.masquerade_all,
        nodeport_cidrs: opts.nodeport_cidrs()?,
        service_cidr: opts.service_cidr()?,
    };
    let shutdown = Shutdown::on_signals()?;
    let client = client_from_kubeconfig(&opts.kubeconfig).await?;
    let _health = HealthServer::start(opts.healthz_bind_address).await?;
    tracing::info!(version = kadm_base::VERSION, node = %config.node_name, "kadm-proxy starting");

    let exec = Exec::default();
    let wanted: Vec<_> = config
        .service_cidr
        .iter()
        .map(|c| (*c, RouteKind::Loopback))
        .collect();
    let routes = RouteGuard::ensure(exec.clone(), &wanted)?;
    let result = sync_until(
        client,
        Syncer::new(exec.clone(), exec, config),
        &opts,
        &shutdown,
    )
    .await;
    routes.release();
    result
}

/// Watches the API and syncs until `shutdown`.
pub async fn sync_until<N: Nft, C: Conntrack>(
    client: Client,
    syncer: Syncer<N, C>,
    opts: &Options,
    shutdown: &Shutdown,
) -> Result<()> {
    let changed = Arc::new(Notify::new());
    let (services, svc_task) = reflect::<Service>(Api::all(client.clone()), Arc::clone(&changed));
    let (slices, slice_task) = reflect::<EndpointSlice>(Api::all(client), Arc::clone(&changed));
    let _tasks = AbortOnDrop(vec![svc_task, slice_task]);

    // A first sync on empty caches would wipe the rules other nodes' clients rely on.
    tokio::select! {
        r = async { tokio::try_join!(services.wait_until_ready(), slices.wait_until_ready()) } => {
            r.map_err(|e| Error::Cache { what: "service and endpointslice", reason: e.to_string() })?;
        }
        () = shutdown.wait() => return Ok(()),
    }
    tracing::info!("caches filled");

    let snapshot = || {
        build_snapshot(
            services.state().iter().map(AsRef::as_ref),
            slices.state().iter().map(AsRef::as_ref),
        )
    };
    let timing = Timing {
        min_interval: opts.min_sync_period,
        resync: opts.sync_period,
    };
    sync_loop(syncer, snapshot, &changed, timing, shutdown.wait()).await?;
    Ok(())
}

/// When syncs happen.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Least time between two syncs: a burst of changes (a rollout touching many
    /// EndpointSlices) becomes one sync (kube-proxy's `--min-sync-period`).
    pub min_interval: Duration,
    /// A sync even without changes (kube-proxy's `--sync-period`).
    pub resync: Duration,
}

/// Syncs once at start, then after every notification on `changed` (or `resync`),
/// never more often than `min_interval`, until `stop` resolves. A failed sync is retried
/// after `min_interval`. Returns the syncer, e.g. for tests to inspect.
pub async fn sync_loop<N: Nft, C: Conntrack>(
    mut syncer: Syncer<N, C>,
    snapshot: impl Fn() -> Snapshot,
    changed: &Notify,
    timing: Timing,
    stop: impl Future<Output = ()>,
) -> Result<Syncer<N, C>> {
    let mut stop = std::pin::pin!(stop);
    let mut last_sync: Option<Instant> = None;
    loop {
        if let Some(t) = last_sync {
            tokio::select! {
                () = tokio::time::sleep_until((t + timing.min_interval).into()) => {}
                () = &mut stop => return Ok(syncer),
            }
        }
        let snapshot = snapshot();
        let started = Instant::now();
        let (back, result) = tokio::task::spawn_blocking(move || {
            let r = syncer.sync(&snapshot);
            (syncer, r)
        })
        .await
        .map_err(|e| Error::SyncTask(e.to_string()))?;
        syncer = back;
        last_sync = Some(Instant::now());
        match result {
            Ok(o) if o.applied => tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                bytes = o.bytes,
                conntrack_deletes = o.conntrack_deletes,
                "rules applied"
            ),
            Ok(_) => tracing::debug!("rules unchanged"),
            Err(e) => {
                tracing::error!(error = %e, "sync failed; retrying");
                continue;
            }
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(timing.resync) => {}
            () = &mut stop => return Ok(syncer),
        }
    }
}

/// A reflector feeding `store`, notifying `changed` on every event.
fn reflect<K>(api: Api<K>, changed: Arc<Notify>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::warn!(error = %e, "watch failed; retrying"),
            }
        }
    });
    (store, task)
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Call, Recorder};
    use crate::testdata::{ready, service, slice};
    use std::sync::Mutex;

    /// A burst of changes within the minimum interval becomes one more sync, not one each.
    #[tokio::test]
    async fn bursts_of_changes_are_coalesced_into_one_sync() {
        let rec = Recorder::default();
        let syncer = Syncer::new(rec.clone(), rec.clone(), RuleConfig::default());
        let endpoints = Arc::new(Mutex::new(vec!["10.244.1.2".to_owned()]));
        let snapshot = {
            let endpoints = Arc::clone(&endpoints);
            move || {
                let ips = endpoints.lock().expect("lock").clone();
                let eps: Vec<_> = ips.iter().map(|ip| ready(ip, "n")).collect();
                build_snapshot(
                    &[service("default", "web", "10.96.0.10", "TCP", 80)],
                    &[slice("default", "web", "a", "TCP", 80, &eps)],
                )
            }
        };
        let changed = Arc::new(Notify::new());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let timing = Timing {
            min_interval: Duration::from_millis(800),
            resync: Duration::from_secs(3600),
        };
        let notifier = {
            let changed = Arc::clone(&changed);
            let endpoints = Arc::clone(&endpoints);
            async move {
                // Ten changes, 20 ms apart, all inside one minimum interval.
                for i in 3..13 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    endpoints
                        .lock()
                        .expect("lock")
                        .push(format!("10.244.1.{i}"));
                    changed.notify_one();
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let _ = stop_tx.send(());
            }
        };
        let (res, ()) = tokio::join!(
            sync_loop(syncer, snapshot, &changed, timing, async {
                let _ = stop_rx.await;
            }),
            notifier
        );
        res.expect("loop");
        let applied: Vec<String> = rec
            .take()
            .into_iter()
            .filter_map(|c| match c {
                Call::Nft(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(
            applied.len(),
            2,
            "one sync at start, one for the whole burst"
        );
        assert!(
            applied[1].contains("dnat to 10.244.1.12:80"),
            "{}",
            applied[1]
        );
    }
}
