//! A private, real containerd for tests: its own config, root, state, socket and CNI
//! directories below one directory, with kadm's pause image and the busybox test image
//! already imported into the CRI namespace `k8s.io`.
//!
//! ```no_run
//! let ctd = kadm_e2e::containerd::TestContainerd::start()?;
//! // CRI (tonic) or `ctr` against ctd.socket(); pods run ctd.test_image().
//! # anyhow::Ok(())
//! ```
//!
//! The config is the one kadm writes for hosts ([`kadm_bootstrap::containerd::ContainerdConfig`]),
//! pointed at private directories, so tests exercise the product's configuration.
//!
//! **Where**: the overlayfs snapshotter cannot stack on an overlay filesystem, so the
//! directory is below the system temp dir only when that is a real disk filesystem (ext4
//! on the project's machines); when it is overlay or tmpfs it is below `/var/lib/kadm-test`.
//! `KADM_TEST_DIR` overrides both.
//!
//! **Teardown** (drop, also on panic): every task and container in every namespace of this
//! containerd is killed and removed through `ctr`, then containerd is stopped (TERM, then
//! KILL) by its pid; shims still serving this socket (found by the `-address` on their
//! command line) are killed by pid, runc state left in the private runc root is force-
//! deleted, everything mounted below the directory (snapshots, pod netns) is unmounted,
//! the CNI bridge named [`TestContainerd::bridge_name`] is deleted, and the directory is
//! removed. Nothing is shared with other instances, so tests run in parallel. What remains
//! is empty: containerd's parent cgroup `k8s.io` (removing it could race a parallel
//! instance creating a container below it) and `ctr`'s `/run/containerd/{fifo,s}` dirs.
//!
//! **CNI for pod tests**: write the conflist into [`TestContainerd::cni_conf_dir`] with
//! `"bridge": ctd.bridge_name()` and host-local `"dataDir": ctd.cni_data_dir()`, so the
//! bridge and the IP allocations are this instance's and are cleaned up with it. Pod
//! sandboxes should be removed through CRI (`StopPodSandbox`/`RemovePodSandbox`) by the
//! test, so the CNI plugins run their DEL (portmap rules); the fixture's fallback kills
//! and unmounts but cannot run CNI DEL itself.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kadm_bootstrap::containerd::{ContainerdConfig, Importer, K8S_NAMESPACE, RegistryHost};
use kadm_images::{BUSYBOX_PATH, OciImage};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::process::{Process, tail};

/// containerd from Debian's `containerd` package.
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// containerd's client (same package).
pub const CTR: &str = kadm_bootstrap::containerd::CTR;
/// runc from Debian's `runc` package.
pub const RUNC: &str = "/usr/sbin/runc";
/// The CNI plugins from Debian's `containernetworking-plugins`.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// Where instances live when the temp dir is on overlay (see the module docs).
pub const FALLBACK_BASE: &str = "/var/lib/kadm-test";

/// How long containerd may take to serve its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

/// Options for [`TestContainerd::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Registries reached over plain HTTP (`localhost:PORT`), written as `hosts.toml`.
    pub insecure_registries: Vec<String>,
    /// Further registry host configurations (mirrors), written as `hosts.toml`.
    pub registries: Vec<RegistryHost>,
    /// Skip importing the test image (the pause image is always imported).
    pub without_test_image: bool,
}

/// A running private containerd; see the module docs.
pub struct TestContainerd {
    dir: PathBuf,
    config_path: PathBuf,
    config: ContainerdConfig,
    cni_data_dir: PathBuf,
    bridge_name: String,
    log: PathBuf,
    process: Option<Process>,
    pause_image: String,
    test_image: String,
}

