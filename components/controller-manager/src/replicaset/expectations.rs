//! Kubernetes' controller expectations: after a ReplicaSet asked for N pods, it does not
//! count pods again until the watch has shown it those N (or the creations failed), and
//! after it deleted pods, until the watch shows them gone or terminating. Without this, a
//! sync running on a cache that lags its own writes would create or delete twice.
//!
//! Creations are counted down by the pod watch (a pod controlled by the ReplicaSet that the
//! cache did not hold before); deletions are checked against the cache when asked. A record
//! older than [`TIMEOUT`] counts as satisfied, so a lost watch event delays a ReplicaSet by
//! at most that long.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Kubernetes' `ExpectationsTimeout`.
pub const TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One pod the ReplicaSet deleted: namespace/name and uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Debug)]
struct Record {
    creations: i64,
    deletions: Vec<PodKey>,
    set_at: Instant,
}

/// Outstanding expectations per ReplicaSet uid.
#[derive(Debug, Default)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
}

impl Expectations {
    fn records(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ReplicaSet `rs_uid` is about to create `n` pods.
    pub fn expect_creations(&self, rs_uid: &str, n: usize, now: Instant) {
        let mut r = self.records();
        r.retain(|_, rec| now.duration_since(rec.set_at) < TIMEOUT);
        r.insert(
            rs_uid.to_string(),
            Record {
                creations: i64::try_from(n).unwrap_or(i64::MAX),
                deletions: Vec::new(),
                set_at: now,
            },
        );
    }

    /// The ReplicaSet `rs_uid` is about to delete `pods`.
    pub fn expect_deletions(&self, rs_uid: &str, pods: Vec<PodKey>, now: Instant) {
        let mut r = self.records();
        r.retain(|_, rec| now.duration_since(rec.set_at) < TIMEOUT);
        r.insert(
            rs_uid.to_string(),
            Record {
                creations: 0,
                deletions: pods,
                set_at: now,
            },
        );
    }

    /// One creation was seen by the watch, or will never be (it failed or was skipped).
    pub fn creation_observed(&self, rs_uid: &str) {
        if let Some(rec) = self.records().get_mut(rs_uid) {
            rec.creations -= 1;
        }
    }

    /// A deletion that failed: the watch will never show it.
    pub fn deletion_observed(&self, rs_uid: &str, pod: &PodKey) {
        if let Some(rec) = self.records().get_mut(rs_uid) {
            rec.deletions.retain(|p| p != pod);
        }
    }

    /// Whether the ReplicaSet may count its pods again. `still_there` says whether the cache
    /// still shows a deleted pod as alive (same uid, no deletionTimestamp).
    pub fn satisfied(
        &self,
        rs_uid: &str,
        now: Instant,
        still_there: impl Fn(&PodKey) -> bool,
    ) -> bool {
        let mut r = self.records();
        let Some(rec) = r.get_mut(rs_uid) else {
            return true;
        };
        rec.deletions.retain(|p| still_there(p));
        let done = rec.creations <= 0 && rec.deletions.is_empty();
        if done || now.duration_since(rec.set_at) >= TIMEOUT {
            r.remove(rs_uid);
            return true;
        }
        false
    }

    /// Drops the record of a ReplicaSet that is gone.
    pub fn forget(&self, rs_uid: &str) {
        self.records().remove(rs_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> PodKey {
        PodKey {
            namespace: "ns".into(),
            name: n.into(),
            uid: format!("uid-{n}"),
        }
    }

    #[test]
    fn creations_must_all_be_observed() {
        let e = Expectations::default();
        let t = Instant::now();
        assert!(e.satisfied("rs", t, |_| true), "no record: free to sync");
        e.expect_creations("rs", 3, t);
        assert!(!e.satisfied("rs", t, |_| true));
        e.creation_observed("rs");
        e.creation_observed("rs");
        assert!(!e.satisfied("rs", t, |_| true));
        e.creation_observed("rs");
        assert!(e.satisfied("rs", t, |_| true));
    }

    #[test]
    fn deletions_are_satisfied_when_the_cache_no_longer_has_them() {
        let e = Expectations::default();
        let t = Instant::now();
        e.expect_deletions("rs", vec![key("a"), key("b")], t);
        assert!(!e.satisfied("rs", t, |_| true));
        assert!(!e.satisfied("rs", t, |p| p.name == "b"));
        e.deletion_observed("rs", &key("b"));
        assert!(e.satisfied("rs", t, |_| false));
    }

    #[test]
    fn old_records_expire() {
        let e = Expectations::default();
        let t = Instant::now();
        e.expect_creations("rs", 5, t);
        assert!(!e.satisfied("rs", t + TIMEOUT - Duration::from_secs(1), |_| true));
        assert!(e.satisfied("rs", t + TIMEOUT, |_| true));
    }

    #[test]
    fn observations_for_unknown_replicasets_are_ignored() {
        let e = Expectations::default();
        e.creation_observed("nobody");
        e.forget("nobody");
        assert!(e.satisfied("nobody", Instant::now(), |_| true));
    }
}
