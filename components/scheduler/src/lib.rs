//! kadm-scheduler: places pending pods on nodes with Kubernetes' default plugins, one pod at
//! a time from a priority queue, binding through `pods/binding`.
//!
//! ```text
//!  watchers (pods, nodes, namespaces, priorityclasses)
//!     │ bound pods, nodes            │ pending pods, cluster events
//!     ▼                              ▼
//!   cache ◄── assume ── scheduling thread ◄── pop ── queue
//!     ▲                    │  filter (parallel) → score → select
//!     └── forget on error ─┴─► binder (async, bounded) ─► pods/binding, Scheduled event
//!                          └─► on failure: preemption, PodScheduled=False, FailedScheduling
//! ```

pub mod binder;
pub mod cache;
pub mod error;
pub mod events;
pub mod framework;
pub mod informers;
pub mod labels;
pub mod objects;
pub mod options;
pub mod preemption;
pub mod priority;
pub mod queue;
pub mod run;
pub mod scheduler;
pub mod status;

pub use error::{Error, Result};
pub use options::Options;
pub use run::run;
