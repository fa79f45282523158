//! The watch cache: LIST and WATCH served from memory, kept current by etcd's watch.
//!
//! # One etcd watch for the whole keyspace, one cache per resource prefix
//!
//! Kubernetes runs one etcd watch per resource and proves a cache fresh with etcd
//! progress notifications (`RequestProgress`). etcd before 3.4.31 / 3.5.13 may send a
//! progress notification *before* events it covers (etcd-io/etcd#15220, #17507), so
//! Kubernetes serves consistent reads from etcd on those versions — and Debian 12 ships
//! etcd 3.4.23. kadm follows **all keys** with a single watch instead and demultiplexes
//! the events into one [`Cacher`] per etcd prefix (events.k8s.io shares core events'
//! prefix). Every etcd revision is one write, so on a stream that sees every key the
//! revision of the last applied event *is* the cache's progress: once it reaches a
//! revision, every change up to it has been applied, for every resource. That makes
//! consistent reads exact with no progress notification at all:
//!
//! * **consistent** (`resourceVersion=""`): read etcd's current revision with a cheap
//!   linearizable request, wait until the cache has applied it (at most
//!   [`FRESHNESS_TIMEOUT`]), serve from memory — or fall back to etcd on timeout, as
//!   Kubernetes does.
//! * **NotOlderThan N**: wait until the cache has applied N (same bound), else 504
//!   `Too large resource version`.
//! * **Any** (`"0"`): the cache as it is.
//!
//! A page of a cached list reflects exactly one revision R (the cache is etcd at R for
//! that prefix), so its continue token `{rv: R, start}` is served by the etcd path,
//! which reads the following pages at revision R.
//!
//! # History and fan-out
//!
//! Each prefix keeps a ring of its last `window` changes (`--watch-cache-size`,
//! default [`DEFAULT_WINDOW`]). A watch from resourceVersion N starts if every change
//! after N is still in the ring, else it gets Kubernetes' `410 Expired` "too old
//! resource version: N (oldest)". Live changes go through a bounded broadcast to each
//! watcher's task and from it into the watcher's bounded queue
//! (`--watch-queue-size`); a watcher whose queue is full, or whose task fell a whole
//! broadcast behind, is closed — never waited for — and its client re-watches from its
//! last resourceVersion. Objects are serialized once when their event arrives; watchers
//! and lists share those bytes.
//!
//! # Life cycle
//!
//! Started at boot: a list of every prefix at one revision, then the watch from the
//! next one. A dropped watch resumes from the last applied revision; a compacted one
//! (the apiserver was cut off from etcd for long) re-lists, which ends the live watchers.
//! Until the first list is loaded the cache is not ready: lists go to etcd, watches
//! wait for it, and `/readyz` says so.

mod cacher;
mod entry;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kadm_apimachinery::ResourceInfo;

pub use cacher::{Cacher, Page, TooOld, WatchFrom, WatchStart};
pub use entry::{Entry, Event, EventType, Layout};

use crate::storage::Store;

/// Changes kept per resource for watches that resume from a resourceVersion. A client
/// whose watch ends (timeout, a dropped slow watcher, an apiserver restart of a
/// neighbour) resumes from its last resourceVersion; 1024 changes cover ~10 s of a
/// resource written 100 times a second and ~17 min of 100 kubelets renewing leases every
/// 10 s — beyond that the client re-lists. Most entries share their object with the
/// current state, so the ring costs little more than the superseded versions it holds.
pub const DEFAULT_WINDOW: usize = 1024;
/// Events queued per watcher before a watcher that does not keep up is closed. The
/// events are shared bytes, so a full queue costs 1024 pointers, not 1024 objects.
pub const DEFAULT_QUEUE: usize = 1024;
/// How long a read waits for the cache to reach the revision it needs (Kubernetes: 3 s).
pub const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys per etcd range request while (re)listing.
const LIST_PAGE: i64 = 1000;

#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    pub window: usize,
    pub queue: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            window: DEFAULT_WINDOW,
            queue: DEFAULT_QUEUE,
        }
    }
}

pub struct WatchCache {
    store: Store,
    /// One per distinct etcd prefix, longest prefix first (for key matching).
    cachers: Vec<Arc<Cacher>>,
    applied: Arc<AtomicI64>,
    rev: tokio::sync::watch::Sender<i64>,
    ready: tokio::sync::watch::Sender<bool>,
    pub config: CacheConfig,
}

/// Why following etcd stopped.
enum Stop {
    /// The watch's start revision was compacted: list again.
    Compacted,
    /// The stream ended or failed: watch again from this revision on.
    Disconnected(String),
}

impl WatchCache {
    /// The cache for every resource in the registry (not yet loaded; see [`Self::start`]).
    pub fn new(store: Store, config: CacheConfig) -> Arc<WatchCache> {
        let applied = Arc::new(AtomicI64::new(0));
        let mut prefixes: BTreeMap<String, Vec<&'static ResourceInfo>> = BTreeMap::new();
        for r in kadm_apimachinery::registry::all() {
            prefixes
                .entry(format!("/registry/{}/", r.etcd_prefix))
                .or_default()
                .push(r);
        }
        let mut cachers: Vec<Arc<Cacher>> = prefixes
            .into_iter()
            .map(|(prefix, resources)| {
                let primary = resources
                    .iter()
                    .copied()
                    .find(|r| r.group != "events.k8s.io")
                    .unwrap_or(resources[0]);
                let mut fields: Vec<&'static str> = Vec::new();
                for r in &resources {
                    for f in r.supported_fields() {
                        if !fields.contains(&f) {
                            fields.push(f);
                        }
                    }
                }
                let transformer = store.transformer_for_prefix(&prefix);
                Arc::new(
                    Cacher::new(
                        prefix,
                        Layout { primary, fields },
                        config.window,
                        applied.clone(),
                    )
                    .with_transformer(transformer),
                )
            })
            .collect();
        cachers.sort_by_key(|c| std::cmp::Reverse(c.prefix.len()));
        Arc::new(WatchCache {
            store,
            cachers,
            applied,
            rev: tokio::sync::watch::channel(0).0,
            ready: tokio::sync::watch::channel(false).0,
            config,
        })
    }

