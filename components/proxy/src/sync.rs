//! One full sync: snapshot → rules text (only when the snapshot changed) → `nft -f` when
//! the text changed → conntrack clean-up for UDP. Synchronous on purpose; the run loop calls it from a blocking task
//! and decides *when* (coalescing, minimum interval).
//!
//! Why conntrack: UDP has no connection end, so a conntrack entry DNAT'd to an endpoint
//! that went away keeps sending a client's datagrams into the void until it times out.
//! Likewise an entry created while the Service had no endpoints (rejected) keeps the
//! client from reaching the endpoints that arrive later. kube-proxy deletes both; so do we.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::error::Result;
use crate::host::{Conntrack, ConntrackFilter, Nft};
use crate::model::{Protocol, ServicePortName, Snapshot, categorize};
use crate::rules::{RuleConfig, generate};

/// What a UDP Service port looked like at the last applied sync.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UdpState {
    cluster_ip: Ipv4Addr,
    port: u16,
    node_port: Option<u16>,
    endpoints: BTreeSet<Ipv4Addr>,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether `nft` ran (the text differed from the last applied one).
    pub applied: bool,
    /// Conntrack deletions requested.
    pub conntrack_deletes: usize,
    /// Bytes of rules text.
    pub bytes: usize,
}

/// Holds what was last applied, so unchanged syncs cost no `nft` call, and a snapshot
/// equal to the applied one (a resync, a watch event the rules do not depend on) no
/// rule generation either.
pub struct Syncer<N, C> {
    nft: N,
    conntrack: C,
    config: RuleConfig,
    last_snapshot: Option<Snapshot>,
    last_text: Option<String>,
    last_udp: BTreeMap<ServicePortName, UdpState>,
}

impl<N: Nft, C: Conntrack> Syncer<N, C> {
    pub fn new(nft: N, conntrack: C, config: RuleConfig) -> Self {
        Self {
            nft,
            conntrack,
            config,
            last_snapshot: None,
            last_text: None,
            last_udp: BTreeMap::new(),
        }
    }

    /// Brings the table in line with `snapshot`. On an `nft` failure nothing is recorded
    /// as applied, so the next sync tries again.
    pub fn sync(&mut self, snapshot: &Snapshot) -> Result<Outcome> {
        let unchanged = |bytes| Outcome {
            applied: false,
            conntrack_deletes: 0,
            bytes,
        };
        if let Some(text) = &self.last_text
            && self.last_snapshot.as_ref() == Some(snapshot)
        {
            return Ok(unchanged(text.len()));
        }
        let text = generate(snapshot, &self.config);
        if self.last_text.as_deref() == Some(text.as_str()) {
            self.last_snapshot = Some(snapshot.clone());
            return Ok(unchanged(text.len()));
        }
        let bytes = text.len();
        self.last_text = None;
        self.last_snapshot = None;
        self.nft.apply(&text)?;
        self.last_text = Some(text);
        self.last_snapshot = Some(snapshot.clone());

        let udp = self.udp_state(snapshot);
        let filters = stale_conntrack(&self.last_udp, &udp);
        for f in &filters {
            // A failed clean-up only delays recovery until the entry times out; it must
            // not fail the sync that already changed the rules.
            if let Err(e) = self.conntrack.delete(f) {
                tracing::warn!(error = %e, filter = ?f, "could not delete stale conntrack entries");
            }
        }
        self.last_udp = udp;
        Ok(Outcome {
            applied: true,
            conntrack_deletes: filters.len(),
            bytes,
        })
    }

    fn udp_state(&self, snapshot: &Snapshot) -> BTreeMap<ServicePortName, UdpState> {
        snapshot
            .services
            .iter()
            .filter(|(spn, _)| spn.protocol == Protocol::Udp)
            .map(|(spn, entry)| {
                let cat = categorize(entry, &self.config.node_name);
                let endpoints = cat
                    .cluster
                    .iter()
                    .chain(cat.local.iter())
                    .map(|e| e.ip)
                    .collect();
                let s = &entry.service;
                (
                    spn.clone(),
                    UdpState {
                        cluster_ip: s.cluster_ip,
                        port: s.port,
                        node_port: s.node_port,
                        endpoints,
                    },
                )
            })
            .collect()
    }
}

