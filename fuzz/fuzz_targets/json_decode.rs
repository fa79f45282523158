//! Request bodies as JSON: the duplicate-detecting decoder, then the write pipeline.
#![no_main]

use kadm_apimachinery::openapi;
use kadm_fuzz::{pick_resource, write_pipeline};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let strict = openapi::decode_json_strict(body);
    // The strict decoder accepts exactly what serde_json accepts, with the same value
    // (the last of repeated keys wins, as in Go).
    let plain = serde_json::from_slice::<Value>(body);
    match (&strict, &plain) {
        (Ok((a, dups)), Ok(b)) => {
            assert_eq!(a, b);
            if !dups.is_empty() {
                assert!(
                    dups.iter().all(|d| d.starts_with("duplicate field ")),
                    "{dups:?}"
                );
            }
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("strict decode {a:?} but plain decode {b:?}"),
    }
    if let Ok((value, _)) = strict {
        write_pipeline(pick_resource(selector), value);
    }
});
