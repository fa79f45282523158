//! The status conditions the namespace controller keeps on a terminating namespace, with
//! Kubernetes' types, reasons and messages, so `kubectl describe namespace` reads the same.

use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::content::Report;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GROUP_VERSION_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types this controller owns, in the order Kubernetes adds them.
pub const OWNED: [&str; 5] = [
    DISCOVERY_FAILURE,
    GROUP_VERSION_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
];

/// A condition as it should be, without its transition time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub type_: &'static str,
    /// `"True"` when something is wrong or left, `"False"` when all is well.
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

fn ok(type_: &'static str) -> Wanted {
    let (reason, message) = match type_ {
        DISCOVERY_FAILURE => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        GROUP_VERSION_PARSING_FAILURE => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        CONTENT_FAILURE => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        CONTENT_REMAINING => ("ContentRemoved", "All content successfully removed"),
        _ => (
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished",
        ),
    };
    Wanted {
        type_,
        status: "False",
        reason,
        message: message.to_string(),
    }
}

fn failing(type_: &'static str, reason: &'static str, message: String) -> Wanted {
    Wanted {
        type_,
        status: "True",
        reason,
        message,
    }
}

/// Sorted as strings, as Kubernetes sorts them, for messages that do not flap.
fn sorted(mut parts: Vec<String>) -> Vec<String> {
    parts.sort();
    parts
}

/// The five owned conditions a deletion pass calls for, in [`OWNED`] order.
pub fn wanted(report: &Report) -> Vec<Wanted> {
    let discovery = match &report.discovery_error {
        Some(m) => failing(DISCOVERY_FAILURE, "DiscoveryFailed", m.clone()),
        None => ok(DISCOVERY_FAILURE),
    };
    let content_failure = if report.content_errors.is_empty() {
        ok(CONTENT_FAILURE)
    } else {
        failing(
            CONTENT_FAILURE,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                report.content_errors.len(),
                sorted(report.content_errors.clone()).join(", ")
            ),
        )
    };
    let resources = sorted(
        report
            .remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect(),
    );
    let remaining = if resources.is_empty() {
        ok(CONTENT_REMAINING)
    } else {
        failing(
            CONTENT_REMAINING,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", resources.join(", ")),
        )
    };
    let finalizers = sorted(
        report
            .finalizers
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect(),
    );
    let finalizers = if finalizers.is_empty() {
        ok(FINALIZERS_REMAINING)
    } else {
        failing(
            FINALIZERS_REMAINING,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                finalizers.join(", ")
            ),
        )
    };
    vec![
        discovery,
        ok(GROUP_VERSION_PARSING_FAILURE),
        content_failure,
        remaining,
        finalizers,
    ]
}

