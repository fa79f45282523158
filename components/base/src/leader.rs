//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules.
//!
//! Components that must run one active replica (controller-manager, scheduler) start a
//! [`LeaderElector`] and do their work only while they hold the Lease. The Lease records who
//! holds it (`holderIdentity`), how long a silent holder keeps it (`leaseDurationSeconds`),
//! when it was taken (`acquireTime`) and last renewed (`renewTime`), and how often it changed
//! hands (`leaseTransitions`).
//!
//! ```text
//!              acquire()                       keep_renewing()
//!  candidate ─────────────► leader ── renew every retry_period ──┬──► lost: stop, exit non-zero
//!   │    ▲                    │                                   │    (no successful renew within
//!   └────┘ another holder     │ SIGTERM: stop the work, then      │     renew_deadline, or another
//!     renewed within          ▼ release(): holder "" so a standby │     identity holds the lease)
//!     lease_duration        released ─ takes over at its next try ┘
//! ```
//!
//! Expiry is judged as client-go judges it: a candidate measures `leaseDurationSeconds` on its
//! own monotonic clock from the moment it *saw* the record last change (a new `renewTime`, a
//! new holder, …). `renewTime` is what the holder writes to make that change visible; it is
//! never compared with the candidate's wall clock, so clock offsets between hosts can neither
//! produce two leaders nor keep a dead holder's lease forever. A candidate that starts while a
//! lease is held therefore waits one full lease duration of silence before taking it over.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use rand::Rng;

use crate::error::{Error, Result};

/// Kubernetes' default `--leader-elect-lease-duration`.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Kubernetes' default `--leader-elect-renew-deadline`.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Kubernetes' default `--leader-elect-retry-period`.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// client-go's jitter: a candidate retries after `retry_period * (1 + rand[0, 1.2))`, so
/// replicas started together do not hit the apiserver in lockstep.
const JITTER_FACTOR: f64 = 1.2;

/// Which lease to hold, as whom, and the three timings of client-go's leader election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    pub lease_namespace: String,
    pub lease_name: String,
    /// Unique per process: [`default_identity`] gives `<hostname>_<uuid>`.
    pub identity: String,
    /// How long candidates wait after the lease last changed before taking it over.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How long to wait between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// A config with Kubernetes' default timings (15 s, 10 s, 2 s).
    pub fn new(
        lease_namespace: impl Into<String>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_namespace: lease_namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// Checks the rules client-go enforces: a leader must give up (renew deadline) before
    /// candidates may take over (lease duration), and must get more than one jittered retry
    /// within its renew deadline.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(Error::InvalidConfig(m));
        if self.lease_namespace.is_empty() || self.lease_name.is_empty() {
            return invalid("the lease namespace and name must not be empty".into());
        }
        if self.identity.is_empty() {
            return invalid("the identity must not be empty".into());
        }
        if self.retry_period.is_zero() || self.renew_deadline.is_zero() {
            return invalid("the retry period and renew deadline must be greater than zero".into());
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid(format!(
                "the lease duration ({:?}) must be greater than the renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return invalid(format!(
                "the renew deadline ({:?}) must be greater than {JITTER_FACTOR} times the retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        Ok(())
    }

    /// `namespace/name`, for messages.
    pub fn lease_ref(&self) -> String {
        format!("{}/{}", self.lease_namespace, self.lease_name)
    }
}

/// `<hostname>_<uuid>`: the identity Kubernetes components use, unique per process so a
/// restarted process never mistakes its predecessor's lease for its own.
pub fn default_identity() -> Result<String> {
    Ok(format!("{}_{}", hostname()?, uuid::Uuid::new_v4()))
}

fn hostname() -> Result<String> {
    const PATHS: [&str; 2] = ["/proc/sys/kernel/hostname", "/etc/hostname"];
    let mut last = None;
    for path in PATHS {
        match std::fs::read_to_string(path) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
            Ok(_) => {}
            Err(source) => last = Some((path, source)),
        }
    }
    let (path, source) = last.unwrap_or((
        PATHS[0],
        std::io::Error::new(std::io::ErrorKind::InvalidData, "the host name is empty"),
    ));
    Err(Error::Hostname { path, source })
}

/// The leader-election fields of a Lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Empty when nobody holds the lease (never taken, or released).
    pub holder: String,
    pub lease_duration: Duration,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl LeaseRecord {
    /// Reads the record from a Lease's spec (absent fields are empty / zero).
    pub fn from_spec(spec: Option<&LeaseSpec>) -> Self {
        let Some(spec) = spec else {
            return Self::default();
        };
        Self {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }

    /// The Lease spec that stores this record.
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(whole_seconds(self.lease_duration)),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..LeaseSpec::default()
        }
    }
}