impl TestContainerd {
    /// Starts containerd and imports the pause and test images into `k8s.io`.
    pub fn start() -> anyhow::Result<TestContainerd> {
        TestContainerd::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> anyhow::Result<TestContainerd> {
        check_prerequisites()?;
        let base = base_dir()?;
        std::fs::create_dir_all(&base).with_context(|| format!("create {}", base.display()))?;
        let dir = unique_dir(&base)?;
        let unique = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config = ContainerdConfig {
            root: dir.join("root"),
            state: dir.join("state"),
            socket: dir.join("containerd.sock"),
            opt_dir: dir.join("opt"),
            sandbox_image: kadm_images::pause_image_name(),
            systemd_cgroup: kadm_bootstrap::containerd::systemd_cgroup_driver(),
            restrict_oom_score_adj: kadm_bootstrap::containerd::lacks_cap_sys_resource(),
            cni_bin_dir: PathBuf::from(CNI_BIN_DIR),
            cni_conf_dir: dir.join("cni/net.d"),
            registry_config_dir: dir.join("certs.d"),
            registries: options
                .insecure_registries
                .iter()
                .map(|r| RegistryHost::insecure_http(r))
                .chain(options.registries.iter().cloned())
                .collect(),
        };
        let mut ctd = TestContainerd {
            config_path: dir.join("config.toml"),
            cni_data_dir: dir.join("cni/data"),
            // Linux interface names are ≤ 15 bytes: "kt" + the dir's unique suffix.
            bridge_name: format!("kt{}", &unique[unique.len().saturating_sub(10)..]),
            log: dir.join("containerd.log"),
            dir,
            config,
            process: None,
            pause_image: kadm_images::pause_image_name(),
            test_image: kadm_images::TEST_BUSYBOX_IMAGE.to_string(),
        };
        // From here on, Drop cleans up whatever was made.
        ctd.boot()?;
        let importer = ctd.importer();
        let (pause, test) = builtin_images()?;
        importer
            .import_image(pause)
            .context("import the pause image")?;
        if !options.without_test_image {
            importer
                .import_image(test)
                .context("import the test image")?;
        }
        Ok(ctd)
    }

    fn boot(&mut self) -> anyhow::Result<()> {
        for d in [&self.config.root, &self.config.state, &self.cni_data_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
        }
        self.config.write(&self.config_path)?;
        let process = Process::spawn(
            "containerd",
            Path::new(CONTAINERD),
            &["--config".into(), self.config_path.clone().into_os_string()],
            &[],
            &self.log,
        )?;
        self.process = Some(process);
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.as_mut().and_then(Process::exited) {
                bail!(
                    "containerd exited ({status}) while starting; its log:\n{}",
                    tail(&self.log, 30)
                );
            }
            if self.config.socket.exists() && self.ctr(&["version"]).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "containerd did not serve {} within {}s; its log:\n{}",
                    self.config.socket.display(),
                    START_TIMEOUT.as_secs(),
                    tail(&self.log, 30)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// containerd's gRPC socket (CRI v1 and `ctr`).
    pub fn socket(&self) -> &Path {
        &self.config.socket
    }

    /// The CNI config dir containerd's CRI plugin reads (empty at start).
    pub fn cni_conf_dir(&self) -> &Path {
        &self.config.cni_conf_dir
    }

    /// The CNI plugin binaries (`/usr/lib/cni`).
    pub fn cni_bin_dir(&self) -> &Path {
        &self.config.cni_bin_dir
    }

    /// A private directory for host-local IPAM's `dataDir`.
    pub fn cni_data_dir(&self) -> &Path {
        &self.cni_data_dir
    }

    /// A bridge name unique to this instance (≤ 15 bytes), deleted on drop.
    pub fn bridge_name(&self) -> &str {
        &self.bridge_name
    }

    /// The sandbox image containerd's config names (imported).
    pub fn pause_image(&self) -> &str {
        &self.pause_image
    }

    /// `localhost/kadm-test/busybox:1` (imported unless [`Options::without_test_image`]).
    pub fn test_image(&self) -> &str {
        &self.test_image
    }

    /// The instance's directory (config, root, state, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// containerd's pid (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, Process::pid)
    }

    /// An importer into this containerd's `k8s.io` namespace.
    pub fn importer(&self) -> Importer {
        Importer::new(&self.config.socket)
    }

    /// Runs `ctr -a <socket> -n k8s.io args…` and returns its stdout.
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        self.ctr_ns(K8S_NAMESPACE, args)
    }

