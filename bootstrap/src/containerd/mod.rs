//! containerd on a kadm host: the configuration kadm writes for it, and loading images into
//! it without a registry.
//!
//! kadm never lets containerd reach the internet to start a pod: the sandbox ("pause")
//! image is built locally (`kadm-images`) and imported with `ctr`, and the config points
//! the CRI plugin at it. Registries the cluster does use (mirrors, an insecure local
//! registry) are configured per host in `hosts.toml` files.

mod config;
mod import;

pub use config::{ContainerdConfig, RegistryHost, lacks_cap_sys_resource, systemd_cgroup_driver};
pub use import::{
    CTR, ImportedArchive, Importer, K8S_NAMESPACE, import_pause_image, list_images, load_archive,
};