/// Seconds, rounded up so a sub-second remainder never shortens a lease.
fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// What a candidate does with the lease record it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The lease is ours: write a new `renewTime`.
    Renew,
    /// Nobody holds it, or its holder stayed silent for a whole lease duration: take it.
    Acquire,
    /// Another holder renewed recently; it expires in `expires_in` unless renewed again.
    Wait {
        holder: String,
        expires_in: Duration,
    },
}

/// Decides from a record and for how long it has been seen unchanged (on the candidate's
/// own monotonic clock) whether `identity` may write the lease.
pub fn decide(record: &LeaseRecord, identity: &str, unchanged_for: Duration) -> Decision {
    if record.holder == identity {
        return Decision::Renew;
    }
    if record.holder.is_empty() || unchanged_for >= record.lease_duration {
        return Decision::Acquire;
    }
    Decision::Wait {
        holder: record.holder.clone(),
        expires_in: record.lease_duration - unchanged_for,
    }
}

/// The record `identity` writes to acquire or renew at `now`: a renewal keeps `acquireTime`
/// and `leaseTransitions`; taking the lease from anyone else (or from nobody, after a release)
/// counts one more transition; creating the lease starts at zero.
pub fn next_record(
    current: Option<&LeaseRecord>,
    identity: &str,
    lease_duration: Duration,
    now: Timestamp,
) -> LeaseRecord {
    let (acquire_time, transitions) = match current {
        Some(c) if c.holder == identity => (c.acquire_time.unwrap_or(now), c.transitions),
        Some(c) => (now, c.transitions.saturating_add(1)),
        None => (now, 0),
    };
    LeaseRecord {
        holder: identity.to_string(),
        lease_duration,
        acquire_time: Some(acquire_time),
        renew_time: Some(now),
        transitions,
    }
}

/// The record a leader writes when it steps down on purpose: no holder and a one-second
/// duration (as client-go writes), so a standby takes over at its next attempt.
pub fn released_record(current: &LeaseRecord, now: Timestamp) -> LeaseRecord {
    LeaseRecord {
        holder: String::new(),
        lease_duration: Duration::from_secs(1),
        acquire_time: Some(now),
        renew_time: Some(now),
        transitions: current.transitions,
    }
}

/// Parses a Go duration (`15s`, `5m`, `1h30m`, `1.5s`, `500ms`, `0`) as Kubernetes flags take
/// it. Usable as a clap `value_parser`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?}: expected a number with a unit (ns, us, ms, s, m, h), e.g. 15s or 1m30s"
        )
    };
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// The wall clock, cut to the microseconds a `MicroTime` keeps, so what is read back
/// compares equal to what was written.
fn now_micros() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

/// One attempt's outcome.
enum Attempt {
    /// This process holds the lease (it was created, renewed or taken over just now).
    Leading,
    /// Someone else does.
    Held {
        holder: String,
        expires_in: Duration,
    },
}

/// Acquires, renews and releases one Lease for one identity.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    /// The record last read or written, and when it was first seen in that form.
    observed: Mutex<Option<(LeaseRecord, Instant)>>,
    leading: AtomicBool,
}

