//! The cache of one etcd prefix: the current objects by key, a bounded ring of
//! recent changes, and the broadcast that live watchers follow.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::broadcast;

use super::entry::{Entry, Event, EventType, Layout};

/// Slots of a prefix's broadcast: how far (in changes of this prefix) a watcher's task
/// may fall behind the cache before it is closed as too slow. Allocated only while the
/// prefix has watchers.
const BROADCAST_CAPACITY: usize = 4096;

/// What a page of a cached list holds.
pub struct Page {
    /// The revision the page reflects: every change up to it, none after it.
    pub rev: i64,
    pub items: Vec<Arc<Entry>>,
    /// The key of the last returned item when keys follow it in the scope (the list
    /// needs a continue token).
    pub continue_after: Option<Arc<str>>,
    /// Keys in the scope after the last returned item (for `remainingItemCount`).
    pub remaining: usize,
}

/// Where a new watch starts.
#[derive(Debug, Clone, Copy)]
pub enum WatchFrom {
    /// With the current state (synthetic ADDED events), then what follows it.
    Now,
    /// With the changes after this revision.
    After(i64),
    /// With the changes from now on (no state, no history).
    Latest,
}

/// The start of a watch, taken atomically with its subscription (no gap, no repeat).
pub struct WatchStart {
    /// The revision the watch starts after: changes up to it are not sent live.
    pub rev: i64,
    /// For [`WatchFrom::Now`]: the objects in the scope at `rev`.
    pub initial: Vec<Arc<Entry>>,
    /// For [`WatchFrom::After`]: the changes in the scope after the requested revision.
    pub replay: Vec<Arc<Event>>,
    /// Everything after `rev` (all scopes of the prefix; the watcher filters).
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// The requested revision is older than the history the cache still has.
#[derive(Debug)]
pub struct TooOld {
    pub requested: i64,
    /// The oldest revision a watch can start after.
    pub oldest: i64,
}

struct State {
    objects: BTreeMap<Arc<str>, Arc<Entry>>,
    ring: VecDeque<Arc<Event>>,
    /// Watches may start after any revision ≥ this: every change after it is in `ring`.
    window_start: i64,
    /// The revision of the last change applied to this prefix (or of the list it
    /// was loaded from).
    last_rev: i64,
    live: Option<broadcast::Sender<Arc<Event>>>,
}

pub struct Cacher {
    /// `/registry/<etcd prefix>/`
    pub prefix: String,
    pub layout: Layout,
    capacity: usize,
    /// The revision the whole cache has applied (shared by every prefix, since they
    /// follow one etcd watch).
    applied: Arc<AtomicI64>,
    state: RwLock<State>,
    /// Decrypts the prefix's values when its resource is encrypted at rest.
    transformer: Option<Arc<crate::encryption::ResourceTransformer>>,
}

impl Cacher {
    pub fn new(prefix: String, layout: Layout, capacity: usize, applied: Arc<AtomicI64>) -> Self {
        Cacher {
            prefix,
            layout,
            capacity: capacity.max(1),
            applied,
            state: RwLock::new(State {
                objects: BTreeMap::new(),
                ring: VecDeque::new(),
                window_start: 0,
                last_rev: 0,
                live: None,
            }),
            transformer: None,
        }
    }

    /// Decrypts the prefix's values with `transformer` (`--encryption-provider-config`).
    pub fn with_transformer(
        mut self,
        transformer: Option<Arc<crate::encryption::ResourceTransformer>>,
    ) -> Self {
        self.transformer = transformer;
        self
    }

