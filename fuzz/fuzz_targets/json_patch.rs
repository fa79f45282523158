//! RFC 6902 JSON patch: `target NUL patch`.
#![no_main]

use kadm_apimachinery::patch::apply_json_patch;
use kadm_fuzz::split_nul;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

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
    let Ok(patched) = apply_json_patch(&target, &patch) else {
        return;
    };
    // The empty patch is the identity.
    assert_eq!(apply_json_patch(&patched, &json!([])).unwrap(), patched);
    // After a final add or replace, the value is where the op put it: a `test` of it
    // appended to the same patch passes and changes nothing.
    let Some(ops) = patch.as_array() else {
        return;
    };
    let Some(last) = ops.last() else {
        return;
    };
    let (Some(op), Some(path), Some(value)) = (
        last.get("op").and_then(Value::as_str),
        last.get("path").and_then(Value::as_str),
        last.get("value"),
    ) else {
        return;
    };
    if !matches!(op, "add" | "replace") || path.ends_with("/-") {
        return;
    }
    let mut checked = ops.clone();
    checked.push(json!({"op": "test", "path": path, "value": value}));
    let again = apply_json_patch(&target, &Value::Array(checked))
        .unwrap_or_else(|e| panic!("test of the last {op} at {path:?} failed: {e}"));
    assert_eq!(again, patched);
});
