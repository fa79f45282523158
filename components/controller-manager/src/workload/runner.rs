//! How the object controllers here are driven, so that each of them only says what it
//! watches and how one object is synced: the kube-runtime `Controller` loop with its
//! concurrency and graceful shutdown, per-object retry back-off for failed syncs, and the
//! logging of what the loop reports.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use kube::api::DynamicObject;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::backoff::{Failures, exponential};
use crate::error::{Error, Result, is_conflict};

/// The key an object's failures are counted under (`namespace/name`, as Kubernetes' work
/// queues key objects).
pub fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// A controller's retry policy for failed syncs: per-object exponential back-off, reset by
/// the next successful sync of that object.
#[derive(Debug)]
pub struct Retry {
    base: Duration,
    max: Duration,
    quiet_conflicts: bool,
    failures: Failures,
}

impl Retry {
    /// Back-off from `base`, doubling per consecutive failure, at most `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            quiet_conflicts: false,
            failures: Failures::default(),
        }
    }

    /// Kubernetes' default controller rate limiter: 5 ms doubling up to 1000 s.
    pub fn default_rate_limiter() -> Self {
        Self::new(Duration::from_millis(5), Duration::from_secs(1000))
    }

    /// Logs conflicts at debug level only: for controllers that write from a cache, where a
    /// write based on a cache older than the object is routine and simply retried.
    pub fn quiet_conflicts(self) -> Self {
        Self {
            quiet_conflicts: true,
            ..self
        }
    }

    fn forget(&self, key: &str) {
        self.failures.forget(key);
    }

    /// Counts a failed sync of the object under `key` and requeues it after the back-off.
    fn requeue(&self, controller: &'static str, key: &str, err: &Error) -> Action {
        let delay = exponential(self.failures.record(key), self.base, self.max);
        let retry_in_ms = delay.as_millis() as u64;
        if self.quiet_conflicts && is_conflict(err) {
            tracing::debug!(controller, object = %key, error = %err, retry_in_ms, "object changed during its sync; retrying");
        } else {
            tracing::warn!(controller, object = %key, error = %err, retry_in_ms, "sync failed");
        }
        Action::requeue(delay)
    }
}

type GoneHook<C> =
    Box<dyn Fn(Arc<C>, ObjectRef<DynamicObject>) -> BoxFuture<'static, ()> + Send + Sync>;

/// One controller's loop settings; [`Runner::run`] drives it.
pub struct Runner<C> {
    name: &'static str,
    concurrency: u16,
    retry: Retry,
    gone: Option<GoneHook<C>>,
}

impl<C: Send + Sync + 'static> Runner<C> {
    /// The loop of the controller `name` (as logged), syncing at most `concurrency` objects
    /// at once and retrying failed syncs by `retry`.
    pub fn new(name: &'static str, concurrency: u16, retry: Retry) -> Self {
        Self {
            name,
            concurrency,
            retry,
            gone: None,
        }
    }

    /// Calls `hook` for a queued object found deleted before its sync, for controllers that
    /// clean up after deleted objects.
    pub fn on_gone<F, Fut>(self, hook: F) -> Self
    where
        F: Fn(Arc<C>, ObjectRef<DynamicObject>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            gone: Some(Box::new(move |ctx, obj| hook(ctx, obj).boxed())),
            ..self
        }
    }

    /// Runs `controller` with `reconcile` until `shutdown` resolves. A failed sync is
    /// requeued after the object's back-off; a successful one resets it.
    pub async fn run<K, F>(
        self,
        controller: Controller<K>,
        mut reconcile: impl FnMut(Arc<K>, Arc<C>) -> F,
        ctx: Arc<C>,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) where
        K: Clone + Resource + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Eq + Hash + Clone + Debug + Unpin,
        F: Future<Output = Result<Action>> + Send + 'static,
    {
        let Self {
            name,
            concurrency,
            retry,
            gone,
        } = self;
        let retry = Arc::new(retry);
        let forgetting = retry.clone();
        let reconcile = move |obj: Arc<K>, ctx: Arc<C>| {
            let (k, retry) = (key(&*obj), forgetting.clone());
            reconcile(obj, ctx).inspect(move |res| {
                if res.is_ok() {
                    retry.forget(&k);
                }
            })
        };
        let error_policy =
            move |obj: Arc<K>, err: &Error, _: Arc<C>| retry.requeue(name, &key(&*obj), err);
        let (gone, gone_ctx) = (&gone, &ctx.clone());
        controller
            .with_config(controller::Config::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown)
            .run(reconcile, error_policy, ctx)
            .for_each(|res| async move {
                match res {
                    Ok((obj, _)) => tracing::trace!(controller = name, object = %obj, "synced"),
                    Err(controller::Error::ReconcilerFailed(_, _)) => {}
                    Err(controller::Error::ObjectNotFound(obj)) => {
                        tracing::debug!(controller = name, object = %obj, "object gone before its sync");
                        if let Some(hook) = gone {
                            hook(gone_ctx.clone(), *obj).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(controller = name, error = %e, "watch trouble, retrying")
                    }
                }
            })
            .await;
        tracing::info!(controller = name, "controller stopped");
    }
}
