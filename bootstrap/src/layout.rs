//! Where kadm keeps things on a host. One struct so that tests (and `--prefix`)
//! can run the real init and reset flows inside a temporary directory.

use std::path::{Path, PathBuf};

/// Host paths and ports of a kadm control-plane host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `/etc/kadm`: configuration, kubeconfigs, and `pki/`.
    pub etc_dir: PathBuf,
    /// `/var/lib/kadm`: etcd data and other state.
    pub state_dir: PathBuf,
    /// `/var/log/kadm`: one log per component.
    pub log_dir: PathBuf,
    /// `/run/kadm`: the supervisor's pid and state files.
    pub run_dir: PathBuf,
    /// `/usr/local/bin`: kadm's binaries.
    pub bin_dir: PathBuf,
    /// `/etc/systemd/system`: where the supervisor unit goes on systemd hosts.
    pub systemd_dir: PathBuf,
    /// `/etc/containerd/config.toml`: what the distro's containerd unit reads; kadm writes it.
    pub containerd_config: PathBuf,
    /// `/var/lib/containerd` (a real filesystem: the overlayfs snapshotter lives there).
    pub containerd_root: PathBuf,
    /// `/run/containerd`.
    pub containerd_state: PathBuf,
    /// `/run/containerd/containerd.sock`: CRI and `ctr`.
    pub containerd_socket: PathBuf,
    /// `/etc/kadm/containerd/certs.d`: containerd's registry `hosts.toml` files.
    pub containerd_registry_dir: PathBuf,
    /// `/etc/kadm/cni/net.d`: the CNI conflist the kubelet writes and containerd reads.
    pub cni_conf_dir: PathBuf,
    pub ports: Ports,
}

/// Listening ports; configurable so several test control planes can share one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub apiserver: u16,
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub etcd_metrics: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            apiserver: 6443,
            etcd_client: 2379,
            etcd_peer: 2380,
            etcd_metrics: 2381,
            controller_manager: 10257,
            scheduler: 10259,
        }
    }
}

impl Layout {
    /// The production layout.
    pub fn system() -> Layout {
        Layout::rooted(Path::new("/"))
    }

    /// The production layout below `root` (`/` for the real host).
    pub fn rooted(root: &Path) -> Layout {
        Layout {
            etc_dir: root.join("etc/kadm"),
            state_dir: root.join("var/lib/kadm"),
            log_dir: root.join("var/log/kadm"),
            run_dir: root.join("run/kadm"),
            bin_dir: root.join("usr/local/bin"),
            systemd_dir: root.join("etc/systemd/system"),
            containerd_config: root.join("etc/containerd/config.toml"),
            containerd_root: root.join("var/lib/containerd"),
            containerd_state: root.join("run/containerd"),
            containerd_socket: root.join("run/containerd/containerd.sock"),
            containerd_registry_dir: root.join("etc/kadm/containerd/certs.d"),
            cni_conf_dir: root.join("etc/kadm/cni/net.d"),
            ports: Ports::default(),
        }
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.etc_dir.join("pki")
    }
    pub fn etcd_data_dir(&self) -> PathBuf {
        self.state_dir.join("etcd")
    }
    pub fn admin_conf(&self) -> PathBuf {
        self.etc_dir.join(crate::kubeconfig::ADMIN_CONF)
    }
    pub fn supervisor_config(&self) -> PathBuf {
        self.etc_dir.join("supervisor.yaml")
    }
    /// The apiserver's `--encryption-provider-config` (the keys of Secrets at rest).
    pub fn encryption_config(&self) -> PathBuf {
        self.etc_dir.join("encryption-config.yaml")
    }
    /// The apiserver's `--audit-policy-file`.
    pub fn audit_policy(&self) -> PathBuf {
        self.etc_dir.join("audit-policy.yaml")
    }
    /// The apiserver's `--audit-log-path`; rotated backups go next to it.
    pub fn audit_log(&self) -> PathBuf {
        self.log_dir.join("audit.log")
    }
    /// Written last by `kadm init`: its presence means the host was initialized.
    pub fn cluster_record(&self) -> PathBuf {
        self.etc_dir.join("cluster.yaml")
    }
    /// Which binaries kadm installed, so `kadm reset` removes exactly those.
    pub fn install_record(&self) -> PathBuf {
        self.etc_dir.join("installed.json")
    }
    pub fn systemd_unit(&self) -> PathBuf {
        self.systemd_dir.join("kadm-supervisor.service")
    }
    pub fn apiserver_url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.ports.apiserver)
    }
}
