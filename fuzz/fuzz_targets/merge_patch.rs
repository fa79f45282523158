//! RFC 7386 JSON merge patch: `target NUL patch`.
#![no_main]

use kadm_apimachinery::patch::apply_merge_patch;
use kadm_fuzz::split_nul;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Whether `patch`'s object members are all in `doc` as the merge put them: removed for
/// `null`, merged for objects, equal otherwise.
fn applied(doc: &Value, patch: &Value) -> bool {
    let (Some(doc), Some(patch)) = (doc.as_object(), patch.as_object()) else {
        return false;
    };
    patch.iter().all(|(k, v)| match v {
        Value::Null => !doc.contains_key(k),
        Value::Object(_) => doc.get(k).is_some_and(|d| applied(d, v)),
        other => doc.get(k) == Some(other),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((target, patch)) = split_nul(data) else {
        return;
    };
    let (Ok(target), Ok(patch)) = (
        serde_json::from_slice::<Value>(target),
        serde_json::from_slice::<Value>(patch),
    ) else {
        return;
    };
    let Ok(merged) = apply_merge_patch(&target, &patch) else {
        return;
    };
    assert!(
        applied(&merged, &patch),
        "{merged} does not reflect {patch}"
    );
    // RFC 7386 patches are idempotent.
    assert_eq!(apply_merge_patch(&merged, &patch).unwrap(), merged);
});
