//! Helpers shared by the fuzz targets: input framing, and the apiserver's write pipeline
//! for a decoded body (the same calls, in the same order, as `kadm-apiserver`'s handlers).

use kadm_apimachinery::{ResourceInfo, defaults, openapi, registry, validation};
use serde_json::Value;

/// The CronJob schedule parser, compiled from the controller-manager's own source file: it
/// needs only jiff and thiserror, while building the whole controller-manager (kube-rs,
/// tokio, hyper) for it would more than double a cold fuzz build.
/// (`rustfmt::skip`: the file is formatted with its own crate.)
#[rustfmt::skip]
#[path = "../../components/controller-manager/src/cronjob/schedule.rs"]
pub mod schedule;

/// Splits an input at its first NUL byte: JSON and YAML text never contain a raw NUL,
/// so `target NUL patch` frames two documents unambiguously.
pub fn split_nul(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = data.iter().position(|b| *b == 0)?;
    Some((&data[..at], &data[at + 1..]))
}

/// The served resources that have an OpenAPI definition, in registry order.
pub fn resources() -> Vec<&'static ResourceInfo> {
    registry::all()
        .iter()
        .filter(|r| openapi::resource_definition(r).is_some())
        .collect()
}

/// Picks a resource from one input byte.
pub fn pick_resource(byte: u8) -> &'static ResourceInfo {
    let all = resources();
    all[usize::from(byte) % all.len()]
}

/// What a create does to a decoded body before storing it: drop unknown fields, decode
/// into the Kubernetes type, default, validate. Each step must accept anything the
/// previous one let through, and pruning must be idempotent (Kubernetes' unknown-field
/// walk finds nothing left on a second pass).
pub fn write_pipeline(res: &ResourceInfo, mut obj: Value) {
    if !obj.is_object() {
        return;
    }
    let Some(def) = openapi::resource_definition(res) else {
        return;
    };
    openapi::prune_unknown_fields(def, &mut obj);
    let again = openapi::prune_unknown_fields(def, &mut obj);
    assert!(again.is_empty(), "pruning twice removed {again:?}");
    if validation::decode_typed(res, &obj).is_err() {
        return;
    }
    defaults::apply(res, &mut obj);
    let _ = validation::validate(res, &obj);
    // The stored form is JSON again.
    serde_json::to_vec(&obj).expect("a decoded object serializes");
}
