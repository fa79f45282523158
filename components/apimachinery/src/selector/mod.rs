//! Label and field selectors, with Kubernetes' syntax, semantics and error texts.
//!
//! Both kinds arrive as query parameters (`labelSelector=`, `fieldSelector=`) from
//! clients we do not control — kubectl, client-go, kube-rs — so the accepted
//! language, the canonical string form and the error wording follow
//! `k8s.io/apimachinery` (`pkg/labels`, `pkg/fields`) closely: a selector that works
//! against a real apiserver must work against ours, and fail the same way.
//!
//! Matching is pure: label selectors take a label map (or a JSON object's
//! `metadata.labels`), field selectors take a lookup function, so the apiserver, the
//! watch cache and the controllers share one implementation without any I/O here.

mod field;
mod label;

pub use field::{
    FieldOperator, FieldRequirement, FieldSelector, escape_value, object_field, unescape_value,
};
pub use label::{LabelSelector, Operator, Requirement};

/// Why a selector was rejected.
///
/// Kept separate from the crate-wide error so selector parsing has no dependency on
/// how the apiserver maps errors to `Status` (selector errors become `400 BadRequest`
/// there). The texts follow Kubernetes' messages where Kubernetes has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector token that does not fit the grammar at that point.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        /// The text of the offending token (empty at the end of the input).
        found: String,
        /// What the grammar allows there, in Kubernetes' wording.
        expected: &'static str,
    },

    /// A single requirement of a label selector could not be parsed or is invalid;
    /// Kubernetes wraps exactly these errors with this prefix.
    #[error("unable to parse requirement: {0}")]
    Requirement(Box<SelectorError>),

    /// A label key that is not a qualified name.
    #[error("invalid label key \"{key}\": {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Every rule it breaks, joined by "; ".
        reason: String,
    },

    /// A label value that is too long or has characters a label value cannot have.
    #[error("invalid label value \"{value}\" for key \"{key}\": {reason}")]
    InvalidValue {
        /// The key the value was given for.
        key: String,
        /// The rejected value.
        value: String,
        /// Every rule it breaks, joined by "; ".
        reason: String,
    },

    /// The number or form of values does not suit the operator (e.g. `in` with none).
    #[error("invalid values for key \"{key}\": {reason}")]
    InvalidValues {
        /// The requirement's key.
        key: String,
        /// Kubernetes' explanation for the operator.
        reason: &'static str,
    },

    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    UnknownOperator(String),

    /// A field selector term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole selector as given.
        selector: String,
        /// The term that has no operator.
        term: String,
    },

    /// A backslash in a field selector value followed by a character that needs no
    /// escaping, or a trailing backslash.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),

    /// A `,` or `=` in a field selector value that should have been escaped.
    #[error("invalid field selector: unescaped character in value: '{0}'")]
    UnescapedCharacter(char),

    /// A field selector names a field the resource cannot be selected by.
    #[error("field label not supported: {0}")]
    FieldNotSupported(String),
}
