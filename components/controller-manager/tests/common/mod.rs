//! The kadm-controller-manager process fixture shared by the integration tests: start it
//! against a `TestCluster`, wait for health, stop it by pid, print its log on failure.

#![allow(dead_code)]

pub mod workload;

use std::ops::{Deref, DerefMut};

use kadm_e2e::TestCluster;
use kadm_e2e::component::{Component, Kind};
// Not every test binary that includes this module uses both.
#[allow(unused_imports)]
pub use kadm_e2e::component::{healthz, wait_for};

const KIND: Kind = Kind {
    binary: env!("CARGO_BIN_EXE_kadm-controller-manager"),
    kubeconfig: kadm_bootstrap::kubeconfig::CONTROLLER_MANAGER_CONF,
    log_target: "kadm_controller_manager",
};

/// One kadm-controller-manager process; killed on drop, its log printed if the test fails.
pub struct ControllerManager(Component);

impl ControllerManager {
    pub fn start(cluster: &TestCluster, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Component::start(KIND, cluster, name, extra).map(Self)
    }
}

impl Deref for ControllerManager {
    type Target = Component;
    fn deref(&self) -> &Component {
        &self.0
    }
}

impl DerefMut for ControllerManager {
    fn deref_mut(&mut self) -> &mut Component {
        &mut self.0
    }
}