    /// Runs `ctr -a <socket> -n <namespace> args…` and returns its stdout.
    pub fn ctr_ns(&self, namespace: &str, args: &[&str]) -> anyhow::Result<String> {
        let importer = Importer {
            namespace: namespace.into(),
            ..self.importer()
        };
        Ok(importer.ctr(args)?)
    }

    /// Runs `args` in a new container `id` from `image` to completion (`ctr run --rm`) and
    /// returns what it wrote to stdout and stderr. The shim writes the output to a file
    /// (`--log-uri`), so a process that exits at once loses nothing to the client's
    /// fifo copy racing its exit.
    pub fn run(&self, image: &str, id: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = self.dir.join(format!("run-{id}.log"));
        let _ = std::fs::remove_file(&out);
        let log_uri = format!("file://{}", out.display());
        let fifo_dir = self.dir.join("fifo");
        let fifo_dir = fifo_dir.to_string_lossy();
        let mut ctr_args = vec![
            "run",
            "--rm",
            "--fifo-dir",
            &fifo_dir,
            "--log-uri",
            &log_uri,
        ];
        ctr_args.extend([image, id]);
        ctr_args.extend_from_slice(args);
        self.ctr(&ctr_args)?;
        let text = std::fs::read_to_string(&out)
            .with_context(|| format!("read the output of container {id}"))?;
        let _ = std::fs::remove_file(&out);
        Ok(text)
    }

    /// Image names in `k8s.io`.
    pub fn images(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.importer().list()?)
    }

    /// Stops containerd and removes everything it made (what drop does).
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        if self.process.is_some() {
            self.remove_all_containers();
            if let Some(mut p) = self.process.take() {
                p.terminate(Duration::from_secs(10));
            }
        }
        kill_shims(&self.config.socket);
        self.delete_runc_state();
        unmount_below(&self.dir);
        delete_link(&self.bridge_name);
        if !mounts_below(&self.dir).is_empty() {
            // Never recurse into a tree that still has mounts: that would delete through
            // them. Leave it for inspection instead.
            eprintln!(
                "kadm-e2e: mounts remain below {}; not removing it",
                self.dir.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Kills and deletes every task and container containerd knows, namespace by namespace.
    fn remove_all_containers(&self) {
        let namespaces = self
            .ctr_ns("default", &["namespaces", "ls", "-q"])
            .unwrap_or_default();
        for ns in namespaces.lines().filter(|l| !l.is_empty()) {
            let tasks = self.ctr_ns(ns, &["tasks", "ls", "-q"]).unwrap_or_default();
            for id in tasks.lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr_ns(ns, &["tasks", "kill", "-a", "-s", "SIGKILL", id]);
            }
            for id in tasks.lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr_ns(ns, &["tasks", "delete", "-f", id]);
            }
            let containers = self
                .ctr_ns(ns, &["containers", "ls", "-q"])
                .unwrap_or_default();
            for id in containers.lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr_ns(ns, &["containers", "rm", id]);
            }
        }
    }

    /// Force-deletes containers runc still has in this instance's runc root (after a shim
    /// was killed, its container's processes and cgroups would otherwise stay).
    fn delete_runc_state(&self) {
        let runc_root = self.config.state.join("runc");
        let Ok(namespaces) = std::fs::read_dir(&runc_root) else {
            return;
        };
        for ns in namespaces.flatten() {
            let root = ns.path();
            let Ok(ids) = std::fs::read_dir(&root) else {
                continue;
            };
            for id in ids.flatten() {
                let _ = std::process::Command::new(RUNC)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(id.file_name())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for TestContainerd {
    fn drop(&mut self) {
        if std::thread::panicking() && self.log.exists() {
            eprintln!(
                "kadm-e2e: containerd log tail ({}):\n{}",
                self.log.display(),
                tail(&self.log, 40)
            );
        }
        self.teardown();
    }
}

/// The pause and test images, built once per test process (gzip of busybox is the slow
/// part, and the result is identical every time).
pub fn builtin_images() -> anyhow::Result<(&'static OciImage, &'static OciImage)> {
    static IMAGES: OnceLock<Result<(OciImage, OciImage), String>> = OnceLock::new();
    let built = IMAGES.get_or_init(|| {
        let busybox = Path::new(BUSYBOX_PATH);
        let pause = kadm_images::pause_image(busybox)
            .build()
            .map_err(|e| e.to_string())?;
        let test = kadm_images::busybox_test_image(busybox)
            .build()
            .map_err(|e| e.to_string())?;
        Ok((pause, test))
    });
    match built {
        Ok((p, t)) => Ok((p, t)),
        Err(e) => bail!("build the builtin images: {e}"),
    }
}

fn check_prerequisites() -> anyhow::Result<()> {
    for (path, package) in [
        (CONTAINERD, "containerd"),
        (CTR, "containerd"),
        (RUNC, "runc"),
        (BUSYBOX_PATH, "busybox-static"),
        ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ] {
        if !Path::new(path).exists() {
            bail!("{path} is missing; install Debian's {package} package (make test-deps)");
        }
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("containerd tests need root (containers, mounts, cgroups)");
    }
    Ok(())
}

/// Where instance directories go: `KADM_TEST_DIR`, else the temp dir unless it is on
/// overlay or tmpfs, else [`FALLBACK_BASE`].
pub fn base_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KADM_TEST_DIR") {
        return Ok(PathBuf::from(dir).join("containerd"));
    }
    let tmp = std::env::temp_dir();
    // tmpfs would work for overlayfs but holds every snapshot in memory.
    let tmp_ok = fs_type(&tmp).is_some_and(|t| t != "overlay" && t != "tmpfs");
    let base = if tmp_ok {
        tmp.join("kadm-containerd")
    } else {
        PathBuf::from(FALLBACK_BASE)
    };
    let probe = base
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if fs_type(probe).as_deref() == Some("overlay") {
        bail!(
            "{} is on an overlay filesystem, where containerd's overlayfs snapshotter cannot \
             work; set KADM_TEST_DIR to a directory on a real disk",
            base.display()
        );
    }
    Ok(base)
}

/// A fresh directory below `base` with a short unique name (socket paths must stay
/// under 108 bytes).
fn unique_dir(base: &Path) -> anyhow::Result<PathBuf> {
    for attempt in 0..64u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{:x}{:06x}",
            std::process::id() & 0xffff,
            (nanos ^ attempt) & 0xff_ffff
        );
        let dir = base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("create {}", dir.display())),
        }
    }
    bail!("no free directory name below {}", base.display())
}

