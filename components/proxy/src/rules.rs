//! Rule generation: a [`Snapshot`] becomes the full text of kadm's nftables table, applied
//! with one `nft -f` (one kernel transaction, so packets see the old or the new rules,
//! never a mix).
//!
//! The layout follows kube-proxy's nftables mode, except that endpoints are rules in the
//! service chain rather than chains of their own (measured below, in `service_port_rules`):
//!
//! ```text
//!  nat-prerouting / nat-output ─► services ─┬─ ClusterIP from outside @cluster-cidrs: mark
//!                                           ├─ ip daddr . proto . port vmap @service-ips
//!                                           └─ local daddr: proto . port vmap @service-nodeports
//!  service-ips ─► service-H-ns/name/proto/port
//!                    ├─ affinity: ip saddr @affinity-… (update,) dnat to endpoint
//!                    └─ numgen random mod (n-i) == 0 dnat to endpoint i, …, dnat to the last
//!  service-nodeports ─► external-H-… ─ (Cluster) mark, goto service-… │ (Local) goto local-…
//!  nat-postrouting ─► masquerading (marked packets, and hairpin: saddr . daddr @hairpin-endpoints)
//!  filter hooks ─► service-endpoints-check / nodeport-endpoints-check
//!                     (no endpoints: reject; Local policy without local endpoints: drop)
//!               └─► cluster-ips-check (known ClusterIP, unknown port: reject;
//!                                      unallocated address in the service range: drop)
//! ```
//!
//! Everything is emitted in sorted order, so the same input gives byte-identical text and
//! the sync loop can skip `nft` when nothing changed.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::cidr::Cidr4;
use crate::model::{Endpoint, ServiceEntry, ServicePortName, Snapshot, categorize};

/// The nftables family and name of kadm's table.
pub const TABLE: &str = "ip kadm";
/// The packet mark bit asking `masquerading` to SNAT a connection (kube-proxy's 0x4000).
pub const MASQUERADE_MARK: &str = "0x00004000";

/// Node-level settings that shape the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleConfig {
    /// This node's name, to find endpoints for `Local` traffic policies.
    pub node_name: String,
    /// Pod CIDRs: traffic to a ClusterIP from outside them is masqueraded.
    pub cluster_cidrs: Vec<Cidr4>,
    /// Masquerade all traffic to ClusterIPs.
    pub masquerade_all: bool,
    /// Node addresses NodePorts answer on; empty means every local address but loopback.
    pub nodeport_cidrs: Vec<Cidr4>,
    /// The service range: unallocated addresses in it are dropped.
    pub service_cidr: Option<Cidr4>,
}

/// kube-proxy's chain-name hash: the first 8 characters of base32(sha256(s)).
fn hash8(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(s.as_bytes());
    // 8 base32 characters need 40 bits.
    let mut bits: u64 = 0;
    for b in &digest[..5] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..8)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

fn service_chain(prefix: &str, spn: &ServicePortName) -> String {
    let id = spn.to_string();
    format!("{prefix}-{}-{id}", hash8(&id))
}

fn endpoint_suffix(spn: &ServicePortName, ep: &Endpoint) -> String {
    let id = format!("{spn}__{}/{}", ep.ip, ep.port);
    format!("{}-{id}", hash8(&id))
}

fn affinity_set(spn: &ServicePortName, ep: &Endpoint) -> String {
    format!("affinity-{}", endpoint_suffix(spn, ep))
}

/// Text of one named element list, or nothing when empty (nft rejects `elements = { }`).
fn elements(out: &mut String, items: &[String]) {
    if !items.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", items.join(", "));
    }
}

fn chain(out: &mut String, name: &str, rules: &[String]) {
    let _ = writeln!(out, "\tchain {name} {{");
    for r in rules {
        let _ = writeln!(out, "\t\t{r}");
    }
    out.push_str("\t}\n");
}

/// The match for packets addressed to this node's NodePorts.
fn nodeport_match(cfg: &RuleConfig) -> &'static str {
    if cfg.nodeport_cidrs.is_empty() {
        "fib daddr type local ip daddr != 127.0.0.0/8"
    } else {
        "fib daddr type local ip daddr @nodeport-ips"
    }
}

