//! Loading image archives into containerd with `ctr images import` (what `kadm image load`,
//! `kadm init` for the pause image, and the test fixtures use).
//!
//! `ctr` is containerd's own client and ships with it, so importing needs no registry and
//! no gRPC client of our own. Archives are checked with [`kadm_images::inspect`] first, so
//! a broken one is refused with a precise reason before containerd sees any of it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kadm_images::{ArchiveInfo, OciImage};

use crate::error::{Error, Result};

/// containerd's client, from Debian's `containerd` package.
pub const CTR: &str = "/usr/bin/ctr";
/// The containerd namespace of the CRI plugin: images the kubelet can run live here.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// How long one `ctr` call may take (importing a large archive included).
const CTR_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(20);

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
            let tmp = TempFile::create("kadm-image-load", "tar")?;
            let mut out = std::fs::File::create(&tmp.0).map_err(Error::io("create", &tmp.0))?;
            std::io::copy(&mut reader, &mut out).map_err(Error::io("decompress", archive))?;
            drop(out);
            self.ctr_import(&tmp.0)?;
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
        let tmp = TempFile::create("kadm-image", "tar")?;
        image.write_to(&tmp.0)?;
        self.ctr_import(&tmp.0)?;
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

    /// Runs `ctr -a <socket> -n <namespace> args…`, bounded by [`CTR_TIMEOUT`].
    fn ctr(&self, args: &[&str]) -> Result<String> {
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
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: command.clone(),
            detail: format!("cannot start it: {e}; install Debian's containerd package"),
        })?;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = stdout.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = stderr.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Command {
                    command,
                    detail: format!("did not finish within {}s", timeout.as_secs()),
                });
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                return Err(Error::Command {
                    command,
                    detail: e.to_string(),
                });
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        Err(Error::Command {
            command,
            detail: format!("{status}: {}", stderr.trim()),
        })
    }
}

/// A file in the temp dir that is removed when dropped; created exclusively so an existing
/// file (or symlink) at the name is never written through.
struct TempFile(PathBuf);

impl TempFile {
    fn create(prefix: &str, ext: &str) -> Result<TempFile> {
        let dir = std::env::temp_dir();
        for attempt in 0..16u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = dir.join(format!(
                "{prefix}-{}-{nanos:x}-{attempt}.{ext}",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => return Ok(TempFile(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create", &path)(e)),
            }
        }
        Err(Error::Command {
            command: "create temporary file".into(),
            detail: format!("no free name in {}", dir.display()),
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
