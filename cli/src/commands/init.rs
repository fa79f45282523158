//! `kadm init`: a control plane on this host.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kadm_bootstrap::init::{self, InitOptions, InitOutcome, UserKubeconfig};

use super::{HostFlags, confirm, user_kubeconfig};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  kadm init\n  kadm init --advertise-address 192.168.1.10 --node-name cp1\n  kadm init --dry-run"
)]
pub struct Args {
    #[command(flatten)]
    host: HostFlags,
    /// Name of the cluster (used in kubeconfig contexts).
    #[arg(long, default_value = "kadm")]
    cluster_name: String,
    /// Name of this node (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Address other hosts and clients reach this control plane on (default: the default route's address).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Service network; its first address belongs to the `kubernetes` service.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// More names or IPs for the apiserver certificate (load balancers, DNS names).
    #[arg(long = "apiserver-cert-extra-sans", value_delimiter = ',')]
    extra_sans: Vec<String>,
    /// Directory holding kadm's binaries to install (default: where this kadm lives).
    #[arg(long)]
    binaries_dir: Option<PathBuf>,
    /// etcd binary to run.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_binary: PathBuf,
    /// Overwrite a different ~/.kube/config without asking (a backup is kept).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the steps and exit without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for the apiserver to become ready.
    #[arg(long, default_value_t = 120)]
    ready_timeout_seconds: u64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let layout = a.host.layout();
    let binaries_dir = match a.binaries_dir {
        Some(d) => d,
        None => std::env::current_exe()
            .context("find the running kadm binary")?
            .parent()
            .map(PathBuf::from)
            .context("the running kadm binary has no parent directory")?,
    };
    let opts = InitOptions {
        cluster_name: a.cluster_name,
        node_name: a.node_name.unwrap_or_else(kadm_bootstrap::host::node_name),
        advertise_address: a
            .advertise_address
            .unwrap_or_else(kadm_bootstrap::host::default_address),
        service_cidr: a.service_cidr,
        extra_sans: a.extra_sans,
        binaries_dir,
        etcd_binary: a.etcd_binary,
        use_systemd: a.host.use_systemd(),
        require_root: a.host.prefix.is_none(),
        ready_timeout: Duration::from_secs(a.ready_timeout_seconds),
        layout,
    };
    if a.dry_run {
        println!(
            "kadm init would, on node {} at {}:",
            opts.node_name, opts.advertise_address
        );
        for (i, s) in init::STEPS.iter().enumerate() {
            println!("  {}. {s}", i + 1);
        }
        let sup = init::control_plane_components(&opts);
        println!(
            "components under the supervisor: {}",
            sup.components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "supervisor: {}",
            if opts.use_systemd {
                "systemd unit kadm-supervisor.service"
            } else {
                "detached process"
            }
        );
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let steps = crate::progress::Steps::new();
    let outcome = rt
        .block_on(init::init(&opts, &steps))
        .context("kadm init failed")?;
    drop(steps);
    match outcome {
        InitOutcome::AlreadyInitialized(r) => {
            println!(
                "this host is already initialized (cluster {}, node {}, apiserver {}, kadm {}); nothing was changed.\nrun `kadm reset` first to start over",
                r.cluster_name, r.node_name, r.server, r.kadm_version
            );
            return Ok(());
        }
        InitOutcome::Initialized { record, elapsed } => {
            println!(
                "\ncontrol plane of cluster {} is ready at {} ({:.1}s)",
                record.cluster_name,
                record.server,
                elapsed.as_secs_f64()
            );
        }
    }
    if opts.layout.etc_dir.starts_with("/etc")
        && let Some(dest) = user_kubeconfig()
    {
        let mut result = init::install_user_kubeconfig(&opts.layout, &dest, a.yes)?;
        if result == UserKubeconfig::Different
            && confirm(&format!(
                "{} exists and differs from the new admin.conf; overwrite it (a backup is kept)?",
                dest.display()
            ))
        {
            result = init::install_user_kubeconfig(&opts.layout, &dest, true)?;
        }
        match result {
            UserKubeconfig::Written => println!("wrote {}", dest.display()),
            UserKubeconfig::AlreadyCurrent => println!("{} is already up to date", dest.display()),
            UserKubeconfig::Replaced(b) => println!(
                "wrote {} (previous file saved as {})",
                dest.display(),
                b.display()
            ),
            UserKubeconfig::Different => println!(
                "left {} unchanged (it differs); use `export KUBECONFIG={}` or re-run with --yes to overwrite",
                dest.display(),
                opts.layout.admin_conf().display()
            ),
        }
    }
    println!(
        "admin kubeconfig: {}\ntry: kubectl --kubeconfig {} get namespaces",
        opts.layout.admin_conf().display(),
        opts.layout.admin_conf().display()
    );
    Ok(())
}
