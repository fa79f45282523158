//! The `fieldSelector` language: printing keeps every term, the printed form reaches a
//! fixed point, and value escaping round-trips.
#![no_main]

use kadm_apimachinery::selector::{FieldSelector, escape_value, unescape_value};
use libfuzzer_sys::fuzz_target;

fn terms(s: &FieldSelector) -> Vec<String> {
    let mut t: Vec<String> = s
        .requirements()
        .iter()
        .map(|r| format!("{:?}{:?}{:?}", r.field, r.operator, r.value))
        .collect();
    t.sort();
    t
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(unescape_value(&escape_value(text)).as_deref(), Ok(text));
    let Ok(selector) = FieldSelector::parse(text) else {
        return;
    };
    let printed = selector.to_string();
    let again = FieldSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    // Terms are ordered by their raw text (as Kubernetes orders them), so a term written
    // with a redundant escape may move once printed; the terms themselves stay.
    assert_eq!(
        terms(&again),
        terms(&selector),
        "{text:?} printed as {printed:?}"
    );
    let canonical = again.to_string();
    assert_eq!(
        FieldSelector::parse(&canonical).unwrap().to_string(),
        canonical,
        "{text:?}: printing is not stable"
    );
    for r in selector.requirements() {
        assert_eq!(
            r.matches(Some(&r.value)),
            r.operator == kadm_apimachinery::selector::FieldOperator::Equals
        );
    }
});
