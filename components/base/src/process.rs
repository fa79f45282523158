//! The process shell of a leader-elected component (controller-manager, scheduler): the
//! apiserver client from a kubeconfig, shutdown on SIGTERM/SIGINT, and the lease around the
//! component's work.
//!
//! ```text
//!  acquire lease ─► work + renew lease ─┬─ work ends (after shutdown): release, Stopped
//!  (standby waits)                      └─ lease lost: Err at once, the process exits
//!  shutdown while waiting: release, BeforeLeading          non-zero and restarts as standby
//! ```
//!
//! Both components must behave alike here (exit codes, what happens to the lease), so the
//! rules live once; how a component winds its own work down stays with it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::leader::{LeaderElectionConfig, LeaderElector};

/// How long a component may take to finish its current work after SIGTERM before it
/// abandons it (the next leader redoes it).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

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

/// How a leader-elected run ended without losing the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown came while waiting for the lease; the work never started.
    BeforeLeading,
    /// The work finished (after shutdown) and the lease was released.
    Stopped,
}

/// Runs `work` while this process holds the lease of `election` (at once when `None`, i.e.
/// `--leader-elect=false`).
///
/// `work` is polled only once the lease is held, and is expected to end after `shutdown`
/// (bounding its own wind-down, e.g. by [`STOP_GRACE`]). Losing the lease drops `work` at
/// once and returns the loss as an error without releasing, so the caller exits non-zero.
pub async fn run_leader_elected<W, E>(
    client: Client,
    election: Option<LeaderElectionConfig>,
    shutdown: &Shutdown,
    work: W,
) -> std::result::Result<Ended, E>
where
    W: Future<Output = std::result::Result<(), E>>,
    E: From<Error> + std::fmt::Display,
{
    let elector = match election {
        Some(config) => Some(Arc::new(LeaderElector::new(client, config)?)),
        None => None,
    };
    let mut renewing: Option<JoinHandle<Error>> = None;
    if let Some(e) = &elector {
        tokio::select! {
            () = e.acquire() => {}
            () = shutdown.wait() => {
                tracing::info!("shutting down before leading");
                // The last attempt may have taken the lease just before the signal.
                release(e).await;
                return Ok(Ended::BeforeLeading);
            }
        }
        let e = Arc::clone(e);
        renewing = Some(tokio::spawn(async move { e.keep_renewing().await }));
    }

    let lost = tokio::select! {
        r = work => {
            r?;
            None
        }
        e = leadership_lost(renewing.as_mut()) => Some(e),
    };
    if let Some(err) = lost {
        let err = E::from(err);
        tracing::error!(error = %err, "leaderelection lost");
        return Err(err);
    }
    if let Some(h) = renewing {
        h.abort();
    }
    if let Some(e) = &elector {
        release(e).await;
    }
    Ok(Ended::Stopped)
}

/// Gives the lease up if this process holds it; a failure only delays the next leader.
async fn release(elector: &LeaderElector) {
    if let Err(err) = elector.release().await {
        tracing::warn!(error = %err, "could not release the leader lease; a standby takes over after it expires");
    }
}

/// Resolves when the renewal task ends, i.e. leadership is lost; never without elections.
async fn leadership_lost(renewing: Option<&mut JoinHandle<Error>>) -> Error {
    match renewing {
        Some(h) => match h.await {
            Ok(e) => e,
            Err(join) => Error::RenewTask(join.to_string()),
        },
        None => std::future::pending().await,
    }
}

/// Process shutdown on SIGTERM or SIGINT, observable by any number of tasks.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers now (so an early SIGTERM is not lost).
    pub fn on_signals() -> Result<Self> {
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

    /// Resolves once shutdown was requested.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// The same as [`Shutdown::wait`], as the `Send + Sync + 'static` future kube-runtime's
    /// `graceful_shutdown_on` takes.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let me = self.clone();
        tokio::spawn(async move {
            me.wait().await;
            let _ = tx.send(());
        });
        async move {
            let _ = rx.await;
        }
    }
}
