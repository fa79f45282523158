//! kadm-kubelet: the node agent. It registers its Node and keeps its Lease, writes the CNI
//! config for its pod CIDR, and runs the pods bound to it through a CRI runtime
//! (containerd), reporting their status the way Kubernetes' kubelet does.
//!
//! ```text
//!  apiserver ◄── node status, lease ── node::NodeAgent ◄── host facts, CRI status
//!      │                                    │ podCIDR
//!      │ pods (spec.nodeName=me)            └──► cni: conflist in --cni-conf-dir
//!      ▼
//!  pod::PodManager ── one worker per pod ──► cri::Runtime (RunPodSandbox, PullImage,
//!      ▲                   │                  CreateContainer, StartContainer, Stop…)
//!      └── pod status ◄────┘ ◄── relist every second (container state changes)
//! ```

pub mod clock;
pub mod cni;
pub mod cri;
pub mod error;
pub mod events;
pub mod node;
pub mod options;
pub mod patch;
pub mod pod;
pub mod run;

pub use error::{Error, Result};