/// The verdict for traffic that has nowhere to go.
fn no_endpoint_verdict(any_reachable: bool) -> &'static str {
    if any_reachable {
        "drop"
    } else {
        "goto reject-chain"
    }
}

/// Generates the full `nft -f` input that replaces kadm's table atomically.
///
/// `table` + `delete table` + the definition is nftables' idiom for "replace": the first
/// line makes the delete valid when the table does not exist yet, and the file is one
/// transaction.
pub fn generate(snapshot: &Snapshot, cfg: &RuleConfig) -> String {
    let mut cluster_ips: Vec<Ipv4Addr> = Vec::new();
    let mut service_ips = Vec::new();
    let mut service_nodeports = Vec::new();
    let mut no_ep_services = Vec::new();
    let mut no_ep_nodeports = Vec::new();
    let mut affinity_sets: Vec<(String, u32)> = Vec::new();
    let mut hairpin: Vec<Ipv4Addr> = Vec::new();
    let mut per_service = String::new();

    for (spn, entry) in &snapshot.services {
        service_port_rules(
            spn,
            entry,
            cfg,
            &mut PerService {
                service_ips: &mut service_ips,
                service_nodeports: &mut service_nodeports,
                no_ep_services: &mut no_ep_services,
                no_ep_nodeports: &mut no_ep_nodeports,
                affinity_sets: &mut affinity_sets,
                hairpin: &mut hairpin,
                chains: &mut per_service,
            },
        );
        cluster_ips.push(entry.service.cluster_ip);
    }
    cluster_ips.sort();
    cluster_ips.dedup();
    hairpin.sort();
    hairpin.dedup();

    let mut out = String::with_capacity(4096 + per_service.len());
    let _ = writeln!(out, "table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{");

    out.push_str("\tset cluster-ips {\n\t\ttype ipv4_addr\n");
    elements(
        &mut out,
        &cluster_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    );
    out.push_str("\t}\n");
    out.push_str("\tset hairpin-endpoints {\n\t\ttype ipv4_addr . ipv4_addr\n");
    elements(
        &mut out,
        &hairpin
            .iter()
            .map(|ip| format!("{ip} . {ip}"))
            .collect::<Vec<_>>(),
    );
    out.push_str("\t}\n");
    if !cfg.cluster_cidrs.is_empty() {
        out.push_str("\tset cluster-cidrs {\n\t\ttype ipv4_addr\n\t\tflags interval\n");
        elements(
            &mut out,
            &cfg.cluster_cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        );
        out.push_str("\t}\n");
    }
    if !cfg.nodeport_cidrs.is_empty() {
        out.push_str("\tset nodeport-ips {\n\t\ttype ipv4_addr\n\t\tflags interval\n");
        elements(
            &mut out,
            &cfg.nodeport_cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        );
        out.push_str("\t}\n");
    }
    for (name, ty, items) in [
        (
            "service-ips",
            "ipv4_addr . inet_proto . inet_service : verdict",
            &service_ips,
        ),
        (
            "service-nodeports",
            "inet_proto . inet_service : verdict",
            &service_nodeports,
        ),
        (
            "no-endpoint-services",
            "ipv4_addr . inet_proto . inet_service : verdict",
            &no_ep_services,
        ),
        (
            "no-endpoint-nodeports",
            "inet_proto . inet_service : verdict",
            &no_ep_nodeports,
        ),
    ] {
        let _ = writeln!(out, "\tmap {name} {{\n\t\ttype {ty}");
        elements(&mut out, items);
        out.push_str("\t}\n");
    }
    for (name, timeout) in &affinity_sets {
        let _ = writeln!(
            out,
            "\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}"
        );
    }

    // Base chains. Filter checks run just before DNAT (-110) so a Service without
    // endpoints is refused before anything rewrites it; cluster-ips-check runs after
    // DNAT, when only packets for unknown ports still carry a ClusterIP.
    let np = nodeport_match(cfg);
    for (name, hook, rules) in [
        (
            "filter-input",
            "type filter hook input priority -110; policy accept;",
            vec![
                "ct state new jump nodeport-endpoints-check".to_owned(),
                "ct state new jump service-endpoints-check".to_owned(),
            ],
        ),
        (
            "filter-forward",
            "type filter hook forward priority -110; policy accept;",
            vec![
                "ct state new jump service-endpoints-check".to_owned(),
                "ct state new jump cluster-ips-check".to_owned(),
            ],
        ),
        (
            "filter-output",
            "type filter hook output priority -110; policy accept;",
            vec!["ct state new jump service-endpoints-check".to_owned()],
        ),
        (
            "filter-output-post-dnat",
            "type filter hook output priority -90; policy accept;",
            vec!["ct state new jump cluster-ips-check".to_owned()],
        ),
        (
            "nat-prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            vec!["jump services".to_owned()],
        ),
        (
            "nat-output",
            "type nat hook output priority -100; policy accept;",
            vec!["jump services".to_owned()],
        ),
        (
            "nat-postrouting",
            "type nat hook postrouting priority srcnat; policy accept;",
            vec!["jump masquerading".to_owned()],
        ),
    ] {
        let mut all = vec![hook.to_owned()];
        all.extend(rules);
        chain(&mut out, name, &all);
    }
    chain(
        &mut out,
        "mark-for-masquerade",
        &[format!("meta mark set meta mark | {MASQUERADE_MARK}")],
    );
    chain(
        &mut out,
        "masquerading",
        &[
            // A pod reaching itself through its Service: without SNAT it would answer
            // itself directly and drop the reply as unknown.
            "ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade"
                .to_owned(),
            format!("meta mark & {MASQUERADE_MARK} == 0 return"),
            format!("meta mark set meta mark ^ {MASQUERADE_MARK}"),
            "masquerade fully-random".to_owned(),
        ],
    );
    chain(&mut out, "reject-chain", &["reject".to_owned()]);
    chain(
        &mut out,
        "service-endpoints-check",
        &["ip daddr . meta l4proto . th dport vmap @no-endpoint-services".to_owned()],
    );
    chain(
        &mut out,
        "nodeport-endpoints-check",
        &[format!(
            "{np} meta l4proto . th dport vmap @no-endpoint-nodeports"
        )],
    );
    let mut ip_checks = vec!["ip daddr @cluster-ips reject".to_owned()];
    if let Some(range) = cfg.service_cidr {
        ip_checks.push(format!("ip daddr {range} drop"));
    }
    chain(&mut out, "cluster-ips-check", &ip_checks);
    let masq_rule = if cfg.masquerade_all {
        "ip daddr @cluster-ips jump mark-for-masquerade".to_owned()
    } else if !cfg.cluster_cidrs.is_empty() {
        "ip daddr @cluster-ips ip saddr != @cluster-cidrs jump mark-for-masquerade".to_owned()
    } else {
        // Without pod CIDRs nothing tells pods from other sources: only NodePort and
        // hairpin traffic is masqueraded.
        String::new()
    };
    let service_rules: Vec<String> = [
        // ClusterIP traffic from outside the pod network (or all of it) is
        // masqueraded, so replies come back through this node.
        masq_rule,
        "ip daddr . meta l4proto . th dport vmap @service-ips".to_owned(),
        format!("{np} meta l4proto . th dport vmap @service-nodeports"),
    ]
    .into_iter()
    .filter(|r| !r.is_empty())
    .collect();
    chain(&mut out, "services", &service_rules);
    out.push_str(&per_service);
    out.push_str("}\n");
    out
}

