//! Label selectors: the `labelSelector=` string language and the structured
//! `metav1.LabelSelector` that workload objects carry, reduced to one matcher.
//!
//! Controllers (structured form) and list/watch filtering (string form) must agree on
//! what matches, so both are converted into the same list of requirements.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use super::SelectorError;

/// How a requirement relates a label's value to its values.
///
/// `Equals` and `DoubleEquals` select the same objects; both are kept so that a
/// selector prints back the way the user wrote it, as Kubernetes does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key`: the label is present, whatever its value.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key!=value`; also true when the label is absent.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`; also true when the label is absent.
    NotIn,
    /// `key>N`: present and numerically greater (integers only).
    GreaterThan,
    /// `key<N`: present and numerically smaller (integers only).
    LessThan,
}

/// One condition of a selector; a selector matches when all of them do.
///
/// Fields are private so that every `Requirement` has passed the same validation
/// as a parsed one, whichever way it was built.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

// Kubernetes' validation messages (v1.33 wording), so that users see the same
// explanation from kadm as from any other apiserver.
const NAME_PART_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
const VALUE_MAX: usize = 63;

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the shape of a key's name part and
/// of a non-empty label value.
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Lowercase RFC 1123 subdomain: dot-separated non-empty labels of `[a-z0-9-]`
/// that start and end alphanumeric (the length limit is checked separately).
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                is_lower_alnum(*first)
                    && is_lower_alnum(*last)
                    && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
            }
            _ => false,
        }
    })
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Every rule a label key breaks; empty when it is a valid qualified name.
fn key_problems(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > SUBDOMAIN_MAX {
                    problems.push(format!(
                        "prefix part must be no more than {SUBDOMAIN_MAX} characters"
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    problems.push(format!("prefix part {SUBDOMAIN_RULE}"));
                }
            }
            *name
        }
        _ => {
            problems.push(format!(
                "a qualified name {NAME_PART_RULE} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else if name.len() > NAME_MAX {
        problems.push(format!(
            "name part must be no more than {NAME_MAX} characters"
        ));
    }
    if !is_label_token(name) {
        problems.push(format!("name part {NAME_PART_RULE}"));
    }
    problems
}

/// Every rule a label value breaks; empty when it is valid (the empty value is).
fn value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > VALUE_MAX {
        problems.push(format!("must be no more than {VALUE_MAX} characters"));
    }
    if !value.is_empty() && !is_label_token(value) {
        problems.push(LABEL_VALUE_RULE.to_string());
    }
    problems
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    let problems = key_problems(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SelectorError::InvalidKey {
            key: key.to_string(),
            reason: problems.join("; "),
        })
    }
}

impl Requirement {
    /// Builds a requirement after the checks Kubernetes applies to every requirement,
    /// however it was written: a qualified-name key, valid label values, and a value
    /// count that suits the operator (Gt/Lt also need an integer).
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        let key = key.into();
        check_key(&key)?;
        let count_problem = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            Operator::GreaterThan | Operator::LessThan
                if values.iter().any(|v| v.parse::<i64>().is_err()) =>
            {
                Some("for 'Gt', 'Lt' operators, the value must be an integer")
            }
            _ => None,
        };
        if let Some(reason) = count_problem {
            return Err(SelectorError::InvalidValues { key, reason });
        }
        for value in &values {
            let problems = value_problems(value);
            if !problems.is_empty() {
                return Err(SelectorError::InvalidValue {
                    key,
                    value: value.clone(),
                    reason: problems.join("; "),
                });
            }
        }
        Ok(Self {
            key,
            operator,
            values,
        })
    }

    /// The label key this requirement looks at.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the label's value is compared.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values in the order they were given (parsing sorts and de-duplicates them).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_lookup(labels.get(&self.key).map(String::as_str))
    }

    /// Decides on the label's value alone (`None` = label absent), so every label
    /// source — typed map, JSON object — shares the same semantics.
    fn matches_lookup(&self, value: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(has),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(has),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(actual), [bound]) = (value, self.values.as_slice()) else {
                    return false;
                };
                match (actual.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(actual), Ok(bound)) => {
                        if self.operator == Operator::GreaterThan {
                            actual > bound
                        } else {
                            actual < bound
                        }
                    }
                    _ => false,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Kubernetes' canonical form: values of `in`/`notin` sorted, no spaces except
    /// around the set operators.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Exists => return f.write_str(&self.key),
            Operator::DoesNotExist => return write!(f, "!{}", self.key),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
        };
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        let joined = values.join(",");
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "{}{op}({joined})", self.key)
        } else {
            write!(f, "{}{op}{joined}", self.key)
        }
    }
}

