//! Host bootstrap for kadm: PKI, kubeconfigs, and (in other modules) everything that turns a
//! bare host into a cluster member.

pub mod audit_policy;
pub mod containerd;
pub mod encryption_keys;
pub mod error;
pub mod host;
pub mod init;
pub mod install;
pub mod kubeconfig;
pub mod layout;
pub mod pki;
pub mod preflight;
pub mod reset;
pub mod supervisor;

pub use error::{Error, Result};
