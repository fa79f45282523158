//! Per-key exponential back-off on wall-clock time, with the rules of Kubernetes' kubelet
//! (client-go `flowcontrol.Backoff`): a key's first failure is retried at once and starts
//! the back-off at the initial period; each later failure within the window doubles it up
//! to the maximum; an entry untouched for twice the maximum starts over.
//!
//! For crashing containers the event time is the container's `finishedAt`: it stays in
//! back-off while `now - finishedAt` is shorter than the current period, then restarts and
//! the period doubles (10 s, 20 s, 40 s … 5 min; reset after 10 min without a crash).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    let d = to.duration_since(from);
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event: Timestamp, e: &Entry) -> bool {
        elapsed(e.last_update, event) > self.max * 2
    }

    /// The current period of `key` (zero when none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    /// Whether `key` is still backing off from an event at `event`, seen at `now`; if so,
    /// how long is left.
    pub fn remaining(&self, key: &str, event: Timestamp, now: Timestamp) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if self.expired(event, e) {
            return None;
        }
        let passed = elapsed(event, now);
        (passed < e.backoff).then(|| e.backoff - passed)
    }

    /// Whether `key` is backing off since its last update (image pulls); if so, how long
    /// is left.
    pub fn remaining_since_update(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let e = self.entries.get(key)?;
        self.remaining(key, e.last_update, now)
    }

    /// Moves `key` to its next period (the initial one for a new or expired entry).
    pub fn next(&mut self, key: &str, event: Timestamp, now: Timestamp) {
        let fresh = match self.entries.get(key) {
            None => true,
            Some(e) => self.expired(event, e),
        };
        let backoff = if fresh {
            self.initial
        } else {
            (self.get(key) * 2).min(self.max)
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// Forgets `key` (the container or pod is gone).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops every key starting with `prefix` (all of one pod's entries).
    pub fn forget_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }

    /// Drops entries untouched for twice the maximum, so the map does not grow for ever.
    pub fn gc(&mut self, now: Timestamp) {
        let max = self.max * 2;
        self.entries
            .retain(|_, e| elapsed(e.last_update, now) <= max);
    }
}

/// Kubernetes' duration format for back-off messages (`10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("ts")
    }

    /// A container crashing every time it starts: the restart times Kubernetes produces.
    #[test]
    fn crash_loop_restarts_at_once_then_after_10_20_40_s_capped_at_5_min() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        let key = "pod_ns_uid_c";
        // First crash at t=0: not in back-off, restart at once.
        assert_eq!(b.remaining(key, at(0), at(0)), None);
        b.next(key, at(0), at(0));
        assert_eq!(b.get(key), Duration::from_secs(10));
        // Second crash at t=1: back off for 10 s from the crash.
        assert_eq!(
            b.remaining(key, at(1), at(1)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            b.remaining(key, at(1), at(10)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(b.remaining(key, at(1), at(11)), None);
        b.next(key, at(1), at(11));
        assert_eq!(b.get(key), Duration::from_secs(20));
        let mut t = 12;
        let mut periods = vec![];
        for _ in 0..8 {
            // Crashes right after each restart, waits out the whole period.
            let p = b.remaining(key, at(t), at(t)).expect("in back-off");
            periods.push(p.as_secs());
            t += i64::try_from(p.as_secs()).expect("secs");
            b.next(key, at(t - 1), at(t));
            t += 1;
        }
        assert_eq!(periods, [20, 40, 80, 160, 300, 300, 300, 300]);
        assert_eq!(go_duration(b.get(key)), "5m0s");
    }

    #[test]
    fn back_off_resets_after_ten_quiet_minutes() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        b.next("k", at(0), at(0));
        b.next("k", at(5), at(15));
        assert_eq!(b.get("k"), Duration::from_secs(20));
        // It ran for more than 2 × max after the last restart: the crash starts over.
        assert_eq!(b.remaining("k", at(700), at(700)), None);
        b.next("k", at(700), at(700));
        assert_eq!(b.get("k"), Duration::from_secs(10));
        b.gc(at(2000));
        assert_eq!(b.get("k"), Duration::ZERO);
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
