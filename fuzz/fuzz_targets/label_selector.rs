//! The `labelSelector` language: parse → print → parse gives the same selector, the
//! printed form is canonical, and matching a map agrees with matching stored JSON.
#![no_main]

use std::collections::BTreeMap;

use kadm_apimachinery::selector::LabelSelector;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = LabelSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = LabelSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, selector, "{text:?} printed as {printed:?}");
    assert_eq!(again.to_string(), printed);

    // Label sets built from the selector's own keys and values, so matches are likely
    // (from the first requirements only: the sets grow quadratically).
    let mut sets: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (i, r) in selector.requirements().iter().enumerate().take(16) {
        let value = r
            .values()
            .get(i % r.values().len().max(1))
            .cloned()
            .unwrap_or_default();
        let mut with = sets[sets.len() - 1].clone();
        with.insert(r.key().to_string(), value);
        sets.push(with);
    }
    for labels in &sets {
        let json: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        assert_eq!(
            selector.matches(labels),
            selector.matches_json(Some(&json)),
            "{printed:?} on {labels:?}"
        );
    }
    assert_eq!(
        selector.matches(&BTreeMap::new()),
        selector.matches_json(None),
        "{printed:?} without labels"
    );
});
