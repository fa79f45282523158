//! kadm's integration-test tier: real etcd and the real `kadm-apiserver` binary on
//! loopback, driven through kubectl, kube-rs and raw HTTPS.
//!
//! The centre is [`TestCluster`]: a temp dir with a fresh PKI and admin kubeconfig, an
//! etcd with production's TLS layout, and an apiserver in front of it. Each test starts
//! its own cluster on free ports, so tests run in parallel (nextest gives every test its
//! own process). Dropping the cluster kills both processes by pid, also when the test
//! panics, and prints the apiserver's log tail on failure.
//!
//! The apiserver binary is the workspace's own build (`target/<profile>/kadm-apiserver`);
//! build it first (`make test` does, or `cargo build -p kadm-apiserver`).

pub mod bench;
pub mod cluster;
pub mod component;
pub mod containerd;
pub mod h2;
pub mod hollow;
pub mod http;
pub mod kubectl;
pub mod ports;
pub mod process;
pub mod registry;

pub use cluster::{Options, TestCluster};
pub use h2::{H2Client, Lines, Windows};
pub use http::{RawClient, RawResponse};
pub use kubectl::{Background, installed_kubectl_versions, kubectl_path};

/// How long a single wait in a test (an event, a line of output) may take.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
