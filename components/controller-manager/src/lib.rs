//! kadm-controller-manager: the control loops that move the cluster toward what its objects
//! declare, one module per controller, run by one leader-elected process.
//!
//! Controllers follow kube-runtime's shape: `reconcile(Arc<Obj>, Arc<Ctx>) -> Result<Action>`
//! plus an error policy that requeues with back-off. Today: the namespace controller and the
//! garbage collector.

pub mod backoff;
pub mod controllers;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod endpoints;
pub mod endpointslice;
pub mod error;
pub mod garbagecollector;
pub mod health;
pub mod history;
pub mod intstr;
pub mod job;
pub mod manager;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod options;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod taints;
pub mod ttlafterfinished;
pub mod workload;

pub use error::{Error, Result};
pub use manager::run;
pub use options::Options;
