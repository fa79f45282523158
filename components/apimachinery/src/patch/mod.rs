//! Patch types the apiserver accepts, and how each applies to a JSON object.
//!
//! JSON patch (RFC 6902) and JSON merge patch (RFC 7386) are generic; strategic
//! merge ([`strategic`]) needs per-type metadata (patch strategy and merge key per
//! field); server-side apply is [`crate::managedfields`].

pub mod strategic;

use serde_json::Value;

use crate::{Error, Result};

/// The `Content-Type` of a PATCH request, which selects the patch semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchType {
    /// Media types in the order Kubernetes lists them in a 415 answer.
    pub const MEDIA_TYPES: &'static [&'static str] = &[
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
        "application/strategic-merge-patch+json",
    ];

    /// From a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Applies an RFC 6902 patch; a failing `test` op or a bad path is an error and
/// leaves `target` unchanged (the patch is applied to a copy).
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| Error::Patch(format!("decode json patch: {e}")))?;
    let mut doc = target.clone();
    // Applied to a copy that is dropped on error, so nothing needs undoing — and the crate's
    // undoing `patch` panics when a failed `move` cannot be undone.
    json_patch::patch_unsafe(&mut doc, &ops).map_err(|e| Error::Patch(e.to_string()))?;
    Ok(doc)
}

/// Applies an RFC 7386 merge patch: objects merge recursively, `null` deletes, lists replace.
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Result<Value> {
    if !patch.is_object() {
        return Err(Error::Patch("a merge patch must be a JSON object".into()));
    }
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        let p = json!({"a": {"b": null}, "l": [3]});
        assert_eq!(
            apply_merge_patch(&t, &p).expect("merge"),
            json!({"a": {"c": 2}, "l": [3]})
        );
    }

    #[test]
    fn json_patch_failed_test_is_an_error() {
        let t = json!({"a": 1});
        let p = json!([{"op": "test", "path": "/a", "value": 2}, {"op": "replace", "path": "/a", "value": 3}]);
        assert!(apply_json_patch(&t, &p).is_err());
        let ok = json!([{"op": "replace", "path": "/a", "value": 3}]);
        assert_eq!(apply_json_patch(&t, &ok).expect("patch"), json!({"a": 3}));
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }

    /// Found by the `json_patch` fuzz target: json-patch's all-or-nothing `patch` panics
    /// when a failed `move` (its source already taken away) leaves earlier ops impossible to
    /// undo. The patch applies to a copy, so there is nothing to undo: an error, not a panic.
    #[test]
    fn json_patch_whose_failed_move_cannot_be_undone_is_an_error_not_a_panic() {
        let t = json!({"metadata": {"name": "web", "labels": {"app": "web"}}});
        let p = json!([
            {"op": "add", "path": "/metadata/labels/x", "value": "1"},
            {"op": "move", "from": "/metadata/labels", "path": "/missing/annotations"},
        ]);
        let e = apply_json_patch(&t, &p).expect_err("the move has nowhere to go");
        assert!(e.to_string().contains("/missing/annotations"), "{e}");
        // The target is untouched, and a good patch still applies.
        assert_eq!(
            t,
            json!({"metadata": {"name": "web", "labels": {"app": "web"}}})
        );
        let ok =
            json!([{"op": "move", "from": "/metadata/labels", "path": "/metadata/annotations"}]);
        assert_eq!(
            apply_json_patch(&t, &ok).expect("patch"),
            json!({"metadata": {"name": "web", "annotations": {"app": "web"}}})
        );
    }
}