/// One line of `/proc/self/mountinfo`: mount point and filesystem type.
struct MountInfo {
    mount_point: PathBuf,
    fs_type: String,
}

fn mountinfo() -> Vec<MountInfo> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fs_type = right.split(' ').next()?;
            Some(MountInfo {
                mount_point: PathBuf::from(unescape_octal(mount_point)),
                fs_type: fs_type.to_string(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The filesystem type `path` is on (the longest mount point containing it).
pub fn fs_type(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    mountinfo()
        .into_iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .map(|m| m.fs_type)
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unmount_below(dir: &Path) {
    // A mount can be stacked on another at the same point: repeat a few rounds.
    for _ in 0..5 {
        let mounts = mounts_below(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Pids of containerd shims serving `socket` (their command line carries
/// `-address <socket>`).
pub fn shim_pids(socket: &Path) -> Vec<u32> {
    let socket = socket.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"-address" && w[1] == socket);
        if is_shim && ours {
            pids.push(pid);
        }
    }
    pids
}

fn kill_shims(socket: &Path) {
    for _ in 0..3 {
        let pids = shim_pids(socket);
        if pids.is_empty() {
            return;
        }
        for pid in &pids {
            if let Ok(p) = i32::try_from(*pid) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !shim_pids(socket).is_empty() {
            std::thread::sleep(POLL);
        }
    }
}

/// Deletes a network interface if it exists.
fn delete_link(name: &str) {
    if Path::new("/sys/class/net").join(name).exists() {
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", name])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_octal(r"/a\040b\134c"), "/a b\\c");
        assert_eq!(unescape_octal(r"/plain\04"), r"/plain\04");
    }
}
