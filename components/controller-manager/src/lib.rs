//! kadm-controller-manager: the control loops that move the cluster toward what its objects
//! declare, one module per controller, run by one leader-elected process.
//!
//! Controllers follow kube-runtime's shape: `reconcile(Arc<Obj>, Arc<Ctx>) -> Result<Action>`
//! plus an error policy that requeues with back-off. Today: the namespace controller and the
//! garbage collector.

pub mod backoff;
pub mod controllers;
pub mod discovery;
pub mod error;
pub mod garbagecollector;
pub mod health;
pub mod manager;
pub mod namespace;
pub mod options;

pub use error::{Error, Result};
pub use manager::run;
pub use options::Options;