/// Brings `conditions` to `wanted`: adds missing types, rewrites changed ones (moving
/// `lastTransitionTime` only when the status flips) and leaves conditions of other owners
/// alone. Returns whether anything changed, so unchanged passes write nothing.
pub fn apply(conditions: &mut Vec<NamespaceCondition>, wanted: &[Wanted], now: &Time) -> bool {
    let mut changed = false;
    for w in wanted {
        match conditions.iter_mut().find(|c| c.type_ == w.type_) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: w.type_.to_string(),
                    status: w.status.to_string(),
                    reason: Some(w.reason.to_string()),
                    message: Some(w.message.clone()),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
            Some(c) => {
                let same = c.status == w.status
                    && c.reason.as_deref() == Some(w.reason)
                    && c.message.as_deref() == Some(w.message.as_str());
                if same {
                    continue;
                }
                if c.status != w.status {
                    c.last_transition_time = Some(now.clone());
                }
                c.status = w.status.to_string();
                c.reason = Some(w.reason.to_string());
                c.message = Some(w.message.clone());
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use std::collections::BTreeMap;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + s).expect("ts"))
    }

    fn by_type<'a>(w: &'a [Wanted], ty: &str) -> &'a Wanted {
        w.iter().find(|c| c.type_ == ty).expect("condition")
    }

    #[test]
    fn clean_pass_reports_every_owned_condition_false() {
        let w = wanted(&Report::default());
        assert_eq!(
            w.iter().map(|c| c.type_).collect::<Vec<_>>(),
            OWNED.to_vec()
        );
        assert!(w.iter().all(|c| c.status == "False"));
        assert_eq!(
            by_type(&w, FINALIZERS_REMAINING).message,
            "All content-preserving finalizers finished"
        );
        assert_eq!(by_type(&w, CONTENT_REMAINING).reason, "ContentRemoved");
    }

    #[test]
    fn leftovers_and_finalizers_are_described_like_kubernetes() {
        let report = Report {
            remaining: BTreeMap::from([
                ("configmaps.".to_string(), 2),
                ("deployments.apps".to_string(), 1),
                ("secrets.".to_string(), 0),
            ]),
            finalizers: BTreeMap::from([
                ("example.com/hold".to_string(), 1),
                ("a.io/b".to_string(), 2),
            ]),
            ..Report::default()
        };
        let w = wanted(&report);
        let remaining = by_type(&w, CONTENT_REMAINING);
        assert_eq!(
            (remaining.status, remaining.reason),
            ("True", "SomeResourcesRemain")
        );
        assert_eq!(
            remaining.message,
            "Some resources are remaining: configmaps. has 2 resource instances, deployments.apps has 1 resource instances"
        );
        let fin = by_type(&w, FINALIZERS_REMAINING);
        assert_eq!((fin.status, fin.reason), ("True", "SomeFinalizersRemain"));
        assert_eq!(
            fin.message,
            "Some content in the namespace has finalizers remaining: a.io/b in 2 resource instances, example.com/hold in 1 resource instances"
        );
    }

    #[test]
    fn failures_are_counted_and_sorted() {
        let report = Report {
            discovery_error: Some("boom".into()),
            content_errors: vec!["zeta failed".into(), "alpha failed".into()],
            ..Report::default()
        };
        let w = wanted(&report);
        let d = by_type(&w, DISCOVERY_FAILURE);
        assert_eq!(
            (d.status, d.reason, d.message.as_str()),
            ("True", "DiscoveryFailed", "boom")
        );
        let c = by_type(&w, CONTENT_FAILURE);
        assert_eq!(c.reason, "ContentDeletionFailed");
        assert_eq!(
            c.message,
            "Failed to delete all resource types, 2 remaining: alpha failed, zeta failed"
        );
    }

    #[test]
    fn apply_moves_transition_time_only_when_status_flips() {
        let mut conds = vec![NamespaceCondition {
            type_: "SomethingElse".into(),
            status: "True".into(),
            ..NamespaceCondition::default()
        }];
        let first = wanted(&Report::default());
        assert!(apply(&mut conds, &first, &t(0)));
        assert_eq!(conds.len(), 6, "other owners' conditions are kept");
        assert!(
            !apply(&mut conds, &first, &t(5)),
            "same conditions write nothing"
        );

        let report = Report {
            remaining: BTreeMap::from([("configmaps.".to_string(), 1)]),
            ..Report::default()
        };
        assert!(apply(&mut conds, &wanted(&report), &t(10)));
        let c = conds
            .iter()
            .find(|c| c.type_ == CONTENT_REMAINING)
            .expect("c");
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.clone()),
            ("True", Some(t(10)))
        );

        let report = Report {
            remaining: BTreeMap::from([("configmaps.".to_string(), 3)]),
            ..Report::default()
        };
        assert!(apply(&mut conds, &wanted(&report), &t(20)));
        let c = conds
            .iter()
            .find(|c| c.type_ == CONTENT_REMAINING)
            .expect("c");
        assert_eq!(
            c.last_transition_time,
            Some(t(10)),
            "message change keeps the time"
        );
        assert!(
            c.message
                .as_deref()
                .is_some_and(|m| m.contains("has 3 resource"))
        );
    }
}
