//! What every kadm binary shares: one logging setup, one version string, the
//! way a component that is not built yet refuses to run, and leader election
//! for the components that run one active replica (controller-manager, scheduler), with
//! their process shell (kubeconfig client, signals, the lease around the work).
//!
//! Keeping these in one crate means a log line from the apiserver and one from the
//! kubelet look the same, and `kadm upgrade` can compare versions by one rule.

pub mod command;
pub mod error;
pub mod health;
pub mod leader;
pub mod logging;
pub mod process;
pub mod version;

pub use error::{Error, Result};
pub use logging::init_logging;
pub use version::{KUBERNETES_VERSION, VERSION, git_version};

/// Exit code of a component binary whose implementation has not landed yet.
///
/// A distinct non-zero code lets the supervisor and tests tell "not built" apart
/// from a crash, so nothing can mistake a placeholder for a running component.
pub const EXIT_NOT_IMPLEMENTED: i32 = 3;

/// Prints why this component cannot run yet and exits non-zero.
pub fn refuse_unimplemented(component: &str, issue: &str) -> ! {
    eprintln!(
        "error: {component} is not implemented in kadm {VERSION} yet ({issue}); \
         it cannot be started, and nothing was done"
    );
    std::process::exit(EXIT_NOT_IMPLEMENTED)
}
