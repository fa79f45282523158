//! Kubernetes protobuf request bodies (kubectl >= 1.32 sends them): the envelope decoder,
//! and single messages of the kinds kadm serves.
#![no_main]

use kadm_apimachinery::{protobuf, registry};
use kadm_fuzz::write_pipeline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = protobuf::decode(data) {
        serde_json::to_vec(&value).expect("a decoded object serializes");
        // The envelope names the kind; a served one goes through the write pipeline.
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        let kind = value["kind"].as_str().unwrap_or_default();
        if let Some(res) = registry::lookup_kind(api_version, kind) {
            write_pipeline(res, value);
        }
    }
    // Without the envelope: the first byte picks the message type.
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let all = registry::all();
    let res = &all[usize::from(selector) % all.len()];
    let api_version = if res.group.is_empty() {
        res.version.to_string()
    } else {
        format!("{}/{}", res.group, res.version)
    };
    if let Some(message) = protobuf::message_name(&api_version, res.kind)
        && let Ok(value) = protobuf::decode_message(&message, bytes)
    {
        serde_json::to_vec(&value).expect("a decoded message serializes");
    }
});
