//! Per-object retry back-off for the controllers' error policies: the delay doubles with
//! each consecutive failure of one object, up to a cap, and a success forgets the count.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The delay after `failures` consecutive failures: `base`, doubling per failure, at most `max`.
pub fn exponential(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << exp).min(max)
}

/// Consecutive failures per object key.
#[derive(Debug, Default)]
pub struct Failures {
    counts: Mutex<HashMap<String, u32>>,
}

impl Failures {
    fn counts(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more failure of `key` and returns how many in a row there were.
    pub fn record(&self, key: &str) -> u32 {
        let mut c = self.counts();
        let n = c.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key` (it succeeded).
    pub fn forget(&self, key: &str) {
        self.counts().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_up_and_reset() {
        let f = Failures::default();
        assert_eq!(f.record("a"), 1);
        assert_eq!(f.record("a"), 2);
        assert_eq!(f.record("b"), 1);
        f.forget("a");
        assert_eq!(f.record("a"), 1);
    }

    #[test]
    fn exponential_doubles_to_the_cap() {
        let (base, max) = (Duration::from_millis(5), Duration::from_secs(1));
        assert_eq!(exponential(1, base, max), Duration::from_millis(5));
        assert_eq!(exponential(3, base, max), Duration::from_millis(20));
        assert_eq!(exponential(40, base, max), max);
        assert_eq!(exponential(0, base, max), base);
    }
}