/// A conjunction of label requirements; the empty selector matches everything.
///
/// Requirements are kept sorted by key so that equal selectors print identically,
/// which makes the string form usable as a cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object (what an empty string parses to).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Combines already-validated requirements.
    pub fn new(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    /// Parses the `labelSelector` string language, e.g.
    /// `app=web,tier in (front,back),!canary,generation>3`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        Parser::new(s).parse().map(Self::new)
    }

    /// Converts the structured selector of Deployments, ReplicaSets, Services' peers
    /// and so on. An empty (but present) selector matches everything, as in Kubernetes;
    /// callers that hold an absent selector decide themselves, since Kubernetes treats
    /// that as matching nothing.
    pub fn from_label_selector(sel: &metav1::LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                key.clone(),
                Operator::Equals,
                vec![value.clone()],
            )?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::UnknownOperator(other.to_string())),
            };
            requirements.push(Requirement::new(
                expr.key.clone(),
                operator,
                expr.values.clone().unwrap_or_default(),
            )?);
        }
        Ok(Self::new(requirements))
    }

    /// A selector requiring exactly these labels — the form of a Service's or
    /// ReplicationController's `spec.selector` map.
    pub fn from_set(labels: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        labels
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector restricts nothing.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches labels straight from an object's JSON `metadata.labels`, so stored
    /// objects can be filtered without deserialising them. A label whose value is not
    /// a string cannot exist on a valid object and is treated as absent.
    pub fn matches_json(
        &self,
        labels: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels
                .and_then(|l| l.get(&r.key))
                .and_then(serde_json::Value::as_str);
            r.matches_lookup(value)
        })
    }

    /// The single value the selector pins `key` to (`=`, `==`, or `in` with one
    /// value), letting storage narrow a scan to an index instead of matching every
    /// object.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
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

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---- lexer and parser ------------------------------------------------------------
//
// The language is tiny but has one context-sensitive twist: `in` and `notin` are
// operators after a key yet ordinary identifiers where a key or value is expected
// (`in in (in)` is valid). Tokens therefore keep their text, and the parser decides
// per position whether a keyword counts as an identifier.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    End,
    Ident,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    In,
    NotIn,
    Open,
    Close,
    Comma,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    text: &'a str,
}

const END: Token<'static> = Token {
    kind: Kind::End,
    text: "",
};

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits the input into tokens; anything that is neither whitespace nor a symbol is
/// part of an identifier, and validation later decides whether it is a good one.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(is_space);
        let Some(first) = rest.chars().next() else {
            tokens.push(END);
            return tokens;
        };
        let len = if is_symbol(first) {
            // The only two-character operators are `!=` and `==`.
            let pair = rest.get(..2);
            if matches!(pair, Some("!=" | "==")) {
                2
            } else {
                1
            }
        } else {
            rest.find(|c: char| is_space(c) || is_symbol(c))
                .unwrap_or(rest.len())
        };
        let (text, tail) = rest.split_at(len);
        let kind = match text {
            "!" => Kind::Not,
            "=" => Kind::Equals,
            "==" => Kind::DoubleEquals,
            "!=" => Kind::NotEquals,
            ">" => Kind::Greater,
            "<" => Kind::Less,
            "(" => Kind::Open,
            ")" => Kind::Close,
            "," => Kind::Comma,
            "in" => Kind::In,
            "notin" => Kind::NotIn,
            _ => Kind::Ident,
        };
        tokens.push(Token { kind, text });
        rest = tail;
    }
}

/// Whether the parser is at a place where `in`/`notin` are operators.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Operator,
    Value,
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
}