    /// Decodes a stored value of this prefix, decrypting it first when the resource is
    /// encrypted at rest.
    pub fn decode(&self, key: Arc<str>, value: &[u8], rev: i64) -> crate::error::Result<Entry> {
        match &self.transformer {
            None => Ok(self.layout.decode(key, value, rev)?),
            Some(t) => {
                let plain = t.from_storage(&key, value)?;
                Ok(self.layout.decode(key, &plain.data, rev)?)
            }
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision this prefix's state reflects: exact, because the shared revision
    /// is published only after every prefix applied the changes up to it, and this
    /// prefix's own changes beyond it are counted by `last_rev`.
    fn rev_locked(&self, s: &State) -> i64 {
        self.applied.load(Ordering::Acquire).max(s.last_rev)
    }

    pub fn current_rev(&self) -> i64 {
        let s = self.read();
        self.rev_locked(&s)
    }

    /// The revision of this prefix's last change (or of the list it was loaded from):
    /// unchanged means the prefix's objects are unchanged.
    pub fn last_change(&self) -> i64 {
        self.read().last_rev
    }

    pub fn object_count(&self) -> usize {
        self.read().objects.len()
    }

    /// The cached object at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.read().objects.get(key).cloned()
    }

    /// Replaces the state with a fresh list taken at `rev`. Live watchers are ended
    /// (their streams close; clients re-watch and may get 410), as Kubernetes does on
    /// a re-list.
    pub fn reset(&self, objects: BTreeMap<Arc<str>, Arc<Entry>>, rev: i64) {
        let mut s = self.write();
        s.objects = objects;
        s.ring.clear();
        s.window_start = rev;
        s.last_rev = rev;
        s.live = None;
    }

    /// Applies etcd events of this prefix (in revision order) under one lock, so a
    /// reader never sees part of a revision.
    pub fn apply(&self, events: &[&etcd_client::Event]) {
        let mut s = self.write();
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            let rev = kv.mod_revision();
            let key = String::from_utf8_lossy(kv.key());
            match ev.event_type() {
                etcd_client::EventType::Put => {
                    let key: Arc<str> = Arc::from(key.as_ref());
                    let entry = match self.decode(key.clone(), kv.value(), rev) {
                        Ok(e) => Arc::new(e),
                        Err(e) => {
                            tracing::warn!(key = %key, error = %e, "stored object cannot be decoded; the watch cache drops it");
                            if let Some(prev) = s.objects.remove(key.as_ref()) {
                                self.deleted(&mut s, prev, rev);
                            }
                            s.last_rev = rev;
                            continue;
                        }
                    };
                    let prev = s.objects.insert(key, entry.clone());
                    let kind = if prev.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    self.push(
                        &mut s,
                        Event {
                            kind,
                            object: entry,
                            prev,
                        },
                    );
                }
                etcd_client::EventType::Delete => {
                    if let Some(prev) = s.objects.remove(key.as_ref()) {
                        self.deleted(&mut s, prev, rev);
                    }
                }
            }
            s.last_rev = rev;
        }
    }

    fn deleted(&self, s: &mut State, prev: Arc<Entry>, rev: i64) {
        let object = match self.layout.restamp(&prev, rev) {
            Ok(e) => Arc::new(e),
            Err(_) => prev.clone(),
        };
        self.push(
            s,
            Event {
                kind: EventType::Deleted,
                object,
                prev: Some(prev),
            },
        );
    }

    fn push(&self, s: &mut State, ev: Event) {
        let ev = Arc::new(ev);
        if s.ring.len() >= self.capacity
            && let Some(old) = s.ring.pop_front()
        {
            s.window_start = old.rev();
        }
        s.ring.push_back(ev.clone());
        if let Some(tx) = &s.live
            && tx.send(ev).is_err()
        {
            // Nobody follows this prefix any more: free the slots.
            s.live = None;
        }
    }

