//! `pod-template-hash`: the name suffix and label that tie a ReplicaSet to one version of a
//! Deployment's pod template.
//!
//! Kubernetes hashes the template with FNV-32a over its Go-struct dump, appends the
//! collision count (a little-endian uint32 in 8 bytes), prints the sum in decimal and maps
//! each digit into a vowel-free alphabet (`SafeEncodeString`). kadm keeps every step but the
//! dump: it hashes the template's canonical JSON (keys sorted, empty values dropped), so
//! equal templates always hash alike, though not to Kubernetes' value.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label (and ReplicaSet name suffix) carrying the hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Kubernetes' `rand` alphabet: no vowels, no 0/1/3 (no words, no look-alikes).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Continues an FNV-1a hash with more bytes.
fn fnv32a_more(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// Kubernetes' `SafeEncodeString`: each character mapped into [`ALPHANUMS`].
pub fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| char::from(ALPHANUMS[(c as usize) % ALPHANUMS.len()]))
        .collect()
}

/// The template as compared and hashed: JSON without nulls, empty maps and empty lists (Go's
/// semantic equality does not tell nil from empty either), optionally without the
/// `pod-template-hash` label.
fn normalized(template: &PodTemplateSpec, drop_hash_label: bool) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if drop_hash_label
        && let Some(labels) = v
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut v);
    v
}

/// Drops nulls and empty containers, bottom up; true when `v` itself is empty now.
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => {
            m.retain(|_, x| !prune(x));
            m.is_empty()
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                prune(x);
            }
            a.is_empty()
        }
        _ => false,
    }
}

/// JSON with sorted keys, whatever the map's order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", Value::String(k.clone()));
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// The `pod-template-hash` of a template, with the Deployment's collision count.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    canonical(&normalized(template, false), &mut text);
    let mut h = fnv32a(text.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a_more(h, &bytes);
    }
    safe_encode(&h.to_string())
}

/// Kubernetes' `EqualIgnoreHash`: the same template but for the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized(a, true) == normalized(b, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).expect("template")
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn safe_encode_maps_digits_like_kubernetes() {
        // '0' is 48: 48 % 27 = 21 → '4'; '9' is 57: 57 % 27 = 3 → 'f'.
        assert_eq!(safe_encode("0"), "4");
        assert_eq!(safe_encode("9"), "f");
        assert_eq!(safe_encode("1234567890"), "56789bcdf4");
    }

    #[test]
    fn hash_is_stable_and_ignores_key_order_and_empties() {
        let a = template(json!({"metadata": {"labels": {"app": "a", "tier": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}));
        let b = template(
            json!({"spec": {"containers": [{"image": "nginx", "name": "c"}], "volumes": []},
            "metadata": {"annotations": {}, "labels": {"tier": "b", "app": "a"}}}),
        );
        assert_eq!(compute_hash(&a, None), compute_hash(&b, None));
        let h = compute_hash(&a, None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|c| ALPHANUMS.contains(&c)), "{h}");
    }

    #[test]
    fn hash_changes_with_template_and_collision_count() {
        let a = template(json!({"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}));
        let b = template(json!({"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}));
        assert_ne!(compute_hash(&a, None), compute_hash(&b, None));
        assert_ne!(compute_hash(&a, None), compute_hash(&a, Some(1)));
        assert_ne!(compute_hash(&a, Some(1)), compute_hash(&a, Some(2)));
        // Kubernetes hashes a zero count too: it differs from no count.
        assert_ne!(compute_hash(&a, None), compute_hash(&a, Some(0)));
    }

    #[test]
    fn equality_ignores_only_the_hash_label() {
        let a = template(
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        let b = template(
            json!({"metadata": {"labels": {"app": "a", "pod-template-hash": "xyz"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        let c = template(
            json!({"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &c));
    }
}
