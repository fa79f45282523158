//! The full-sync benchmark (issue target: ≤ 1 s for 1,000 Services × 10 endpoints):
//! snapshot + rule generation + `nft -f` into a throw-away network namespace, timed.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::model::build_snapshot;
use crate::netns::Netns;
use crate::rules::RuleConfig;
use crate::sync::Syncer;
use crate::testdata::many;

/// Timings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Report {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub bytes: usize,
    /// Snapshot + generation + first `nft -f` into an empty namespace.
    pub first_sync: Duration,
    /// A sync where every Service lost one endpoint (a full replace of a loaded table).
    pub changed_sync: Duration,
    /// Rule generation alone for the changed state.
    pub generate_only: Duration,
}

/// Runs the benchmark in its own network namespace (deleted afterwards). Needs root.
pub fn run(services: usize, per: usize) -> Result<Report> {
    let ns = Netns::create("proxybench")?;
    let config = RuleConfig {
        node_name: "node-a".into(),
        cluster_cidrs: crate::cidr::parse_list_v4("10.244.0.0/16").unwrap_or_default(),
        service_cidr: crate::cidr::Cidr4::parse("10.96.0.0/12"),
        ..Default::default()
    };
    let mut syncer = Syncer::new(ns.exec(), ns.exec(), config.clone());
    let (svcs, slices) = many(services, per);

    let t = Instant::now();
    let o = syncer.sync(&build_snapshot(&svcs, &slices))?;
    let first_sync = t.elapsed();

    let (svcs2, mut slices2) = many(services, per);
    for s in &mut slices2 {
        s.endpoints.pop();
    }
    let t = Instant::now();
    let snap2 = build_snapshot(&svcs2, &slices2);
    let _ = crate::rules::generate(&snap2, &config);
    let generate_only = t.elapsed();
    let t = Instant::now();
    syncer.sync(&snap2)?;
    let changed_sync = t.elapsed();
    drop(ns);
    Ok(Report {
        services,
        endpoints_per_service: per,
        bytes: o.bytes,
        first_sync,
        changed_sync,
        generate_only,
    })
}
