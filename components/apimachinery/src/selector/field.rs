//! Field selectors: `fieldSelector=metadata.name=foo,spec.nodeName!=`.
//!
//! Unlike labels, fields are not a map on the object: each resource supports a short
//! list of fields (pods: `spec.nodeName`, `status.phase`, …), so parsing is generic
//! and the caller says which fields exist ([`FieldSelector::check_supported`]) and how
//! to read them ([`FieldSelector::matches`], usually via [`object_field`]).

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::SelectorError;

/// The two comparisons a field selector term can make (`==` is read as `=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field<op>value` term, with the value already unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The dotted field path, e.g. `spec.nodeName`.
    pub field: String,
    /// How the field's value is compared.
    pub operator: FieldOperator,
    /// The value to compare with; may be empty.
    pub value: String,
}

impl FieldRequirement {
    /// Compares against the field's current value. An unknown value counts as the
    /// empty string, because Kubernetes' field sets hold every supported field and
    /// unset ones as `""` — that is what makes `spec.nodeName=` find pending pods.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A conjunction of field terms; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object (what an empty string parses to).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The one-term selector components build for their own watches, such as a
    /// kubelet's `spec.nodeName=<node>`.
    pub fn equals(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            requirements: vec![FieldRequirement {
                field: field.into(),
                operator: FieldOperator::Equals,
                value: value.into(),
            }],
        }
    }

    /// Parses comma-separated `field=value`, `field==value`, `field!=value` terms.
    ///
    /// Values may contain `\,`, `\=` and `\\` escapes (as Kubernetes' `EscapeValue`
    /// produces); `\!` is accepted too, for clients that escape it, though Kubernetes
    /// itself neither needs nor emits it. Field names are taken literally up to the
    /// first operator. Terms are ordered by their text, as Kubernetes orders them, so
    /// equal selectors print identically.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: s.to_string(),
                    term: term.to_string(),
                });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(Self { requirements })
    }

    /// The terms, in canonical order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every term holds; `get` reads a field of the candidate object, and
    /// `None` is compared as the empty string (see [`FieldRequirement::matches`]).
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref()))
    }

    /// [`matches`](Self::matches) with fields read from the object's JSON by
    /// [`object_field`].
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(|field| object_field(obj, field))
    }

    /// Rejects fields the resource cannot be selected by, so a typo fails loudly
    /// instead of silently comparing against the empty string. Kubernetes adds
    /// `metadata.name` and `metadata.namespace` for every resource; callers include
    /// them in `supported`.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::FieldNotSupported(r.field.clone())),
            None => Ok(()),
        }
    }

    /// The value an `=` term pins `field` to, letting storage use an index (e.g. by
    /// `metadata.name` or `spec.nodeName`) instead of scanning.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Splits at commas that are not escaped; the pieces keep their escapes.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator. At each position `!=` is tried before `==`
/// and `=`, so `a!=b` is a negation and `a==b` is not `a` = `=b`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        let (operator, len) = if rest.starts_with("!=") {
            (FieldOperator::NotEquals, 2)
        } else if rest.starts_with("==") {
            (FieldOperator::Equals, 2)
        } else if rest.starts_with('=') {
            (FieldOperator::Equals, 1)
        } else {
            return None;
        };
        Some((&term[..i], operator, &rest[len..]))
    })
}

/// Escapes a value for use in a field selector string, so values containing `,` or
/// `=` (an event's `involvedObject.name` can) survive the round trip.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reverses [`escape_value`]; an unescaped `,` or `=`, or a backslash before any
/// other character, is an error, since it would make the selector ambiguous.
pub fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=' | '!')) => out.push(e),
                Some(other) => return Err(SelectorError::InvalidEscape(format!("\\{other}"))),
                None => return Err(SelectorError::InvalidEscape("\\".to_string())),
            },
            ',' | '=' => return Err(SelectorError::UnescapedCharacter(c)),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Reads a dotted field path (`spec.nodeName`, `involvedObject.kind`, `status.phase`)