/// Where one Service port's elements and chains go.
struct PerService<'a> {
    service_ips: &'a mut Vec<String>,
    service_nodeports: &'a mut Vec<String>,
    no_ep_services: &'a mut Vec<String>,
    no_ep_nodeports: &'a mut Vec<String>,
    affinity_sets: &'a mut Vec<(String, u32)>,
    hairpin: &'a mut Vec<Ipv4Addr>,
    chains: &'a mut String,
}

fn service_port_rules(
    spn: &ServicePortName,
    entry: &ServiceEntry,
    cfg: &RuleConfig,
    out: &mut PerService<'_>,
) {
    let svc = &entry.service;
    let proto = spn.protocol.as_str();
    let cat = categorize(entry, &cfg.node_name);
    let cluster_chain = service_chain("service", spn);
    let local_chain = service_chain("local", spn);
    let external_chain = service_chain("external", spn);
    let ip_key = format!("{} . {proto} . {}", svc.cluster_ip, svc.port);

    // Every endpoint any policy uses: its address joins the hairpin set, and with
    // ClientIP affinity it gets a set remembering its clients.
    let mut used: Vec<&Endpoint> = cat
        .cluster
        .iter()
        .chain(cat.local.iter())
        .copied()
        .collect();
    used.sort();
    used.dedup();
    for ep in &used {
        out.hairpin.push(ep.ip);
        if let Some(timeout) = svc.affinity_timeout {
            out.affinity_sets.push((affinity_set(spn, ep), timeout));
        }
    }

    // Load-balancing chains (cluster-wide and node-local), DNAT inline.
    //
    // kube-proxy jumps through a chain per endpoint and picks with one
    // `numgen random mod n vmap { … }`. Both cost kernel objects: with 1,000 Services × 10
    // endpoints `nft -f` took 3.1 s with them and 0.6 s without, so here each endpoint is
    // a rule: endpoint i is taken with probability 1/(n-i) among those left (uniform
    // overall), hairpin traffic is found in postrouting through @hairpin-endpoints.
    let dnat = |ep: &Endpoint| {
        let update = if svc.affinity_timeout.is_some() {
            format!("update @{} {{ ip saddr }} ", affinity_set(spn, ep))
        } else {
            String::new()
        };
        format!("{update}dnat to {}:{}", ep.ip, ep.port)
    };
    let balance = |name: &str, eps: &[&Endpoint], chains: &mut String| {
        let mut rules = Vec::new();
        if svc.affinity_timeout.is_some() {
            for ep in eps {
                rules.push(format!(
                    "ip saddr @{} meta l4proto {proto} {}",
                    affinity_set(spn, ep),
                    dnat(ep)
                ));
            }
        }
        let n = eps.len();
        for (i, ep) in eps.iter().enumerate() {
            if i + 1 < n {
                rules.push(format!(
                    "meta l4proto {proto} numgen random mod {} == 0 {}",
                    n - i,
                    dnat(ep)
                ));
            } else {
                rules.push(format!("meta l4proto {proto} {}", dnat(ep)));
            }
        }
        chain(chains, name, &rules);
    };
    if !cat.cluster.is_empty() {
        balance(&cluster_chain, &cat.cluster, out.chains);
    }
    if !cat.local.is_empty() && (svc.internal_local || svc.external_local) {
        balance(&local_chain, &cat.local, out.chains);
    }

    // ClusterIP.
    let internal = if svc.internal_local {
        &cat.local
    } else {
        &cat.cluster
    };
    if internal.is_empty() {
        out.no_ep_services.push(format!(
            "{ip_key} : {}",
            no_endpoint_verdict(cat.any_reachable)
        ));
    } else {
        let target = if svc.internal_local {
            &local_chain
        } else {
            &cluster_chain
        };
        out.service_ips.push(format!("{ip_key} : goto {target}"));
    }

    // NodePort.
    let Some(node_port) = svc.node_port else {
        return;
    };
    let np_key = format!("{proto} . {node_port}");
    let external = if svc.external_local {
        &cat.local
    } else {
        &cat.cluster
    };
    if external.is_empty() {
        out.no_ep_nodeports.push(format!(
            "{np_key} : {}",
            no_endpoint_verdict(cat.any_reachable)
        ));
        return;
    }
    let rules = if svc.external_local {
        // Source IPs are preserved, except for traffic from this node itself, which is
        // masqueraded and may use any endpoint (kube-proxy's short-circuit).
        let mut r = vec!["fib saddr type local jump mark-for-masquerade".to_owned()];
        if !cat.cluster.is_empty() {
            r.push(format!("fib saddr type local goto {cluster_chain}"));
        }
        r.push(format!("goto {local_chain}"));
        r
    } else {
        vec![
            "jump mark-for-masquerade".to_owned(),
            format!("goto {cluster_chain}"),
        ]
    };
    chain(out.chains, &external_chain, &rules);
    out.service_nodeports
        .push(format!("{np_key} : goto {external_chain}"));
}

#[cfg(test)]
mod tests;
