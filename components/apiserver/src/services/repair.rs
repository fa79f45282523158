//! Makes the allocation keys match the Services, as Kubernetes' repair controllers do:
//! keys whose Service is gone are freed, values a Service holds without a key (Services
//! written before kadm allocated, or restored from a backup) are claimed, and Services
//! with values outside the configured ranges or sharing a value are reported. Runs at
//! start and every 3 minutes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kadm_apimachinery::{ApiError, meta, registry};

use super::{Allocator, IP_PREFIX, PORT_PREFIX, held_ips, held_ports, ip_key, port_key};
use crate::storage::Store;

/// Kubernetes repairs every 3 minutes.
pub const INTERVAL: Duration = Duration::from_secs(180);
/// Services read per page.
const PAGE: i64 = 500;
/// Upper bound on pages (5 million Services).
const MAX_PAGES: usize = 10_000;
/// Most allocation keys read in one pass.
const MAX_KEYS: i64 = 1 << 21;

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub freed: usize,
    pub claimed: usize,
    pub out_of_range: usize,
    pub duplicates: usize,
}

/// Repairs once now (before the server answers, as Kubernetes' repair runs before
/// readiness), then every [`INTERVAL`] until `shutdown` flips.
pub async fn start(
    store: Store,
    alloc: Arc<Allocator>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    pass(&store, &alloc).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
            pass(&store, &alloc).await;
        }
    });
}

async fn pass(store: &Store, alloc: &Allocator) {
    match run_once(store, alloc).await {
        Ok(r) if r != Report::default() => {
            tracing::info!(
                freed = r.freed,
                claimed = r.claimed,
                out_of_range = r.out_of_range,
                duplicates = r.duplicates,
                "service allocations repaired"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e.message, "service allocation repair failed; retrying later")
        }
    }
}

/// One repair pass.
pub async fn run_once(store: &Store, alloc: &Allocator) -> Result<Report, ApiError> {
    let services = registry::lookup("", "v1", "services")
        .ok_or_else(|| ApiError::internal("services not registered"))?;
    let prefix = format!("/registry/{}/", services.etcd_prefix);
    let mut report = Report::default();
    // key → (owner, value) for every value some Service holds.
    let mut owners: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut start: Option<String> = None;
    let mut revision = 0;
    for _ in 0..MAX_PAGES {
        let page = store
            .list(&prefix, start.as_deref(), revision, PAGE)
            .await?;
        revision = page.revision;
        for item in &page.items {
            let svc = &item.object;
            let who = format!("{}/{}", meta::namespace(svc), meta::name(svc));
            let value = super::owner(svc);
            let mut keys = Vec::new();
            for ip in held_ips(svc) {
                if alloc.ips.offset_of(ip).is_some() {
                    keys.push(ip_key(ip));
                } else {
                    report.out_of_range += 1;
                    tracing::warn!(service = %who, cluster_ip = %ip, range = alloc.ips.cidr(), "service cluster IP is not within the service CIDR; recreate the service to get one");
                }
            }
            for p in held_ports(svc) {
                if alloc.ports.contains(p) {
                    keys.push(port_key(p));
                } else {
                    report.out_of_range += 1;
                    tracing::warn!(service = %who, node_port = p, range = %alloc.ports.describe(), "service node port is not within the node port range");
                }
            }
            for key in keys {
                if let Some((other, _)) = owners.get(&key) {
                    report.duplicates += 1;
                    tracing::warn!(service = %who, other = %other, key = %key, "two services hold the same value; recreate one of them");
                    continue;
                }
                owners.insert(key, (who.clone(), value.clone()));
            }
        }
        if !page.more {
            break;
        }
        let Some(last) = page.items.last() else { break };
        start = Some(format!("{}\0", last.key));
    }
    let mut existing = BTreeMap::new();
    for p in [IP_PREFIX, PORT_PREFIX] {
        existing.extend(store.list_keys(p, MAX_KEYS).await?);
    }
    for (key, rev) in &existing {
        // Written after the Services were read: a create in flight, not a leak.
        if *rev > revision || owners.contains_key(key) {
            continue;
        }
        if store.delete_raw(key, *rev).await? {
            report.freed += 1;
            tracing::info!(key = %key, "freed a service allocation whose service is gone");
        }
    }
    for (key, (who, value)) in owners {
        if existing.contains_key(&key) {
            continue;
        }
        if store.create_raw(&key, value).await? {
            report.claimed += 1;
            tracing::info!(key = %key, service = %who, "claimed a value a service held without an allocation record");
        }
    }
    Ok(report)
}
