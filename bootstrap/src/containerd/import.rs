//! Loading image archives into containerd with `ctr images import` (what `kadm image load`,
//! `kadm init` for the pause image, and the test fixtures use).
//!
//! `ctr` is containerd's own client and ships with it, so importing needs no registry and
//! no gRPC client of our own. Archives are checked with [`kadm_images::inspect`] first, so
//! a broken one is refused with a precise reason before containerd sees any of it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kadm_base::command::{self, RunError};
use kadm_images::{ArchiveInfo, OciImage};

use crate::error::{Error, Result};

/// containerd's client, from Debian's `containerd` package.
pub const CTR: &str = "/usr/bin/ctr";
/// The containerd namespace of the CRI plugin: images the kubelet can run live here.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// How long one `ctr` call may take (importing a large archive included).
const CTR_TIMEOUT: Duration = Duration::from_secs(600);

/// Imports archives into one containerd namespace through `ctr`.
#[derive(Debug, Clone)]
pub struct Importer {
    pub ctr: PathBuf,
    pub socket: PathBuf,
    pub namespace: String,
}

/// The result of an import: what the archive held and the names containerd now lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedArchive {
    pub info: ArchiveInfo,
    /// The archive's names that containerd lists after the import.
    pub images: Vec<String>,
}

impl Importer {
    /// An importer for the CRI namespace of the containerd listening on `socket`.
    pub fn new(socket: &Path) -> Importer {
        Importer {
            ctr: PathBuf::from(CTR),
            socket: socket.to_path_buf(),
            namespace: K8S_NAMESPACE.into(),
        }
    }

    /// Checks `archive`, then imports it. Importing the same archive twice changes nothing.
    pub fn import_file(&self, archive: &Path) -> Result<ImportedArchive> {
        let info = kadm_images::inspect(archive)?;
        self.check_socket()?;
        if info.gzip {
            // containerd 1.6's importer reads plain tar only.
            let (mut reader, _) = kadm_images::archive::open(archive)?;
            let tmp = temp_file("kadm-image-load-", ".tar")?;
            let mut out = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
            std::io::copy(&mut reader, &mut out).map_err(Error::io("decompress", archive))?;
            drop(out);
            self.ctr_import(&tmp)?;
        } else {
            self.ctr_import(archive)?;
        }
        let listed = self.list()?;
        let images = info
            .names
            .iter()
            .filter(|n| listed.contains(n))
            .cloned()
            .collect();
        Ok(ImportedArchive { info, images })
    }

    /// Imports an image kadm built (the pause image, test images).
    pub fn import_image(&self, image: &OciImage) -> Result<()> {
        self.check_socket()?;
        let tmp = temp_file("kadm-image-", ".tar")?;
        image.write_to(&tmp)?;
        self.ctr_import(&tmp)?;
        let listed = self.list()?;
        if !listed.contains(&image.name) {
            return Err(Error::Command {
                command: format!("{} images import", self.ctr.display()),
                detail: format!("containerd does not list {} after the import", image.name),
            });
        }
        Ok(())
    }

    /// Image names in the namespace.
    pub fn list(&self) -> Result<Vec<String>> {
        let out = self.ctr(&["images", "ls", "-q"])?;
        Ok(out
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect())
    }

    fn check_socket(&self) -> Result<()> {
        if self.socket.exists() {
            return Ok(());
        }
        Err(Error::Command {
            command: format!("{} images import", self.ctr.display()),
            detail: format!(
                "containerd is not running here (no socket at {}); start containerd or pass \
                 --containerd-socket",
                self.socket.display()
            ),
        })
    }

    fn ctr_import(&self, file: &Path) -> Result<()> {
        let file = file.to_string_lossy();
        self.ctr(&["images", "import", &file]).map(|_| ())
    }

    /// Runs `ctr -a <socket> -n <namespace> args…`, bounded by [`CTR_TIMEOUT`]; its
    /// stdout.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        let socket = self.socket.to_string_lossy();
        let mut full = vec!["-a", &socket, "-n", &self.namespace];
        full.extend_from_slice(args);
        run_bounded(&self.ctr, &full, CTR_TIMEOUT)
    }
}

/// `kadm image load`: imports `archive` into the CRI namespace of the containerd at
/// `socket`, on this host. Another node is refused rather than pretended: reaching other
/// hosts is `kadm join`'s work.
pub fn load_archive(socket: &Path, archive: &Path, node: Option<&str>) -> Result<ImportedArchive> {
    if let Some(node) = node {
        let this = crate::host::node_name();
        if !node.eq_ignore_ascii_case(&this) {
            return Err(Error::RemoteNode {
                node: node.to_string(),
                this,
            });
        }
    }
    Importer::new(socket).import_file(archive)
}

/// Builds the pause image from the host's busybox and imports it: what a node needs before
/// the CRI plugin can start any pod.
pub fn import_pause_image(importer: &Importer, busybox: &Path) -> Result<String> {
    let image = kadm_images::pause_image(busybox).build()?;
    importer.import_image(&image)?;
    Ok(image.name)
}

/// Image names in `namespace` of the containerd at `socket`.
pub fn list_images(socket: &Path, namespace: &str) -> Result<Vec<String>> {
    Importer {
        namespace: namespace.into(),
        ..Importer::new(socket)
    }
    .list()
}

/// Runs a command to completion within `timeout`, returning its stdout; a non-zero exit
/// becomes [`Error::Command`] carrying stderr.
fn run_bounded(program: &Path, args: &[&str], timeout: Duration) -> Result<String> {
    let command = format!("{} {}", program.display(), args.join(" "));
    let out =
        command::run_bounded(Command::new(program).args(args), None, timeout).map_err(|e| {
            Error::Command {
                command: command.clone(),
                detail: match e {
                    RunError::Spawn(e) => {
                        format!("cannot start it: {e}; install Debian's containerd package")
                    }
                    RunError::Timeout(t) => format!("did not finish within {}s", t.as_secs()),
                    RunError::Wait(e) => e.to_string(),
                },
            }
        })?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(Error::Command {
            command,
            detail: format!("{}: {}", out.status, out.stderr.trim()),
        })
    }
}

/// An exclusively created file in the temp dir (an existing file or symlink at the name is
/// never written through), removed when dropped.
fn temp_file(prefix: &str, suffix: &str) -> Result<tempfile::TempPath> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile()
        .map(tempfile::NamedTempFile::into_temp_path)
        .map_err(Error::io("create", &std::env::temp_dir()))
}