    /// Loads the cache and keeps it current, in the background.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }

    /// The cache of a resource's etcd prefix.
    pub fn cacher(&self, res: &ResourceInfo) -> Option<&Arc<Cacher>> {
        let prefix = format!("/registry/{}/", res.etcd_prefix);
        self.cachers.iter().find(|c| c.prefix == prefix)
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the cache is loaded; false after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|r| *r)).await,
            Ok(Ok(_))
        )
    }

    /// The revision every prefix has applied.
    pub fn revision(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Waits until the cache has applied `rev`; `Err(current)` after `timeout`.
    pub async fn wait_for(&self, rev: i64, timeout: Duration) -> Result<(), i64> {
        let mut rx = self.rev.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.revision()),
        }
    }

    /// etcd's current revision (a linearizable read).
    pub async fn etcd_revision(&self) -> Result<i64, etcd_client::Error> {
        self.store.current_revision().await
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        let mut resume: Option<i64> = None;
        loop {
            let from = match resume {
                Some(r) => r,
                None => {
                    let _ = self.ready.send_replace(false);
                    match self.relist().await {
                        Ok(r) => {
                            let _ = self.ready.send_replace(true);
                            r
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "watch cache: listing etcd failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            continue;
                        }
                    }
                }
            };
            let started = tokio::time::Instant::now();
            match self.follow(from).await {
                Stop::Compacted => {
                    tracing::warn!(
                        revision = from,
                        "watch cache: etcd compacted past the cache; listing again"
                    );
                    resume = None;
                }
                Stop::Disconnected(why) => {
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = Duration::from_millis(100);
                    }
                    let at = self.revision();
                    tracing::warn!(revision = at, error = %why, retry_in_ms = backoff.as_millis() as u64, "watch cache: etcd watch ended; resuming");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    resume = Some(at);
                }
            }
        }
    }

    /// Lists every prefix at one revision and replaces the cached state.
    async fn relist(&self) -> Result<i64, crate::storage::StoreError> {
        let rev = self.store.current_revision().await?;
        for c in &self.cachers {
            let mut objects = BTreeMap::new();
            let mut start: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list_raw(&c.prefix, start.as_deref(), rev, LIST_PAGE)
                    .await?;
                for kv in page.kvs() {
                    let key: Arc<str> = Arc::from(String::from_utf8_lossy(kv.key()).as_ref());
                    match c.decode(key.clone(), kv.value(), kv.mod_revision()) {
                        Ok(e) => {
                            objects.insert(key, Arc::new(e));
                        }
                        Err(e) => {
                            tracing::warn!(key = %key, error = %e, "stored object cannot be decoded; the watch cache skips it")
                        }
                    }
                }
                match page.kvs().last() {
                    Some(last) if page.more() => {
                        start = Some(format!("{}\0", String::from_utf8_lossy(last.key())));
                    }
                    _ => break,
                }
            }
            c.reset(objects, rev);
        }
        self.publish(rev);
        let objects: usize = self.cachers.iter().map(|c| c.object_count()).sum();
        tracing::info!(
            revision = rev,
            objects,
            prefixes = self.cachers.len(),
            "watch cache loaded"
        );
        Ok(rev)
    }

    fn publish(&self, rev: i64) {
        self.applied.store(rev, Ordering::Release);
        self.rev.send_replace(rev);
    }

    /// Follows every key from `from + 1` on until the stream stops.
    async fn follow(&self, from: i64) -> Stop {
        let ws = match self.store.watch_all(from + 1).await {
            Ok(ws) => ws,
            Err(e) => return Stop::Disconnected(e.to_string()),
        };
        // The request half stays open: closing it would end the watch.
        let (_requests, mut stream) = ws.split();
        loop {
            let resp = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Stop::Disconnected("etcd closed the watch".into()),
                Err(e) => return Stop::Disconnected(e.to_string()),
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    return Stop::Compacted;
                }
                return Stop::Disconnected(format!(
                    "etcd cancelled the watch: {}",
                    resp.cancel_reason()
                ));
            }
            if !resp.events().is_empty() {
                self.apply(resp.events());
            }
        }
    }

    /// Applies one watch response: each prefix's events under one lock, then the
    /// revision is published.
    fn apply(&self, events: &[etcd_client::Event]) {
        let mut groups: Vec<(usize, Vec<&etcd_client::Event>)> = Vec::new();
        let mut max_rev = self.revision();
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            max_rev = max_rev.max(kv.mod_revision());
            let key = kv.key();
            let Some(i) = self
                .cachers
                .iter()
                .position(|c| key.starts_with(c.prefix.as_bytes()))
            else {
                continue;
            };
            match groups.iter_mut().find(|(g, _)| *g == i) {
                Some((_, v)) => v.push(ev),
                None => groups.push((i, vec![ev])),
            }
        }
        for (i, evs) in &groups {
            self.cachers[*i].apply(evs);
        }
        self.publish(max_rev);
    }
}