/// The deletions kube-proxy does after a sync: entries DNAT'd to endpoints that are gone,
/// and all entries of a Service port that just got its first endpoints.
fn stale_conntrack(
    before: &BTreeMap<ServicePortName, UdpState>,
    after: &BTreeMap<ServicePortName, UdpState>,
) -> Vec<ConntrackFilter> {
    let mut out = BTreeSet::new();
    let f = |orig_dst, orig_port_dst, dst_nat| ConntrackFilter {
        protocol: Protocol::Udp,
        orig_dst,
        orig_port_dst,
        dst_nat,
    };
    for (spn, old) in before {
        let now = after.get(spn);
        for ep in &old.endpoints {
            if now.is_some_and(|n| n.endpoints.contains(ep)) {
                continue;
            }
            out.insert(f(Some(old.cluster_ip), old.port, Some(*ep)));
            if let Some(np) = old.node_port {
                out.insert(f(None, np, Some(*ep)));
            }
        }
    }
    for (spn, new) in after {
        let had = before.get(spn).is_some_and(|o| !o.endpoints.is_empty());
        if !had && !new.endpoints.is_empty() {
            out.insert(f(Some(new.cluster_ip), new.port, None));
            if let Some(np) = new.node_port {
                out.insert(f(None, np, None));
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Call, Recorder};
    use crate::model::build_snapshot;
    use crate::testdata::{ready, service, slice};

    fn snap(eps: &[&str]) -> Snapshot {
        let e: Vec<_> = eps.iter().map(|ip| ready(ip, "node-a")).collect();
        build_snapshot(
            &[service("kube-system", "dns", "10.96.0.53", "UDP", 53)],
            &[slice("kube-system", "dns", "a", "UDP", 5353, &e)],
        )
    }

    fn syncer(rec: &Recorder) -> Syncer<Recorder, Recorder> {
        Syncer::new(
            rec.clone(),
            rec.clone(),
            RuleConfig {
                node_name: "node-a".into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn unchanged_input_does_not_run_nft_again() {
        let rec = Recorder::default();
        let mut s = syncer(&rec);
        assert!(s.sync(&snap(&["10.244.1.2"])).expect("sync").applied);
        assert!(!s.sync(&snap(&["10.244.1.2"])).expect("sync").applied);
        let nft_calls = rec
            .take()
            .into_iter()
            .filter(|c| matches!(c, Call::Nft(_)))
            .count();
        assert_eq!(nft_calls, 1);
    }

    #[test]
    fn removed_udp_endpoint_has_its_conntrack_entries_deleted() {
        let rec = Recorder::default();
        let mut s = syncer(&rec);
        s.sync(&snap(&["10.244.1.2", "10.244.1.3"])).expect("sync");
        // The first endpoints of a port clear entries cached while it had none.
        let first = rec.take();
        assert!(
            first.contains(&Call::Conntrack(ConntrackFilter {
                protocol: Protocol::Udp,
                orig_dst: Some("10.96.0.53".parse().expect("ip")),
                orig_port_dst: 53,
                dst_nat: None,
            })),
            "{first:?}"
        );
        s.sync(&snap(&["10.244.1.3"])).expect("sync");
        let calls = rec.take();
        assert!(
            matches!(&calls[0], Call::Nft(t) if !t.contains("10.244.1.2")),
            "{calls:?}"
        );
        assert_eq!(
            calls[1..],
            [Call::Conntrack(ConntrackFilter {
                protocol: Protocol::Udp,
                orig_dst: Some("10.96.0.53".parse().expect("ip")),
                orig_port_dst: 53,
                dst_nat: Some("10.244.1.2".parse().expect("ip")),
            })]
        );
        assert_eq!(
            ConntrackFilter {
                protocol: Protocol::Udp,
                orig_dst: Some("10.96.0.53".parse().expect("ip")),
                orig_port_dst: 53,
                dst_nat: Some("10.244.1.2".parse().expect("ip")),
            }
            .args()
            .join(" "),
            "-D -p udp --orig-dst 10.96.0.53 --orig-port-dst 53 --dst-nat 10.244.1.2"
        );
    }

    #[test]
    fn failed_nft_is_retried_on_the_next_sync() {
        let rec = Recorder::default();
        let mut s = syncer(&rec);
        *rec.fail_nft.lock().expect("lock") = true;
        assert!(s.sync(&snap(&["10.244.1.2"])).is_err());
        *rec.fail_nft.lock().expect("lock") = false;
        assert!(s.sync(&snap(&["10.244.1.2"])).expect("sync").applied);
        // No conntrack clean-up was done for the failed attempt, only after the success.
        let calls = rec.take();
        assert_eq!(
            calls.iter().filter(|c| matches!(c, Call::Nft(_))).count(),
            2
        );
        assert_eq!(
            calls
                .iter()
                .filter(|c| matches!(c, Call::Conntrack(_)))
                .count(),
            1
        );
    }
}
