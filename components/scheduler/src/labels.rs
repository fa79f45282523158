//! Label selectors as the scheduler evaluates them: compiled once per pod from a
//! `metav1.LabelSelector`, then matched against many pods' labels.
//!
//! Kubernetes' conversion rules carry over: a missing selector matches nothing, an empty
//! one (`{}`) matches everything, and an invalid one (unknown operator, `In` without values)
//! matches nothing.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Labels of a pod, node or namespace.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
    /// Sorted, for a binary search.
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        match self.op {
            Op::In => labels
                .get(&self.key)
                .is_some_and(|v| self.values.binary_search(v).is_ok()),
            Op::NotIn => labels
                .get(&self.key)
                .is_none_or(|v| self.values.binary_search(v).is_err()),
            Op::Exists => labels.contains_key(&self.key),
            Op::DoesNotExist => !labels.contains_key(&self.key),
        }
    }
}

/// A compiled label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    /// Matches nothing (a nil or invalid selector).
    nothing: bool,
}

impl Selector {
    /// Matches every label set (`{}`).
    pub fn everything() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: false,
        }
    }

    /// Matches no label set (a nil selector).
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// `metav1.LabelSelectorAsSelector`: `None` matches nothing.
    pub fn from_optional(selector: Option<&LabelSelector>) -> Self {
        match selector {
            None => Self::nothing(),
            Some(s) => Self::from_label_selector(s),
        }
    }

    /// Compiles `matchLabels` and `matchExpressions` (ANDed); invalid → matches nothing.
    pub fn from_label_selector(selector: &LabelSelector) -> Self {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in selector.match_expressions.iter().flatten() {
            let mut values = e.values.clone().unwrap_or_default();
            values.sort();
            values.dedup();
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                _ => return Self::nothing(),
            };
            let needs_values = matches!(op, Op::In | Op::NotIn);
            if needs_values == values.is_empty() {
                return Self::nothing();
            }
            requirements.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        Self {
            requirements,
            nothing: false,
        }
    }

    /// Adds `key in (value)` (matchLabelKeys, default selectors).
    pub fn add_equals(&mut self, key: &str, value: &str) {
        self.requirements.push(Requirement {
            key: key.to_string(),
            op: Op::In,
            values: vec![value.to_string()],
        });
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// `labels.Selector.Empty()`: no requirements (matches everything); a nothing-selector
    /// is not empty.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Matches no label set at all.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(v: serde_json::Value) -> Selector {
        Selector::from_label_selector(&serde_json::from_value(v).expect("selector"))
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = sel(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                  {"key": "canary", "operator": "DoesNotExist"}]}));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "b")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(!s.matches(&labels(&[("tier", "a")])));
    }

    #[test]
    fn not_in_matches_missing_keys() {
        let s = sel(
            json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}),
        );
        assert!(s.matches(&labels(&[])));
        assert!(s.matches(&labels(&[("zone", "z2")])));
        assert!(!s.matches(&labels(&[("zone", "z1")])));
        let e = sel(json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}));
        assert!(e.matches(&labels(&[("zone", "")])));
        assert!(!e.matches(&labels(&[])));
    }

    #[test]
    fn nil_matches_nothing_empty_matches_everything_invalid_nothing() {
        assert!(!Selector::from_optional(None).matches(&labels(&[])));
        assert!(!Selector::from_optional(None).is_empty());
        let empty = sel(json!({}));
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(&[("a", "b")])));
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}))
                .is_nothing()
        );
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}))
                .is_nothing()
        );
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}))
                .is_nothing()
        );
    }
}
