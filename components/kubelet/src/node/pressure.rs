//! Hard eviction thresholds (`--eviction-hard`) and the pressure they signal: the
//! MemoryPressure, DiskPressure and PIDPressure node conditions, with the kubelet's
//! transition period (a condition stays True for a while after the pressure went away, so
//! it does not flap).

use std::time::Duration;

use jiff::Timestamp;
use kadm_apimachinery::quantity::Quantity;

use super::host::{Filesystem, Memory, Pids};

/// An eviction signal the kubelet measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    MemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    ImageFsInodesFree,
    PidAvailable,
}

impl Signal {
    fn parse(s: &str) -> Option<Signal> {
        Some(match s {
            "memory.available" => Signal::MemoryAvailable,
            "nodefs.available" => Signal::NodeFsAvailable,
            "nodefs.inodesFree" => Signal::NodeFsInodesFree,
            "imagefs.available" => Signal::ImageFsAvailable,
            "imagefs.inodesFree" => Signal::ImageFsInodesFree,
            "pid.available" => Signal::PidAvailable,
            _ => return None,
        })
    }
}

/// The amount below which a signal is under pressure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// An absolute quantity (bytes, inodes, pids).
    Quantity(i64),
    /// A fraction of the capacity (`10%` → 0.10).
    Percentage(f64),
}

