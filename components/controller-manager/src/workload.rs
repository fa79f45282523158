//! What the workload controllers (replicaset, deployment, and the ones after them) share,
//! as Kubernetes' `pkg/controller` utilities: label selectors, controller references and
//! the claiming of objects by selector (adoption and release), pod predicates and pods made
//! from a template, events, the splitting of one watch into owner and orphan triggers, and
//! the controller loop with its retry back-off (which the endpoints controllers use too).

pub mod claim;
pub mod events;
pub mod pods;
pub mod runner;
pub mod selector;
pub mod triggers;
