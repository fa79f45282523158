//! `kadm image load FILE.tar [--node NAME]`: put an image archive into containerd's CRI
//! namespace, for air-gapped clusters (as `k3s ctr images import` and k0s' image bundles).

use std::path::PathBuf;

use anyhow::Context;
use kadm_bootstrap::containerd::{self, K8S_NAMESPACE};
use kadm_images::ArchiveFormat;

use super::HostFlags;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Import an OCI image layout or `docker save` tarball (optionally gzip'd) into
    /// containerd's k8s.io namespace, where the kubelet finds it without pulling.
    Load(LoadArgs),
}

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The image archive.
    pub file: PathBuf,
    /// The node to load the image on (default: this host).
    #[arg(long)]
    pub node: Option<String>,
    /// containerd's socket (default: the host's, /run/containerd/containerd.sock).
    #[arg(long)]
    pub containerd_socket: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostFlags,
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Load(args) => load(args),
    }
}

fn load(args: LoadArgs) -> anyhow::Result<()> {
    let socket = args
        .containerd_socket
        .unwrap_or_else(|| args.host.layout().containerd_socket);
    let imported = containerd::load_archive(&socket, &args.file, args.node.as_deref())
        .with_context(|| format!("load {}", args.file.display()))?;
    let format = match imported.info.format {
        ArchiveFormat::Oci => "OCI image layout",
        ArchiveFormat::Docker => "docker archive",
    };
    if imported.images.is_empty() {
        println!(
            "imported {} ({format}, {} image(s)) into containerd namespace {K8S_NAMESPACE}; \
             the archive names no image, so containerd lists it under a generated name",
            args.file.display(),
            imported.info.images
        );
    } else {
        for name in &imported.images {
            println!("loaded {name} ({format}) into containerd namespace {K8S_NAMESPACE}");
        }
    }
    Ok(())
}