impl LeaderElector {
    /// An elector for `config` (validated here) talking through `client`.
    pub fn new(client: Client, config: LeaderElectionConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.lease_namespace),
            config,
            observed: Mutex::new(None),
            leading: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Whether the last attempt left this process holding the lease.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Waits until this process holds the lease, retrying every jittered retry period;
    /// apiserver errors are logged and retried. Cancel by dropping the future.
    pub async fn acquire(&self) {
        let lease = self.config.lease_ref();
        tracing::info!(lease = %lease, identity = %self.config.identity, "attempting to acquire leader lease");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => {
                    tracing::info!(lease = %lease, identity = %self.config.identity, "successfully acquired lease");
                    return;
                }
                Ok(Attempt::Held { holder, expires_in }) => {
                    tracing::debug!(lease = %lease, %holder, expires_in_ms = expires_in.as_millis() as u64, "lease is held by another candidate and has not yet expired");
                }
                // Another candidate wrote first: the normal outcome of a race, not a fault.
                Err(e) if e.is_conflict() => {
                    tracing::debug!(lease = %lease, error = %e, "lease changed meanwhile, retrying");
                }
                Err(e) => tracing::warn!(lease = %lease, error = %e, "error acquiring lease"),
            }
            tokio::time::sleep(self.jittered_retry()).await;
        }
    }

    /// Renews the lease every retry period for as long as that works, and returns why
    /// leadership ended: no successful renewal within the renew deadline, or another identity
    /// holding the lease. The caller must stop leading at once (Kubernetes components exit).
    pub async fn keep_renewing(&self) -> Error {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let remaining = self
                .config
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            let outcome = if remaining.is_zero() {
                None
            } else {
                tokio::time::timeout(remaining, self.try_acquire_or_renew())
                    .await
                    .ok()
            };
            match outcome {
                Some(Ok(Attempt::Leading)) => {
                    last_renewed = Instant::now();
                    tracing::trace!(lease = %self.config.lease_ref(), "lease renewed");
                }
                Some(Ok(Attempt::Held { holder, .. })) => {
                    return self.lost(format!("the lease is now held by {holder}"));
                }
                Some(Err(e)) if last_renewed.elapsed() < self.config.renew_deadline => {
                    tracing::warn!(lease = %self.config.lease_ref(), error = %e, "failed to renew lease, retrying");
                }
                Some(Err(e)) => {
                    return self.lost(format!(
                        "failed to renew within the renew deadline ({:?}): {e}",
                        self.config.renew_deadline
                    ));
                }
                None => {
                    return self.lost(format!(
                        "failed to renew within the renew deadline ({:?})",
                        self.config.renew_deadline
                    ));
                }
            }
        }
    }

    /// Gives the lease up if this process holds it, so a standby takes over at its next
    /// attempt instead of waiting a lease duration. Call after the work has stopped.
    pub async fn release(&self) -> Result<()> {
        self.leading.store(false, Ordering::SeqCst);
        let name = self.config.lease_name.clone();
        let Some(mut lease) = self.call("get", self.api.get_opt(&name)).await? else {
            return Ok(());
        };
        let record = LeaseRecord::from_spec(lease.spec.as_ref());
        if record.holder != self.config.identity {
            return Ok(());
        }
        lease.spec = Some(released_record(&record, now_micros()).to_spec());
        self.call(
            "release",
            self.api.replace(&name, &PostParams::default(), &lease),
        )
        .await?;
        tracing::info!(lease = %self.config.lease_ref(), identity = %self.config.identity, "released lease");
        Ok(())
    }

    /// One read and, when allowed, one write of the lease (client-go's tryAcquireOrRenew).
    async fn try_acquire_or_renew(&self) -> Result<Attempt> {
        let attempt = self.attempt().await;
        self.leading
            .store(matches!(attempt, Ok(Attempt::Leading)), Ordering::SeqCst);
        attempt
    }

    async fn attempt(&self) -> Result<Attempt> {
        let name = self.config.lease_name.clone();
        let identity = self.config.identity.as_str();
        let now = now_micros();
        let Some(mut lease) = self.call("get", self.api.get_opt(&name)).await? else {
            let record = next_record(None, identity, self.config.lease_duration, now);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(self.config.lease_namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(record.to_spec()),
            };
            self.call("create", self.api.create(&PostParams::default(), &lease))
                .await?;
            self.observe(record);
            return Ok(Attempt::Leading);
        };
        let record = LeaseRecord::from_spec(lease.spec.as_ref());
        let unchanged_for = self.observe(record.clone());
        if let Decision::Wait { holder, expires_in } = decide(&record, identity, unchanged_for) {
            return Ok(Attempt::Held { holder, expires_in });
        }
        let next = next_record(Some(&record), identity, self.config.lease_duration, now);
        if record.holder != identity {
            tracing::info!(lease = %self.config.lease_ref(), previous_holder = %record.holder, "taking over lease");
        }
        lease.spec = Some(next.to_spec());
        // The resourceVersion read above makes this write fail if anyone wrote in between.
        self.call(
            "update",
            self.api.replace(&name, &PostParams::default(), &lease),
        )
        .await?;
        self.observe(next);
        Ok(Attempt::Leading)
    }

    /// Remembers `record` and returns for how long it has been seen unchanged.
    fn observe(&self, record: LeaseRecord) -> Duration {
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match observed.as_ref() {
            Some((seen, since)) if *seen == record => since.elapsed(),
            _ => {
                *observed = Some((record, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Runs one apiserver call on the lease, bounded by the renew deadline.
    async fn call<T>(
        &self,
        action: &'static str,
        fut: impl Future<Output = kube::Result<T>>,
    ) -> Result<T> {
        let timeout = self.config.renew_deadline;
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(Error::Lease {
                action,
                lease: self.config.lease_ref(),
                source: Box::new(source),
            }),
            Err(_) => Err(Error::LeaseTimeout {
                action,
                lease: self.config.lease_ref(),
                timeout,
            }),
        }
    }

    fn lost(&self, reason: String) -> Error {
        self.leading.store(false, Ordering::SeqCst);
        Error::LeadershipLost {
            lease: self.config.lease_ref(),
            reason,
        }
    }

    fn jittered_retry(&self) -> Duration {
        let factor = 1.0 + rand::rng().random_range(0.0..JITTER_FACTOR);
        self.config.retry_period.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn held_by(holder: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            lease_duration: Duration::from_secs(15),
            acquire_time: Some(ts(0)),
            renew_time: Some(ts(10)),
            transitions: 2,
        }
    }

    #[test]
    fn another_holder_keeps_the_lease_until_silent_for_a_lease_duration() {
        let r = held_by("a_1");
        assert_eq!(
            decide(&r, "b_2", Duration::from_secs(4)),
            Decision::Wait {
                holder: "a_1".into(),
                expires_in: Duration::from_secs(11)
            }
        );
        assert_eq!(
            decide(&r, "b_2", Duration::from_millis(14_999)),
            Decision::Wait {
                holder: "a_1".into(),
                expires_in: Duration::from_millis(1)
            }
        );
        assert_eq!(
            decide(&r, "b_2", Duration::from_secs(15)),
            Decision::Acquire
        );
        assert_eq!(
            decide(&r, "b_2", Duration::from_secs(600)),
            Decision::Acquire
        );
    }

    #[test]
    fn own_lease_is_renewed_and_free_lease_is_taken_at_once() {
        assert_eq!(
            decide(&held_by("me"), "me", Duration::from_secs(600)),
            Decision::Renew
        );
        assert_eq!(
            decide(&held_by(""), "me", Duration::ZERO),
            Decision::Acquire
        );
        let zero = LeaseRecord {
            lease_duration: Duration::ZERO,
            ..held_by("other")
        };
        assert_eq!(decide(&zero, "me", Duration::ZERO), Decision::Acquire);
    }

    #[test]
    fn next_record_counts_transitions_and_keeps_acquire_time_on_renewal() {
        let d = Duration::from_secs(15);
        let created = next_record(None, "me", d, ts(100));
        assert_eq!(
            (
                created.transitions,
                created.acquire_time,
                created.renew_time
            ),
            (0, Some(ts(100)), Some(ts(100)))
        );
        let renewed = next_record(Some(&held_by("me")), "me", d, ts(100));
        assert_eq!(
            (
                renewed.transitions,
                renewed.acquire_time,
                renewed.renew_time
            ),
            (2, Some(ts(0)), Some(ts(100)))
        );
        let taken = next_record(Some(&held_by("other")), "me", d, ts(100));
        assert_eq!(
            (
                taken.holder.as_str(),
                taken.transitions,
                taken.acquire_time,
                taken.renew_time
            ),
            ("me", 3, Some(ts(100)), Some(ts(100)))
        );
    }

    #[test]
    fn released_record_frees_the_lease_and_keeps_the_count() {
        let r = released_record(&held_by("me"), ts(50));
        assert_eq!(r.holder, "");
        assert_eq!(r.lease_duration, Duration::from_secs(1));
        assert_eq!(r.transitions, 2);
        assert_eq!(decide(&r, "next", Duration::ZERO), Decision::Acquire);
    }

    #[test]
    fn record_round_trips_through_the_lease_spec() {
        let r = held_by("host_1234");
        let spec = r.to_spec();
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(LeaseRecord::from_spec(Some(&spec)), r);
        assert_eq!(LeaseRecord::from_spec(None), LeaseRecord::default());
        let json = serde_json::to_string(&spec).expect("serialize");
        assert!(
            json.contains("\"renewTime\":\"2023-11-14T22:13:30.000000Z\""),
            "{json}"
        );
    }

    #[test]
    fn sub_second_durations_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(15)), 15);
    }

    #[test]
    fn config_follows_client_go_rules() {
        let ok = LeaderElectionConfig::new("kube-system", "kadm-controller-manager", "h_1");
        ok.validate().expect("defaults are valid");
        assert_eq!(ok.lease_ref(), "kube-system/kadm-controller-manager");
        let bad = LeaderElectionConfig {
            renew_deadline: Duration::from_secs(15),
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let bad = LeaderElectionConfig {
            retry_period: Duration::from_secs(9),
            ..ok.clone()
        };
        let msg = bad.validate().expect_err("too slow").to_string();
        assert!(msg.contains("1.2 times the retry period"), "{msg}");
        let bad = LeaderElectionConfig {
            identity: String::new(),
            ..ok
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn default_identity_is_hostname_and_uuid() {
        let id = default_identity().expect("identity");
        let (host, uuid) = id.rsplit_once('_').expect("separator");
        assert!(!host.is_empty());
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");
        assert_ne!(id, default_identity().expect("identity"));
    }

    #[test]
    fn go_durations_parse() {
        let ok = |s: &str| parse_duration(s).expect(s);
        assert_eq!(ok("15s"), Duration::from_secs(15));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("0"), Duration::ZERO);
        for bad in ["", "15", "s", "-1s", "1d", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