    /// The objects under `scope` that `keep` accepts, at most `limit` (0: all).
    pub fn list(&self, scope: &str, limit: usize, keep: impl Fn(&Entry) -> bool) -> Page {
        let s = self.read();
        let rev = self.rev_locked(&s);
        let mut items = Vec::new();
        let mut continue_after = None;
        let mut remaining = 0;
        let mut range = s
            .objects
            .range::<str, _>((std::ops::Bound::Included(scope), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(scope));
        for (_, e) in range.by_ref() {
            if keep(e) {
                items.push(e.clone());
                if limit > 0 && items.len() >= limit {
                    break;
                }
            }
        }
        if limit > 0 && items.len() >= limit {
            remaining = range.count();
            if remaining > 0 {
                continue_after = items.last().map(|e| e.key.clone());
            }
        }
        Page {
            rev,
            items,
            continue_after,
            remaining,
        }
    }

    /// Starts a watch on `scope` (a key prefix inside this one).
    pub fn watch(&self, scope: &str, from: WatchFrom) -> Result<WatchStart, TooOld> {
        let mut s = self.write();
        let rev = self.rev_locked(&s);
        let mut start = WatchStart {
            rev,
            initial: Vec::new(),
            replay: Vec::new(),
            live: match &s.live {
                Some(tx) => tx.subscribe(),
                None => {
                    let (tx, rx) = broadcast::channel(BROADCAST_CAPACITY);
                    s.live = Some(tx);
                    rx
                }
            },
        };
        match from {
            WatchFrom::Now => {
                start.initial = s
                    .objects
                    .range::<str, _>((std::ops::Bound::Included(scope), std::ops::Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(scope))
                    .map(|(_, e)| e.clone())
                    .collect();
            }
            WatchFrom::Latest => {}
            WatchFrom::After(n) => {
                if n < s.window_start {
                    return Err(TooOld {
                        requested: n,
                        oldest: s.window_start,
                    });
                }
                let first = s.ring.partition_point(|e| e.rev() <= n);
                start.replay = s
                    .ring
                    .range(first..)
                    .filter(|e| e.object.key.starts_with(scope))
                    .cloned()
                    .collect();
                start.rev = n;
            }
        }
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cacher(capacity: usize) -> (Cacher, Arc<AtomicI64>) {
        let primary = kadm_apimachinery::registry::lookup("", "v1", "configmaps").expect("cm");
        let applied = Arc::new(AtomicI64::new(0));
        let c = Cacher::new(
            "/registry/configmaps/".into(),
            Layout {
                primary,
                fields: primary.supported_fields(),
            },
            capacity,
            applied.clone(),
        );
        c.reset(BTreeMap::new(), 1);
        applied.store(1, Ordering::Release);
        (c, applied)
    }

    fn put(c: &Cacher, ns: &str, name: &str, rev: i64) {
        let e = c
            .layout
            .entry(
                Arc::from(format!("/registry/configmaps/{ns}/{name}")),
                rev,
                serde_json::json!({"metadata": {"name": name, "namespace": ns, "resourceVersion": rev.to_string()}}),
            )
            .expect("entry");
        let mut s = c.write();
        let e = Arc::new(e);
        let prev = s.objects.insert(e.key.clone(), e.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        c.push(
            &mut s,
            Event {
                kind,
                object: e,
                prev,
            },
        );
        s.last_rev = rev;
    }

    #[test]
    fn window_slides_and_too_old_starts_are_refused() {
        let (c, _) = cacher(3);
        for (i, rev) in (2..=6).enumerate() {
            put(&c, "a", &format!("cm{i}"), rev);
        }
        // The ring holds revisions 4, 5, 6: a watch may start after 3 or later.
        let err = c.watch("/registry/configmaps/", WatchFrom::After(2)).err();
        assert_eq!(err.map(|e| (e.requested, e.oldest)), Some((2, 3)));
        let ok = c
            .watch("/registry/configmaps/", WatchFrom::After(3))
            .expect("in window");
        assert_eq!(
            ok.replay.iter().map(|e| e.rev()).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        let later = c
            .watch("/registry/configmaps/", WatchFrom::After(5))
            .expect("in window");
        assert_eq!(
            later.replay.iter().map(|e| e.rev()).collect::<Vec<_>>(),
            [6]
        );
    }

    #[test]
    fn list_pages_in_key_order_with_remaining_count_and_scope() {
        let (c, applied) = cacher(10);
        put(&c, "a", "x", 2);
        put(&c, "a", "y", 3);
        put(&c, "b", "z", 4);
        put(&c, "a", "w", 5);
        applied.store(9, Ordering::Release);
        let all = c.list("/registry/configmaps/", 0, |_| true);
        assert_eq!(all.rev, 9);
        assert_eq!(all.items.len(), 4);
        assert!(all.continue_after.is_none());
        let page = c.list("/registry/configmaps/a/", 2, |_| true);
        let keys: Vec<&str> = page.items.iter().map(|e| e.key.as_ref()).collect();
        assert_eq!(
            keys,
            ["/registry/configmaps/a/w", "/registry/configmaps/a/x"]
        );
        assert_eq!(page.remaining, 1);
        assert_eq!(
            page.continue_after.as_deref(),
            Some("/registry/configmaps/a/x")
        );
        let exact = c.list("/registry/configmaps/a/", 3, |_| true);
        assert!(exact.continue_after.is_none(), "nothing follows the page");
    }

    #[test]
    fn a_watch_subscribes_atomically_with_its_start() {
        let (c, _) = cacher(10);
        put(&c, "a", "x", 2);
        let mut w = c
            .watch("/registry/configmaps/", WatchFrom::Now)
            .expect("watch");
        assert_eq!(w.rev, 2);
        assert_eq!(w.initial.len(), 1);
        put(&c, "a", "x", 3);
        let ev = w.live.try_recv().expect("live event");
        assert_eq!((ev.kind, ev.rev()), (EventType::Modified, 3));
        assert!(ev.prev.as_ref().is_some_and(|p| p.rev == 2));
    }
}