fn unexpected(found: &str, expected: &'static str) -> SelectorError {
    SelectorError::Unexpected {
        found: found.to_string(),
        expected,
    }
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            tokens: tokenize(s),
            pos: 0,
        }
    }

    fn peek(&self, ctx: Context) -> Token<'a> {
        let mut t = self.tokens.get(self.pos).copied().unwrap_or(END);
        if ctx == Context::Value && matches!(t.kind, Kind::In | Kind::NotIn) {
            t.kind = Kind::Ident;
        }
        t
    }

    fn next(&mut self, ctx: Context) -> Token<'a> {
        let t = self.peek(ctx);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let t = self.peek(Context::Value);
            match t.kind {
                Kind::End => return Ok(requirements),
                Kind::Ident | Kind::Not => {}
                _ => return Err(unexpected(t.text, "!, identifier, or 'end of string'")),
            }
            let r = self
                .requirement()
                .map_err(|e| SelectorError::Requirement(Box::new(e)))?;
            requirements.push(r);
            let t = self.next(Context::Value);
            match t.kind {
                Kind::End => return Ok(requirements),
                Kind::Comma => {
                    let after = self.peek(Context::Value);
                    if !matches!(after.kind, Kind::Ident | Kind::Not) {
                        return Err(unexpected(after.text, "identifier after ','"));
                    }
                }
                _ => return Err(unexpected(t.text, "',' or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let mut t = self.next(Context::Value);
        let negated = t.kind == Kind::Not;
        if negated {
            t = self.next(Context::Value);
        }
        if t.kind != Kind::Ident {
            return Err(unexpected(t.text, "identifier"));
        }
        let key = t.text;
        check_key(key)?;
        let bare = matches!(self.peek(Context::Value).kind, Kind::End | Kind::Comma);
        if negated {
            // `!key` takes no operator; anything after it is the caller's syntax error.
            return Requirement::new(key, Operator::DoesNotExist, Vec::new());
        }
        if bare {
            return Requirement::new(key, Operator::Exists, Vec::new());
        }
        let op = self.next(Context::Operator);
        let operator = match op.kind {
            Kind::In => Operator::In,
            Kind::NotIn => Operator::NotIn,
            Kind::Equals => Operator::Equals,
            Kind::DoubleEquals => Operator::DoubleEquals,
            Kind::NotEquals => Operator::NotEquals,
            Kind::Greater => Operator::GreaterThan,
            Kind::Less => Operator::LessThan,
            _ => return Err(unexpected(op.text, "in, notin, =, ==, !=, gt, lt")),
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        Requirement::new(key, operator, values)
    }

    /// `( v1, v2, ... )`; empty entries (`()`, `(a,,b)`, `(,a)`) stand for the empty
    /// value. The result is sorted and de-duplicated, as a set.
    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        let open = self.next(Context::Value);
        if open.kind != Kind::Open {
            return Err(unexpected(open.text, "'('"));
        }
        let first = self.peek(Context::Value);
        if !matches!(first.kind, Kind::Ident | Kind::Comma | Kind::Close) {
            return Err(unexpected(first.text, "',', ')' or identifier"));
        }
        let mut values = BTreeSet::new();
        // Whether the next entry still has to be read; starts true so `()` and a
        // leading comma yield the empty value.
        let mut expecting_value = true;
        loop {
            let t = self.next(Context::Value);
            match t.kind {
                Kind::Ident => {
                    values.insert(t.text.to_string());
                    expecting_value = false;
                    let after = self.peek(Context::Value);
                    if !matches!(after.kind, Kind::Comma | Kind::Close) {
                        return Err(unexpected(after.text, "',' or ')'"));
                    }
                }
                Kind::Comma => {
                    if expecting_value {
                        values.insert(String::new());
                    }
                    expecting_value = true;
                }
                Kind::Close => {
                    if expecting_value {
                        values.insert(String::new());
                    }
                    return Ok(values.into_iter().collect());
                }
                _ => return Err(unexpected(t.text, "',', or identifier")),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; nothing (end or comma) means the
    /// empty value, so `tier=` selects objects whose `tier` label is empty.
    fn exact_value(&mut self) -> Result<String, SelectorError> {
        let t = self.peek(Context::Value);
        match t.kind {
            Kind::End | Kind::Comma => Ok(String::new()),
            Kind::Ident => {
                self.pos += 1;
                Ok(t.text.to_string())
            }
            _ => Err(unexpected(t.text, "identifier")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_round_trips_to_canonical_form() {
        let cases = [
            ("", ""),
            ("   ", ""),
            ("a", "a"),
            ("!a", "!a"),
            (" ! a ", "!a"),
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            ("a=", "a="),
            ("a in (b,c)", "a in (b,c)"),
            ("a in (c,b,c)", "a in (b,c)"),
            ("a notin (b)", "a notin (b)"),
            ("a in ()", "a in ()"),
            ("a in (b,,c)", "a in (,b,c)"),
            ("a in (,b)", "a in (,b)"),
            ("a in (b,)", "a in (,b)"),
            ("a>5", "a>5"),
            ("a > 5", "a>5"),
            ("  x  in  ( foo , bar )  ,  y  ", "x in (bar,foo),y"),
            ("z=1,a=2,m", "a=2,m,z=1"),
            ("\ta=b,\nc!=d\r", "a=b,c!=d"),
            ("example.com/app=web", "example.com/app=web"),
            ("in in (in,notin)", "in in (in,notin)"),
            ("notin=in", "notin=in"),
            ("a=b,a!=c", "a=b,a!=c"),
        ];
        for (input, canonical) in cases {
            let sel =
                LabelSelector::parse(input).unwrap_or_else(|e| panic!("parse {input:?}: {e}"));
            assert_eq!(sel.to_string(), canonical, "input {input:?}");
            let again = LabelSelector::parse(canonical).expect("canonical form parses");
            assert_eq!(again, sel, "round trip of {input:?}");
        }
    }

    #[test]
    fn parse_yields_operators() {
        let cases = [
            ("a", Operator::Exists, vec![]),
            ("!a", Operator::DoesNotExist, vec![]),
            ("a=b", Operator::Equals, vec!["b"]),
            ("a==b", Operator::DoubleEquals, vec!["b"]),
            ("a!=b", Operator::NotEquals, vec!["b"]),
            ("a in (c,b)", Operator::In, vec!["b", "c"]),
            ("a notin (b)", Operator::NotIn, vec!["b"]),
            ("a>1", Operator::GreaterThan, vec!["1"]),
            ("a<1", Operator::LessThan, vec!["1"]),
        ];
        for (input, op, values) in cases {
            let sel = LabelSelector::parse(input).expect("valid");
            let [r] = sel.requirements() else {
                panic!("one requirement expected for {input:?}");
            };
            assert_eq!(r.key(), "a");
            assert_eq!(r.operator(), op, "{input:?}");
            assert_eq!(r.values(), values.as_slice(), "{input:?}");
        }
    }

    #[test]
    fn parse_errors_match_kubernetes_wording() {
        let cases = [
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "=b",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            (
                "a in b",
                "unable to parse requirement: found 'b', expected: '('",
            ),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (b,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a==(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
            (
                "! =a",
                "unable to parse requirement: found '=', expected: identifier",
            ),
            ("a in ()x", "found 'x', expected: ',' or 'end of string'"),
        ];
        for (input, message) in cases {
            let err = LabelSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), message, "input {input:?}");
        }
    }

    #[test]
    fn parse_rejects_invalid_keys_and_values() {
        let long = "v".repeat(64);
        let long_value = format!("a={long}");
        let long_name = format!("{long}=x");
        let cases: Vec<(&str, &str)> = vec![
            (
                "a$b=c",
                "invalid label key \"a$b\": name part must consist of",
            ),
            ("-a", "invalid label key \"-a\": name part must consist of"),
            (
                "/a",
                "invalid label key \"/a\": prefix part must be non-empty",
            ),
            (
                "Example.com/a",
                "invalid label key \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain",
            ),
            (
                "a/",
                "invalid label key \"a/\": name part must be non-empty; name part must consist of",
            ),
            (
                "a/b/c",
                "invalid label key \"a/b/c\": a qualified name must consist of",
            ),
            (&long_name, "name part must be no more than 63 characters"),
            (&long_value, "must be no more than 63 characters"),
            (
                "a=b$",
                "invalid label value \"b$\" for key \"a\": a valid label must be an empty string",
            ),
            ("a in (x,-y)", "invalid label value \"-y\" for key \"a\""),
            ("a<-5", "invalid label value \"-5\" for key \"a\""),
            (
                "a>b",
                "invalid values for key \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "a<",
                "invalid values for key \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (input, fragment) in cases {
            let err = LabelSelector::parse(input).expect_err(input).to_string();
            assert!(
                err.starts_with("unable to parse requirement: "),
                "{input:?}: {err}"
            );
            assert!(err.contains(fragment), "{input:?}: {err}");
        }
        let ok_value = format!("a={}", "v".repeat(63));
        assert!(LabelSelector::parse(&ok_value).is_ok());
        let ok_prefix = format!("{}/a", "p".repeat(253));
        assert!(LabelSelector::parse(&ok_prefix).is_ok());
        let long_prefix = format!("{}/a", "p".repeat(254));
        let err = LabelSelector::parse(&long_prefix).expect_err("prefix too long");
        assert!(
            err.to_string()
                .contains("prefix part must be no more than 253 characters")
        );
    }

    #[test]
    fn matching_semantics() {
        let pod = labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("gen", "7"),
            ("odd", "x"),
        ]);
        let empty = labels(&[]);
        // (selector, matches pod, matches a label-less object)
        let cases = [
            ("", true, true),
            ("app", true, false),
            ("!app", false, true),
            ("!missing", true, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app=db", false, false),
            ("app!=db", true, true),
            ("app!=web", false, true),
            ("missing!=x", true, true),
            ("app in (web,db)", true, false),
            ("app in (db)", false, false),
            ("app notin (db)", true, true),
            ("app notin (web)", false, true),
            ("missing notin (a)", true, true),
            ("missing in (a)", false, false),
            ("missing=", false, false),
            ("gen>5", true, false),
            ("gen>7", false, false),
            ("gen<8", true, false),
            ("gen<1", false, false),
            ("odd>1", false, false),
            ("odd<1", false, false),
            ("missing>1", false, false),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            ("app=web,!canary,gen>6", true, false),
        ];
        for (input, on_pod, on_empty) in cases {
            let sel = LabelSelector::parse(input).expect("valid");
            assert_eq!(sel.matches(&pod), on_pod, "{input:?} on pod");
            assert_eq!(sel.matches(&empty), on_empty, "{input:?} on empty");
        }
    }

    #[test]
    fn matches_json_treats_non_strings_as_absent() {
        let obj = json!({"app": "web", "n": 3, "flag": true});
        let map = obj.as_object();
        let cases = [
            ("app=web", true),
            ("n", false),
            ("!n", true),
            ("n!=3", true),
            ("flag=true", false),
            ("!flag", true),
            ("", true),
        ];
        for (input, expected) in cases {
            let sel = LabelSelector::parse(input).expect("valid");
            assert_eq!(sel.matches_json(map), expected, "{input:?}");
        }
        let sel = LabelSelector::parse("a!=b,!c").expect("valid");
        assert!(sel.matches_json(None));
        assert!(!LabelSelector::parse("a").expect("valid").matches_json(None));
    }

    fn structured(
        match_labels: &[(&str, &str)],
        exprs: &[(&str, &str, Option<&[&str]>)],
    ) -> metav1::LabelSelector {
        metav1::LabelSelector {
            match_labels: if match_labels.is_empty() {
                None
            } else {
                Some(labels(match_labels))
            },
            match_expressions: if exprs.is_empty() {
                None
            } else {
                Some(
                    exprs
                        .iter()
                        .map(|(k, op, vals)| metav1::LabelSelectorRequirement {
                            key: k.to_string(),
                            operator: op.to_string(),
                            values: vals.map(|v| v.iter().map(|s| s.to_string()).collect()),
                        })
                        .collect(),
                )
            },
        }
    }

    #[test]
    fn structured_selector_conversion() {
        let cases: Vec<(metav1::LabelSelector, &str)> = vec![
            (structured(&[], &[]), ""),
            (
                metav1::LabelSelector {
                    match_labels: Some(BTreeMap::new()),
                    match_expressions: Some(Vec::new()),
                },
                "",
            ),
            (structured(&[("app", "web")], &[]), "app=web"),
            (
                structured(
                    &[("app", "web")],
                    &[
                        ("tier", "In", Some(&["front", "back"])),
                        ("env", "NotIn", Some(&["prod"])),
                        ("canary", "DoesNotExist", None),
                        ("owner", "Exists", Some(&[])),
                    ],
                ),
                "app=web,!canary,env notin (prod),owner,tier in (back,front)",
            ),
        ];
        for (sel, canonical) in cases {
            let converted = LabelSelector::from_label_selector(&sel).expect("valid");
            assert_eq!(converted.to_string(), canonical);
            assert_eq!(converted.is_empty(), canonical.is_empty());
        }
        let sel = LabelSelector::from_label_selector(&structured(
            &[("app", "web")],
            &[
                ("tier", "In", Some(&["front"])),
                ("canary", "DoesNotExist", None),
            ],
        ))
        .expect("valid");
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "back")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("canary", "1")
        ])));
        let everything = LabelSelector::from_label_selector(&structured(&[], &[])).expect("valid");
        assert!(everything.matches(&labels(&[])));
        assert!(everything.matches(&labels(&[("x", "y")])));
    }

    #[test]
    fn structured_selector_errors() {
        let cases: Vec<(metav1::LabelSelector, &str)> = vec![
            (
                structured(&[], &[("a", "In", None)]),
                "invalid values for key \"a\": for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                structured(&[], &[("a", "NotIn", Some(&[]))]),
                "invalid values for key \"a\": for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                structured(&[], &[("a", "Exists", Some(&["x"]))]),
                "invalid values for key \"a\": values set must be empty for exists and does not exist",
            ),
            (
                structured(&[], &[("a", "DoesNotExist", Some(&["x"]))]),
                "invalid values for key \"a\": values set must be empty for exists and does not exist",
            ),
            (
                structured(&[], &[("a", "Gt", Some(&["1"]))]),
                "\"Gt\" is not a valid label selector operator",
            ),
            (
                structured(&[], &[("a", "in", Some(&["x"]))]),
                "\"in\" is not a valid label selector operator",
            ),
            (
                structured(&[("bad key", "x")], &[]),
                "invalid label key \"bad key\"",
            ),
            (
                structured(&[("k", "bad value")], &[]),
                "invalid label value \"bad value\" for key \"k\"",
            ),
        ];
        for (sel, fragment) in cases {
            let err = LabelSelector::from_label_selector(&sel).expect_err(fragment);
            assert!(err.to_string().starts_with(fragment), "{err}");
        }
    }

    #[test]
    fn from_set_and_exact_match() {
        let sel = LabelSelector::from_set(&labels(&[("b", "2"), ("a", "1")])).expect("valid");
        assert_eq!(sel.to_string(), "a=1,b=2");
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(LabelSelector::from_set(&labels(&[("a", "x y")])).is_err());
        assert!(
            LabelSelector::from_set(&labels(&[]))
                .expect("valid")
                .is_empty()
        );

        let sel = LabelSelector::parse("a=1,b in (2),c in (3,4),d!=5,e").expect("valid");
        assert_eq!(sel.requires_exact_match("a"), Some("1"));
        assert_eq!(sel.requires_exact_match("b"), Some("2"));
        assert_eq!(sel.requires_exact_match("c"), None);
        assert_eq!(sel.requires_exact_match("d"), None);
        assert_eq!(sel.requires_exact_match("e"), None);
        assert_eq!(sel.requires_exact_match("z"), None);
    }

    #[test]
    fn requirement_new_validates_counts() {
        let cases = [
            (Operator::Equals, vec![], false),
            (Operator::Equals, vec!["a", "b"], false),
            (Operator::Equals, vec![""], true),
            (Operator::In, vec![], false),
            (Operator::In, vec![""], true),
            (Operator::Exists, vec![], true),
            (Operator::Exists, vec!["a"], false),
            (Operator::GreaterThan, vec!["1", "2"], false),
            (Operator::LessThan, vec!["x"], false),
            (Operator::LessThan, vec!["10"], true),
        ];
        for (op, values, ok) in cases {
            let values: Vec<String> = values.into_iter().map(String::from).collect();
            assert_eq!(
                Requirement::new("k", op, values.clone()).is_ok(),
                ok,
                "{op:?} {values:?}"
            );
        }
        let r =
            Requirement::new("k", Operator::NotIn, vec!["b".into(), "a".into()]).expect("valid");
        assert_eq!(r.values(), ["b", "a"]);
        assert_eq!(r.to_string(), "k notin (a,b)");
        assert_eq!(
            "k=v".parse::<LabelSelector>().map(|s| s.to_string()),
            Ok("k=v".to_string())
        );
    }
}
