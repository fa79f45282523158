//! What one StatefulSet sync does, decided without I/O (Kubernetes' `updateStatefulSet`).
//!
//! Ordinals `[start, start+replicas)` are the replicas; pods beyond are *condemned*.
//!
//! ```text
//!  replicas, lowest ordinal first:
//!    failed/succeeded pod   → delete it (recreated once gone)
//!    missing pod            → create it (from the current revision below the partition,
//!                             else from the update revision)
//!    OrderedReady: stop at the first step taken, and at any pod that is terminating,
//!                  not Running+Ready, or not available yet
//!  condemned, highest ordinal first:
//!    OrderedReady: wait for terminating pods; delete one (an unhealthy one only if it is
//!                  the set's first unhealthy pod), then stop
//!    Parallel:     delete them all
//!  RollingUpdate, highest ordinal down to the partition:
//!    delete the first pod not at the update revision (it is recreated at the update
//!    revision), and wait while a pod is unhealthy — or, with maxUnavailable, delete up to
//!    maxUnavailable − unavailable old pods at once
//!  OnDelete: nothing; pods change revision when someone deletes them
//! ```

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::history::REVISION_LABEL;
use crate::workload::pods::{
    PHASE_FAILED, PHASE_RUNNING, PHASE_SUCCEEDED, is_available, is_ready, phase,
};

/// Which revision a new pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rev {
    Current,
    Update,
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// It failed or succeeded; it is recreated once gone.
    Finished,
    /// Its ordinal is beyond the replicas.
    Condemned,
    /// It runs an old revision.
    Update,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create {
        ordinal: i32,
        rev: Rev,
    },
    Delete {
        ordinal: i32,
        name: String,
        why: Why,
    },
}

/// The StatefulSet as the planner sees it.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The set's pods with their ordinals.
    pub pods: Vec<(i32, &'a Pod)>,
    pub start: i32,
    pub replicas: i32,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// `updateStrategy.type: RollingUpdate` (else OnDelete).
    pub rolling: bool,
    /// Ordinals below it keep the current revision.
    pub partition: i32,
    /// `rollingUpdate.maxUnavailable`, scaled (at least 1), when set.
    pub max_unavailable: Option<i32>,
    pub min_ready_seconds: i32,
    pub now: Timestamp,
    pub update_revision: &'a str,
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `isRunningAndReady`.
pub fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == PHASE_RUNNING && is_ready(pod)
}

fn revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map(String::as_str)
}

impl Input<'_> {
    fn available(&self, pod: &Pod) -> bool {
        running_and_ready(pod) && is_available(pod, self.min_ready_seconds, self.now)
    }

    /// `isHealthy`: running, ready and not being deleted.
    fn healthy(&self, pod: &Pod) -> bool {
        running_and_ready(pod) && !terminating(pod)
    }

    fn end(&self) -> i32 {
        self.start + self.replicas.max(0)
    }

    fn in_range(&self, ordinal: i32) -> bool {
        ordinal >= self.start && ordinal < self.end()
    }

    /// `newVersionedStatefulSetPod`: below the partition of a rolling update, the current
    /// revision; everything else, the update revision.
    fn rev_for(&self, ordinal: i32) -> Rev {
        if self.rolling && ordinal < self.partition {
            Rev::Current
        } else {
            Rev::Update
        }
    }
}

/// The steps of one sync, in order.
pub fn plan(input: &Input<'_>) -> Vec<Step> {
    let monotonic = !input.parallel;
    let mut steps = Vec::new();
    let replica = |ordinal: i32| {
        input
            .pods
            .iter()
            .find(|(o, _)| *o == ordinal)
            .map(|(_, p)| *p)
    };
    let mut condemned: Vec<(i32, &Pod)> = input
        .pods
        .iter()
        .filter(|(o, _)| !input.in_range(*o))
        .copied()
        .collect();
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    // The first unhealthy pod: among the replicas (a missing one counts), lowest first, else
    // among the condemned, lowest first.
    let first_unhealthy = (input.start..input.end())
        .find(|o| replica(*o).is_none_or(|p| !input.healthy(p)))
        .or_else(|| {
            condemned
                .iter()
                .rev()
                .find(|(_, p)| !input.healthy(p))
                .map(|(o, _)| *o)
        });

    for ordinal in input.start..input.end() {
        match replica(ordinal) {
            Some(pod) if matches!(phase(pod), PHASE_FAILED | PHASE_SUCCEEDED) => {
                if !terminating(pod) {
                    steps.push(Step::Delete {
                        ordinal,
                        name: name(pod),
                        why: Why::Finished,
                    });
                }
                if monotonic {
                    return steps;
                }
            }
            None => {
                steps.push(Step::Create {
                    ordinal,
                    rev: input.rev_for(ordinal),
                });
                if monotonic {
                    return steps;
                }
            }
            Some(pod) => {
                if monotonic && (terminating(pod) || !input.available(pod)) {
                    return steps;
                }
            }
        }
    }

    for (ordinal, pod) in &condemned {
        if terminating(pod) {
            if monotonic {
                return steps;
            }
            continue;
        }
        if monotonic && !input.available(pod) && first_unhealthy != Some(*ordinal) {
            return steps;
        }
        steps.push(Step::Delete {
            ordinal: *ordinal,
            name: name(pod),
            why: Why::Condemned,
        });
        if monotonic {
            return steps;
        }
    }

    if !input.rolling {
        return steps;
    }
    let update_min = input.partition.max(input.start);
    let old = |p: &Pod| revision(p) != Some(input.update_revision) && !terminating(p);
    if let Some(max_unavailable) = input.max_unavailable {
        let unavailable = (input.start..input.end())
            .filter(|o| {
                steps
                    .iter()
                    .any(|s| matches!(s, Step::Create { ordinal, .. } if ordinal == o))
                    || replica(*o).is_none_or(|p| !input.healthy(p) || !input.available(p))
            })
            .count();
        let room = usize::try_from(max_unavailable.max(1))
            .unwrap_or(1)
            .saturating_sub(unavailable);
        let mut deleted = 0;
        for ordinal in (update_min..input.end()).rev() {
            if deleted >= room {
                break;
            }
            if let Some(pod) = replica(ordinal).filter(|p| old(p)) {
                steps.push(Step::Delete {
                    ordinal,
                    name: name(pod),
                    why: Why::Update,
                });
                deleted += 1;
            }
        }
        return steps;
    }
    for ordinal in (update_min..input.end()).rev() {
        // Created in this sync (Parallel): it is at the update revision, and not healthy yet.
        let Some(pod) = replica(ordinal) else {
            return steps;
        };
        if old(pod) {
            steps.push(Step::Delete {
                ordinal,
                name: name(pod),
                why: Why::Update,
            });
            return steps;
        }
        if !input.healthy(pod) {
            return steps;
        }
    }
    steps
}

/// The status counts of a StatefulSet (`updateStatus`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
}

/// Counts over every pod of the set, condemned ones included.
pub fn status(
    pods: &[&Pod],
    current_revision: &str,
    update_revision: &str,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Counts {
    let mut c = Counts::default();
    for pod in pods {
        if phase(pod).is_empty() {
            continue;
        }
        c.replicas += 1;
        if running_and_ready(pod) {
            c.ready += 1;
            if is_available(pod, min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if !terminating(pod) {
            let rev = revision(pod);
            if rev == Some(current_revision) {
                c.current += 1;
            }
            if rev == Some(update_revision) {
                c.updated += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests;
