//! Strategic merge patch over the kinds kadm serves: `selector target NUL patch`.
#![no_main]

use kadm_apimachinery::openapi;
use kadm_apimachinery::patch::strategic;
use kadm_fuzz::{pick_resource, split_nul};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((target, patch)) = split_nul(rest) else {
        return;
    };
    let (Ok(mut target), Ok(patch)) = (
        serde_json::from_slice::<Value>(target),
        serde_json::from_slice::<Value>(patch),
    ) else {
        return;
    };
    let res = pick_resource(selector);
    let Some(def) = openapi::resource_definition(res) else {
        return;
    };
    // What the apiserver patches and stores holds only the kind's fields.
    openapi::prune_unknown_fields(def, &mut target);
    let meta = strategic::builtin_meta();
    let Ok(mut merged) = strategic::apply_strategic(&target, &patch, meta, def) else {
        return;
    };
    assert!(merged.is_object());
    openapi::prune_unknown_fields(def, &mut merged);
    // An empty patch changes nothing.
    let same =
        strategic::apply_strategic(&merged, &json!({}), meta, def).expect("an empty patch applies");
    assert_eq!(same, merged, "an empty patch changed the object");
    // A strategic patch says what the object must look like, so sending it again (as
    // `kubectl apply` does) changes nothing more.
    if let Ok(mut twice) = strategic::apply_strategic(&merged, &patch, meta, def) {
        openapi::prune_unknown_fields(def, &mut twice);
        assert_eq!(twice, merged, "the patch is not idempotent");
    }
});
