//! Host bootstrap for kadm: PKI, kubeconfigs, and (in other modules) everything that turns a
//! bare host into a cluster member.

pub mod error;
pub mod kubeconfig;
pub mod pki;
pub mod supervisor;

pub use error::{Error, Result};