/// from an object's JSON as the string a field selector compares with.
///
/// Booleans become `true`/`false` and numbers their decimal form. A missing or null
/// field reads as `""`, matching Kubernetes where unset fields select as empty (the
/// scheduler finds unscheduled pods with `spec.nodeName=`). `None` means the path
/// cannot exist on this object: it runs through a non-object, or ends at an array or
/// object, which no field selector can compare.
pub fn object_field(obj: &Value, field: &str) -> Option<String> {
    let mut current = obj;
    for segment in field.split('.') {
        match current {
            Value::Object(map) => match map.get(segment) {
                Some(next) => current = next,
                None => return Some(String::new()),
            },
            Value::Null => return Some(String::new()),
            _ => return None,
        }
    }
    match current {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(field: &str, operator: FieldOperator, value: &str) -> FieldRequirement {
        FieldRequirement {
            field: field.to_string(),
            operator,
            value: value.to_string(),
        }
    }

    #[test]
    fn parse_terms_and_canonical_form() {
        use FieldOperator::{Equals, NotEquals};
        let cases = [
            ("", vec![], ""),
            (",", vec![], ""),
            (
                "metadata.name=foo",
                vec![req("metadata.name", Equals, "foo")],
                "metadata.name=foo",
            ),
            (
                "metadata.name==foo",
                vec![req("metadata.name", Equals, "foo")],
                "metadata.name=foo",
            ),
            (
                "status.phase!=Running",
                vec![req("status.phase", NotEquals, "Running")],
                "status.phase!=Running",
            ),
            (
                "spec.nodeName=",
                vec![req("spec.nodeName", Equals, "")],
                "spec.nodeName=",
            ),
            (
                "spec.nodeName!=",
                vec![req("spec.nodeName", NotEquals, "")],
                "spec.nodeName!=",
            ),
            (
                "spec.nodeName=n1,metadata.namespace=default",
                vec![
                    req("metadata.namespace", Equals, "default"),
                    req("spec.nodeName", Equals, "n1"),
                ],
                "metadata.namespace=default,spec.nodeName=n1",
            ),
            (
                "a=b,,c=d",
                vec![req("a", Equals, "b"), req("c", Equals, "d")],
                "a=b,c=d",
            ),
            (
                "metadata.name=a\\,b",
                vec![req("metadata.name", Equals, "a,b")],
                "metadata.name=a\\,b",
            ),
            ("a=b\\=c", vec![req("a", Equals, "b=c")], "a=b\\=c"),
            ("a=b\\\\c", vec![req("a", Equals, "b\\c")], "a=b\\\\c"),
            ("a=b\\!c", vec![req("a", Equals, "b!c")], "a=b!c"),
            ("a=!b", vec![req("a", Equals, "!b")], "a=!b"),
            ("a=b!c", vec![req("a", Equals, "b!c")], "a=b!c"),
            ("=x", vec![req("", Equals, "x")], "=x"),
        ];
        for (input, expected, canonical) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.requirements(), expected.as_slice(), "{input:?}");
            assert_eq!(sel.to_string(), canonical, "{input:?}");
            assert_eq!(sel.is_empty(), expected.is_empty());
            let again: FieldSelector = canonical.parse().expect("canonical form parses");
            assert_eq!(again, sel, "round trip of {input:?}");
        }
    }

    #[test]
    fn parse_errors_match_kubernetes_wording() {
        let cases = [
            ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: '='",
            ),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
        ];
        for (input, message) in cases {
            let err = FieldSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), message, "{input:?}");
        }
    }

    #[test]
    fn escape_round_trip() {
        for value in ["", "plain", "a,b", "a=b", "a\\b", "\\,=!", "ünï,cødé"] {
            let escaped = escape_value(value);
            assert_eq!(unescape_value(&escaped).as_deref(), Ok(value), "{value:?}");
            let sel = FieldSelector::equals("metadata.name", value);
            let parsed = FieldSelector::parse(&sel.to_string()).expect("escaped value parses");
            assert_eq!(parsed, sel, "{value:?}");
        }
        assert_eq!(escape_value("a,b=c\\d"), "a\\,b\\=c\\\\d");
    }

    #[test]
    fn matches_pods_by_field() {
        let pending = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"schedulerName": "default-scheduler"},
            "status": {"phase": "Pending"}
        });
        let running = json!({
            "metadata": {"name": "web-2", "namespace": "default"},
            "spec": {"nodeName": "n1", "schedulerName": "default-scheduler"},
            "status": {"phase": "Running"}
        });
        let no_spec = json!({"metadata": {"name": "bare"}});
        // (selector, pending, running, no_spec)
        let cases = [
            ("", true, true, true),
            ("spec.nodeName=", true, false, true),
            ("spec.nodeName!=", false, true, false),
            ("spec.nodeName=n1", false, true, false),
            ("spec.nodeName!=n1", true, false, true),
            ("status.phase=Running", false, true, false),
            (
                "status.phase!=Succeeded,status.phase!=Failed",
                true,
                true,
                true,
            ),
            (
                "spec.schedulerName=default-scheduler,spec.nodeName=",
                true,
                false,
                false,
            ),
            (
                "metadata.name=web-1,metadata.namespace=default",
                true,
                false,
                false,
            ),
            ("metadata.namespace=", false, false, true),
        ];
        for (input, on_pending, on_running, on_bare) in cases {
            let sel = FieldSelector::parse(input).expect("valid");
            assert_eq!(
                sel.matches_object(&pending),
                on_pending,
                "{input:?} pending"
            );
            assert_eq!(
                sel.matches_object(&running),
                on_running,
                "{input:?} running"
            );
            assert_eq!(sel.matches_object(&no_spec), on_bare, "{input:?} bare");
        }
    }

    #[test]
    fn matches_with_caller_lookup() {
        let sel = FieldSelector::parse("spec.unschedulable!=true,metadata.name=n1").expect("valid");
        assert!(sel.matches(|f| (f == "metadata.name").then(|| "n1".to_string())));
        assert!(
            !sel.matches(|f| Some(if f == "metadata.name" { "n1" } else { "true" }.to_string()))
        );
        assert!(!sel.matches(|_| None));
    }

    #[test]
    fn object_field_paths() {
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default", "labels": null},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u-1"},
            "reason": "FailedScheduling",
            "type": "Warning",
            "source": {"component": "default-scheduler"},
            "count": 3,
            "ratio": 1.5,
            "spec": {"unschedulable": true, "taints": [], "paused": false}
        });
        let cases: [(&str, Option<&str>); 18] = [
            ("metadata.name", Some("e1")),
            ("metadata.namespace", Some("default")),
            ("involvedObject.kind", Some("Pod")),
            ("involvedObject.name", Some("web-1")),
            ("involvedObject.namespace", Some("default")),
            ("involvedObject.uid", Some("u-1")),
            ("reason", Some("FailedScheduling")),
            ("type", Some("Warning")),
            ("count", Some("3")),
            ("ratio", Some("1.5")),
            ("spec.unschedulable", Some("true")),
            ("spec.paused", Some("false")),
            ("spec.nodeName", Some("")),
            ("status.phase", Some("")),
            ("metadata.labels.app", Some("")),
            ("source", None),
            ("spec.taints", None),
            ("reason.extra", None),
        ];
        for (field, expected) in cases {
            assert_eq!(object_field(&event, field).as_deref(), expected, "{field}");
        }
        assert_eq!(object_field(&json!("scalar"), "a"), None);
    }

    #[test]
    fn check_supported_names_the_field() {
        let supported = [
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "status.phase",
        ];
        let ok = FieldSelector::parse("spec.nodeName=,metadata.name=x").expect("valid");
        assert_eq!(ok.check_supported(&supported), Ok(()));
        assert_eq!(FieldSelector::everything().check_supported(&[]), Ok(()));
        let bad = FieldSelector::parse("metadata.name=x,spec.host=y").expect("valid");
        let err = bad
            .check_supported(&supported)
            .expect_err("spec.host is unsupported");
        assert_eq!(err.to_string(), "field label not supported: spec.host");
    }

    #[test]
    fn exact_match_lookup() {
        let sel = FieldSelector::parse("metadata.name=a,spec.nodeName!=n1").expect("valid");
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("a"));
        assert_eq!(sel.requires_exact_match("spec.nodeName"), None);
        assert_eq!(sel.requires_exact_match("status.phase"), None);
    }
}
