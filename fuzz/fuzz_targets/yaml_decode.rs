//! Request bodies as YAML: the duplicate-detecting decoder, a JSON round trip of what it
//! produced, then the write pipeline.
#![no_main]

use kadm_apimachinery::openapi;
use kadm_fuzz::{pick_resource, write_pipeline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Ok((value, _)) = openapi::decode_yaml_strict(body) else {
        return;
    };
    // Whatever YAML decodes to is plain JSON: it prints and reads back unchanged, with no
    // repeated keys.
    let text = serde_json::to_vec(&value).expect("a decoded value serializes");
    let (back, dups) = openapi::decode_json_strict(&text).expect("printed JSON decodes");
    assert_eq!(back, value);
    assert!(dups.is_empty(), "{dups:?}");
    write_pipeline(pick_resource(selector), value);
});
