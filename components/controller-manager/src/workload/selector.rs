//! Label selectors as controllers use them: `spec.selector` of a workload against the
//! labels of the objects it may own.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// The selector a workload's `spec.selector` describes; `None` when it cannot be parsed (an
/// invalid operator or a set operator without values). An absent or empty selector selects
/// everything, as Kubernetes' `LabelSelectorAsSelector`.
pub fn parse(selector: Option<&LabelSelector>) -> Option<Selector> {
    match selector {
        None => Some(Selector::default()),
        Some(s) => Selector::try_from(s.clone()).ok(),
    }
}

/// Whether `labels` (absent = none) satisfy `selector`.
pub fn matches(selector: &Selector, labels: Option<&BTreeMap<String, String>>) -> bool {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    selector.matches(labels.unwrap_or(&EMPTY))
}

/// Whether a `LabelSelector` is the empty one (`{}`), which selects every object; Kubernetes'
/// deployment controller refuses to act on it.
pub fn selects_everything(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ls(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).expect("selector")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_combine() {
        let s = parse(Some(&ls(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))))
        .expect("valid");
        assert!(matches(&s, Some(&labels(&[("app", "web"), ("tier", "a")]))));
        assert!(!matches(
            &s,
            Some(&labels(&[("app", "web"), ("tier", "c")]))
        ));
        assert!(!matches(
            &s,
            Some(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")]))
        ));
        assert!(!matches(&s, None));
    }

    #[test]
    fn invalid_operators_do_not_parse() {
        assert!(
            parse(Some(&ls(
                json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            )))
            .is_none()
        );
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(selects_everything(Some(&ls(json!({})))));
        assert!(!selects_everything(Some(&ls(
            json!({"matchLabels": {"a": "b"}})
        ))));
        assert!(!selects_everything(None));
        let all = parse(Some(&ls(json!({})))).expect("empty");
        assert!(matches(&all, None));
    }
}
