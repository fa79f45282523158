//! The `subsets` of an Endpoints object: every (address, port) pair a Service has, packed
//! so that addresses sharing the same set of ports form one subset (Kubernetes'
//! `RepackSubsets`), in a stable order, and truncated to 1000 addresses as Kubernetes
//! does (`endpoints.kubernetes.io/over-capacity: truncated`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset};

/// Most addresses one Endpoints object carries.
pub const MAX_ADDRESSES: usize = 1000;
/// Set when addresses were cut to [`MAX_ADDRESSES`].
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";

/// A port in a comparable form (name, number, protocol, appProtocol).
type PortKey = (String, i32, String, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone(),
    )
}

fn port_of(k: &PortKey) -> EndpointPort {
    EndpointPort {
        name: Some(k.0.clone()).filter(|n| !n.is_empty()),
        port: k.1,
        protocol: Some(k.2.clone()).filter(|p| !p.is_empty()),
        app_protocol: k.3.clone(),
    }
}

/// An address in a comparable form: the IP, then the target's uid (Kubernetes' order).
fn address_key(a: &EndpointAddress) -> (String, String, String) {
    let uid = a
        .target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    (a.ip.clone(), uid, a.hostname.clone().unwrap_or_default())
}

/// One address with its readiness and the ports it serves.
type Member = (EndpointAddress, bool, BTreeSet<PortKey>);

/// Collects (address, ready, port) triples into packed subsets.
#[derive(Debug, Default)]
pub struct Packer {
    /// Per address key.
    addresses: BTreeMap<(String, String, String), Member>,
}

impl Packer {
    /// Adds `address` (ready or not) serving on `port` (`None`: a headless Service without
    /// ports, whose addresses have no ports).
    pub fn add(&mut self, address: EndpointAddress, ready: bool, port: Option<EndpointPort>) {
        let entry = self
            .addresses
            .entry(address_key(&address))
            .or_insert_with(|| (address, ready, BTreeSet::new()));
        if let Some(p) = port {
            entry.2.insert(port_key(&p));
        }
    }

    /// The packed subsets: addresses with identical port sets share a subset; subsets are
    /// ordered by their ports, addresses by IP.
    pub fn subsets(self) -> Vec<EndpointSubset> {
        let mut groups: BTreeMap<BTreeSet<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
            BTreeMap::new();
        for (_, (address, ready, ports)) in self.addresses {
            let g = groups.entry(ports).or_default();
            if ready {
                g.0.push(address);
            } else {
                g.1.push(address);
            }
        }
        groups
            .into_iter()
            .map(|(ports, (ready, not_ready))| EndpointSubset {
                addresses: Some(ready).filter(|a| !a.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|a| !a.is_empty()),
                ports: Some(ports.iter().map(port_of).collect::<Vec<_>>())
                    .filter(|p| !p.is_empty()),
            })
            .collect()
    }
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Total addresses, ready and not.
pub fn total(subsets: &[EndpointSubset]) -> usize {
    let (r, n) = count(subsets);
    r + n
}

/// Cuts the addresses to [`MAX_ADDRESSES`], keeping ready ones first and spreading the cut
/// over subsets in proportion to their size (Kubernetes' `truncateEndpoints`). Returns
/// whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_ADDRESSES {
        return false;
    }
    // Either some not-ready addresses go, or (too many ready ones) all not-ready and some
    // ready ones.
    let truncate_ready = ready > MAX_ADDRESSES;
    let (mut room, total) = if truncate_ready {
        (MAX_ADDRESSES, ready)
    } else {
        (MAX_ADDRESSES - ready, not_ready)
    };
    let limit = room;
    for s in subsets.iter_mut() {
        if truncate_ready {
            s.not_ready_addresses = None;
        }
        let list = if truncate_ready {
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let Some(addrs) = list.as_mut() else {
            continue;
        };
        let share = (addrs.len() * limit).div_ceil(total.max(1));
        let keep = share.min(room).min(addrs.len());
        addrs.truncate(keep);
        room -= keep;
        if addrs.is_empty() {
            *list = None;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;

    fn addr(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.to_string(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                uid: Some(format!("uid-{ip}")),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port(name: &str, n: i32) -> EndpointPort {
        EndpointPort {
            name: Some(name.into()),
            port: n,
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    #[test]
    fn addresses_with_the_same_ports_share_a_subset() {
        let mut p = Packer::default();
        p.add(addr("10.0.0.2"), true, Some(port("http", 8080)));
        p.add(addr("10.0.0.2"), true, Some(port("metrics", 9090)));
        p.add(addr("10.0.0.1"), true, Some(port("http", 8080)));
        p.add(addr("10.0.0.1"), true, Some(port("metrics", 9090)));
        p.add(addr("10.0.0.3"), false, Some(port("http", 8080)));
        // 10.0.0.4 lacks the named port "metrics".
        p.add(addr("10.0.0.4"), true, Some(port("http", 8080)));
        let s = p.subsets();
        assert_eq!(s.len(), 2);
        let ips = |v: &Option<Vec<EndpointAddress>>| {
            v.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
        };
        // Ports {http} sort before {http, metrics}.
        assert_eq!(ips(&s[0].addresses), ["10.0.0.4"]);
        assert_eq!(ips(&s[0].not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(ips(&s[1].addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(s[1].ports.as_ref().map(Vec::len), Some(2));
        assert_eq!(total(&s), 4);
    }

    #[test]
    fn headless_without_ports_has_portless_subsets() {
        let mut p = Packer::default();
        p.add(addr("10.0.0.1"), true, None);
        let s = p.subsets();
        assert_eq!(s.len(), 1);
        assert!(s[0].ports.is_none());
    }

    #[test]
    fn truncation_keeps_ready_addresses_first() {
        let mut p = Packer::default();
        for i in 0..900 {
            p.add(
                addr(&format!("10.1.{}.{}", i / 250, i % 250)),
                true,
                Some(port("a", 1)),
            );
        }
        for i in 0..300 {
            p.add(
                addr(&format!("10.2.{}.{}", i / 250, i % 250)),
                false,
                Some(port("a", 1)),
            );
        }
        let mut s = p.subsets();
        assert!(truncate(&mut s));
        let (r, n) = count(&s);
        assert_eq!((r, n), (900, 100));
        assert!(!truncate(&mut s));
    }
}
