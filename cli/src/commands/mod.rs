pub mod certs;
pub mod image;
pub mod init;
pub mod reset;
pub mod secrets;
pub mod supervisor;

use std::path::PathBuf;

/// Flags shared by lifecycle commands that act on this host.
#[derive(clap::Args, Debug, Clone)]
pub struct HostFlags {
    /// Act on a host tree below this directory instead of `/` (tests, demos).
    #[arg(long, hide = true, env = "KADM_PREFIX")]
    pub prefix: Option<PathBuf>,
    /// Port of the apiserver.
    #[arg(long, default_value_t = 6443, hide = true)]
    pub apiserver_port: u16,
    /// etcd client, peer and metrics ports.
    #[arg(long, default_value_t = 2379, hide = true)]
    pub etcd_client_port: u16,
    #[arg(long, default_value_t = 2380, hide = true)]
    pub etcd_peer_port: u16,
    #[arg(long, default_value_t = 2381, hide = true)]
    pub etcd_metrics_port: u16,
    #[arg(long, default_value_t = 10257, hide = true)]
    pub controller_manager_port: u16,
    #[arg(long, default_value_t = 10259, hide = true)]
    pub scheduler_port: u16,
}

impl HostFlags {
    pub fn layout(&self) -> kadm_bootstrap::layout::Layout {
        let mut l = match &self.prefix {
            Some(p) => kadm_bootstrap::layout::Layout::rooted(p),
            None => kadm_bootstrap::layout::Layout::system(),
        };
        l.ports = kadm_bootstrap::layout::Ports {
            apiserver: self.apiserver_port,
            etcd_client: self.etcd_client_port,
            etcd_peer: self.etcd_peer_port,
            etcd_metrics: self.etcd_metrics_port,
            controller_manager: self.controller_manager_port,
            scheduler: self.scheduler_port,
        };
        l
    }

    /// systemd manages the supervisor only on the real root of a systemd host.
    pub fn use_systemd(&self) -> bool {
        self.prefix.is_none() && kadm_bootstrap::supervisor::systemd_is_pid1()
    }
}

/// `$HOME/.kube/config`, the file kubectl reads by default.
pub fn user_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
}

/// Asks a yes/no question on a terminal; without a terminal the answer is no.
pub fn confirm(question: &str) -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .unwrap_or(false)
}