impl Amount {
    /// The threshold in absolute units for a resource of `capacity`.
    pub fn of(&self, capacity: u64) -> u64 {
        match *self {
            Amount::Quantity(q) => u64::try_from(q.max(0)).unwrap_or(0),
            Amount::Percentage(p) => (capacity as f64 * p) as u64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub amount: Amount,
}

/// Parses the kubelet's `--eviction-hard` syntax: `signal<amount,…` with quantities or
/// percentages.
pub fn parse_thresholds(spec: &str) -> Result<Vec<Threshold>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (signal, amount) = part
            .split_once('<')
            .ok_or_else(|| format!("{part:?}: expected signal<amount"))?;
        let signal = Signal::parse(signal.trim())
            .ok_or_else(|| format!("unknown eviction signal {signal:?}"))?;
        let amount = amount.trim();
        let amount = if let Some(p) = amount.strip_suffix('%') {
            let v: f64 = p
                .parse()
                .map_err(|_| format!("{part:?}: {p:?} is not a percentage"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{part:?}: percentage must be between 0 and 100"));
            }
            Amount::Percentage(v / 100.0)
        } else {
            let q = Quantity::parse(amount).map_err(|e| format!("{part:?}: {e}"))?;
            if q.sign() < 0 {
                return Err(format!("{part:?}: must not be negative"));
            }
            Amount::Quantity(q.value())
        };
        out.push(Threshold { signal, amount });
    }
    Ok(out)
}

/// One measurement of every signal.
#[derive(Debug, Clone, Copy)]
pub struct Observations {
    pub memory: Memory,
    pub nodefs: Filesystem,
    pub imagefs: Filesystem,
    pub pids: Pids,
}

impl Observations {
    /// (available, capacity) of a signal.
    fn of(&self, s: Signal) -> (u64, u64) {
        match s {
            Signal::MemoryAvailable => (self.memory.available, self.memory.total),
            Signal::NodeFsAvailable => (self.nodefs.available, self.nodefs.capacity),
            Signal::NodeFsInodesFree => (self.nodefs.inodes_free, self.nodefs.inodes),
            Signal::ImageFsAvailable => (self.imagefs.available, self.imagefs.capacity),
            Signal::ImageFsInodesFree => (self.imagefs.inodes_free, self.imagefs.inodes),
            Signal::PidAvailable => (
                self.pids.max.saturating_sub(self.pids.running),
                self.pids.max,
            ),
        }
    }
}

/// The node conditions pressure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Signals under their thresholds now.
pub fn observe(thresholds: &[Threshold], obs: &Observations) -> Pressure {
    let mut p = Pressure::default();
    for t in thresholds {
        let (available, capacity) = obs.of(t.signal);
        // An unmeasurable resource (0 capacity, e.g. a filesystem without inode
        // accounting) cannot be under pressure.
        if capacity == 0 || available >= t.amount.of(capacity) {
            continue;
        }
        match t.signal {
            Signal::MemoryAvailable => p.memory = true,
            Signal::PidAvailable => p.pid = true,
            _ => p.disk = true,
        }
    }
    p
}

/// Remembers when each pressure was last observed, so conditions stay True for the
/// transition period.
#[derive(Debug, Default)]
pub struct PressureTracker {
    memory: Option<Timestamp>,
    disk: Option<Timestamp>,
    pid: Option<Timestamp>,
}

impl PressureTracker {
    /// Records `now`'s observation and returns the conditions to report.
    pub fn update(&mut self, observed: Pressure, now: Timestamp, transition: Duration) -> Pressure {
        let held = |flag: bool, last: &mut Option<Timestamp>| {
            if flag {
                *last = Some(now);
            }
            last.is_some_and(|t| now.duration_since(t).unsigned_abs() < transition)
        };
        Pressure {
            memory: held(observed.memory, &mut self.memory),
            disk: held(observed.disk, &mut self.disk),
            pid: held(observed.pid, &mut self.pid),
        }
    }
}

/// The hard threshold of a signal in absolute units, for allocatable.
pub fn reserved(thresholds: &[Threshold], signal: Signal, capacity: u64) -> u64 {
    thresholds
        .iter()
        .filter(|t| t.signal == signal)
        .map(|t| t.amount.of(capacity))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%";

    fn obs() -> Observations {
        Observations {
            memory: Memory {
                total: 8 << 30,
                available: 4 << 30,
            },
            nodefs: Filesystem {
                capacity: 100 << 30,
                available: 50 << 30,
                inodes: 1000,
                inodes_free: 900,
            },
            imagefs: Filesystem {
                capacity: 100 << 30,
                available: 50 << 30,
                inodes: 1000,
                inodes_free: 900,
            },
            pids: Pids {
                max: 32768,
                running: 300,
            },
        }
    }

    #[test]
    fn kubelet_default_thresholds_parse() {
        let t = parse_thresholds(DEFAULT).expect("parse");
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].amount, Amount::Quantity(100 << 20));
        assert_eq!(t[1].amount, Amount::Percentage(0.10));
        assert!(parse_thresholds("memory.used<1").is_err());
        assert!(parse_thresholds("memory.available>1").is_err());
        assert!(parse_thresholds("nodefs.available<120%").is_err());
        assert!(parse_thresholds("").expect("empty").is_empty());
    }

    #[test]
    fn pressure_follows_measurements() {
        let t = parse_thresholds(&format!("{DEFAULT},pid.available<1000")).expect("parse");
        assert_eq!(observe(&t, &obs()), Pressure::default());
        let mut o = obs();
        o.memory.available = 50 << 20;
        o.nodefs.available = 5 << 30;
        o.pids.running = 32000;
        assert_eq!(
            observe(&t, &o),
            Pressure {
                memory: true,
                disk: true,
                pid: true
            }
        );
        let mut o = obs();
        o.imagefs.inodes_free = 10;
        assert!(observe(&t, &o).disk);
        assert_eq!(reserved(&t, Signal::MemoryAvailable, 8 << 30), 100 << 20);
        assert_eq!(reserved(&t, Signal::NodeFsAvailable, 1000), 100);
    }

    #[test]
    fn pressure_is_held_for_the_transition_period() {
        let mut tr = PressureTracker::default();
        let t0 = Timestamp::from_second(1_000_000).expect("ts");
        let period = Duration::from_secs(300);
        let on = Pressure {
            memory: true,
            ..Pressure::default()
        };
        assert!(tr.update(on, t0, period).memory);
        let later = |s| {
            t0.checked_add(jiff::SignedDuration::from_secs(s))
                .expect("ts")
        };
        assert!(tr.update(Pressure::default(), later(299), period).memory);
        assert!(!tr.update(Pressure::default(), later(300), period).memory);
    }
}
