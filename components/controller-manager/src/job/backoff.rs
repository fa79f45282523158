//! The delay before a Job replaces failed pods: `base · 2^(n-1)` after the n-th failure since
//! the last success, at most `max` (Kubernetes: 10 s and 10 min), counted from the last
//! failure. Like Kubernetes' `backoffStore`, the record lives in memory per Job and is
//! updated once the Job's status has counted the pods it is computed from.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::tracking::finished_at;

/// Failures since the Job's last success, and when the last one happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub failures_after_last_success: u32,
    pub last_failure: Option<Timestamp>,
}

impl Record {
    /// The record after `succeeded` and `failed` pods were newly seen finished (Kubernetes'
    /// `newBackoffRecord`): a success resets it, and only failures after the latest success
    /// count.
    pub fn with_finished(self, succeeded: &[&Pod], failed: &[&Pod]) -> Record {
        let mut failed_times: Vec<Timestamp> =
            failed.iter().filter_map(|p| finished_at(p)).collect();
        failed_times.sort();
        let last_success = succeeded.iter().filter_map(|p| finished_at(p)).max();
        match last_success {
            None if failed.is_empty() => self,
            None => Record {
                failures_after_last_success: self
                    .failures_after_last_success
                    .saturating_add(failed.len() as u32),
                last_failure: failed_times.last().copied().or(self.last_failure),
            },
            Some(success) => {
                let after: Vec<Timestamp> =
                    failed_times.into_iter().filter(|t| *t > success).collect();
                Record {
                    failures_after_last_success: after.len() as u32,
                    last_failure: after.last().copied(),
                }
            }
        }
    }

    /// How long pod creation must still wait at `now`.
    pub fn remaining(&self, base: Duration, max: Duration, now: Timestamp) -> Duration {
        if self.failures_after_last_success == 0 {
            return Duration::ZERO;
        }
        let delay = crate::backoff::exponential(self.failures_after_last_success, base, max);
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        let elapsed = now.duration_since(last).max(SignedDuration::ZERO);
        let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
        delay.saturating_sub(elapsed)
    }
}

/// Records per Job (`namespace/name`).
#[derive(Debug, Default)]
pub struct Store {
    records: Mutex<HashMap<String, Record>>,
}

impl Store {
    pub fn get(&self, key: &str) -> Record {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or_default()
    }

    pub fn set(&self, key: &str, record: Record) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if record == Record::default() {
            records.remove(key);
        } else {
            records.insert(key.to_string(), record);
        }
    }

    pub fn forget(&self, key: &str) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finished(at: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"deletionTimestamp": at}})).expect("pod")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    #[test]
    fn failures_double_the_delay_and_a_success_resets_it() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(600));
        let r = Record::default();
        assert_eq!(
            r.remaining(base, max, ts("2024-01-01T00:00:00Z")),
            Duration::ZERO
        );
        let f1 = finished("2024-01-01T00:00:00Z");
        let r = r.with_finished(&[], &[&f1]);
        assert_eq!(r.failures_after_last_success, 1);
        assert_eq!(
            r.remaining(base, max, ts("2024-01-01T00:00:04Z")),
            Duration::from_secs(6)
        );
        let f2 = finished("2024-01-01T00:01:00Z");
        let f3 = finished("2024-01-01T00:01:30Z");
        let r = r.with_finished(&[], &[&f3, &f2]);
        assert_eq!(r.failures_after_last_success, 3);
        assert_eq!(r.last_failure, Some(ts("2024-01-01T00:01:30Z")));
        // 10 s · 2² = 40 s after the last failure.
        assert_eq!(
            r.remaining(base, max, ts("2024-01-01T00:01:40Z")),
            Duration::from_secs(30)
        );
        // A success between failures: only the later failure counts.
        let s = finished("2024-01-01T00:02:00Z");
        let f4 = finished("2024-01-01T00:02:10Z");
        let f0 = finished("2024-01-01T00:01:50Z");
        let r = r.with_finished(&[&s], &[&f0, &f4]);
        assert_eq!(r.failures_after_last_success, 1);
        assert_eq!(r.last_failure, Some(ts("2024-01-01T00:02:10Z")));
        let r = r.with_finished(&[&finished("2024-01-01T00:03:00Z")], &[]);
        assert_eq!(r, Record::default());
        // The cap.
        let many = Record {
            failures_after_last_success: 30,
            last_failure: Some(ts("2024-01-01T00:00:00Z")),
        };
        assert_eq!(many.remaining(base, max, ts("2024-01-01T00:00:00Z")), max);
    }
}
