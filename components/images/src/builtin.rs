//! The images kadm builds from the host's `busybox-static`: the pod sandbox image every
//! node needs, and the small image the test suites run.

use std::path::Path;

use crate::builder::ImageBuilder;

/// Where Debian's `busybox-static` installs its statically linked binary.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// The test image: busybox with its everyday applets, `sh` by default.
pub const TEST_BUSYBOX_IMAGE: &str = "localhost/kadm-test/busybox:1";

/// The search path of the images (Docker's default for Linux images).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The pod sandbox image that containerd's CRI plugin starts first in every pod
/// (`sandbox_image`). Named after kadm's version so an upgraded kadm imports its own.
pub fn pause_image_name() -> String {
    format!("localhost/kadm/pause:{}", env!("CARGO_PKG_VERSION"))
}

/// The sandbox's only process holds the pod's namespaces and must stop promptly when the
/// runtime says so. It runs as PID 1 of the pod's PID namespace, where the kernel drops
/// signals that have no handler, so TERM and INT are trapped explicitly; `wait` lets the
/// shell reap children (including orphans re-parented to it) while it idles, and the trap
/// ends the idle `sleep` too, so nothing outlives the script even outside a PID namespace.
const PAUSE_SCRIPT: &str = "#!/bin/sh
# kadm pod sandbox: hold the pod's namespaces until stopped.
child=
trap 'kill $child 2>/dev/null; exit 0' TERM INT
while :; do
    sleep 3600 &
    child=$!
    wait $child
done
";

/// The pause image: `/pause` (the script above) run by busybox's `sh`.
pub fn pause_image(busybox: &Path) -> ImageBuilder {
    ImageBuilder::new(pause_image_name())
        .file(busybox, "/bin/busybox", 0o755)
        .symlink("/bin/sh", "busybox")
        .symlink("/bin/sleep", "busybox")
        .bytes("/pause", PAUSE_SCRIPT, 0o755)
        .env("PATH", PATH)
        .entrypoint(["/pause"])
        .working_dir("/")
}

/// Applets linked into the test image's `/bin`: what test pods use (shells, sleeping,
/// serving and fetching HTTP, moving bytes, inspecting themselves).
pub const TEST_APPLETS: &[&str] = &[
    "[",
    "awk",
    "base64",
    "basename",
    "cat",
    "chmod",
    "cp",
    "cut",
    "date",
    "dd",
    "df",
    "dirname",
    "du",
    "echo",
    "env",
    "expr",
    "false",
    "find",
    "free",
    "grep",
    "head",
    "hexdump",
    "hostname",
    "httpd",
    "id",
    "ip",
    "kill",
    "ln",
    "ls",
    "md5sum",
    "mkdir",
    "mkfifo",
    "mount",
    "mv",
    "nc",
    "nslookup",
    "od",
    "ping",
    "printf",
    "ps",
    "pwd",
    "readlink",
    "rm",
    "rmdir",
    "sed",
    "seq",
    "sh",
    "sha256sum",
    "sleep",
    "sort",
    "stat",
    "tail",
    "tee",
    "test",
    "timeout",
    "top",
    "touch",
    "tr",
    "true",
    "uname",
    "uniq",
    "uptime",
    "usleep",
    "wc",
    "wget",
    "which",
    "whoami",
    "xargs",
    "yes",
];

/// The test image (`localhost/kadm-test/busybox:1`): busybox, the applets above as
/// symlinks, a root and a nobody user, a world-writable `/tmp`; `sh` by default.
pub fn busybox_test_image(busybox: &Path) -> ImageBuilder {
    let mut b = ImageBuilder::new(TEST_BUSYBOX_IMAGE)
        .file(busybox, "/bin/busybox", 0o755)
        .bytes(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        )
        .bytes("/etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644)
        .dir("/root", 0o700)
        .dir("/tmp", 0o1777)
        .dir("/var/www", 0o755)
        .env("PATH", PATH)
        .cmd(["sh"])
        .working_dir("/");
    for applet in TEST_APPLETS {
        b = b.symlink(&format!("/bin/{applet}"), "busybox");
    }
    b
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    fn layer_paths(image: &crate::OciImage) -> Vec<(String, Option<String>)> {
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&image.layer_gz[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        tar::Archive::new(&tar_bytes[..])
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    fn busybox_or_stand_in(dir: &Path) -> std::path::PathBuf {
        if Path::new(BUSYBOX_PATH).exists() {
            return BUSYBOX_PATH.into();
        }
        let p = dir.join("busybox");
        std::fs::write(&p, b"stand-in").unwrap();
        p
    }

    #[test]
    fn pause_image_runs_the_pause_script_with_busybox_sh() {
        let dir = tempfile::tempdir().unwrap();
        let image = pause_image(&busybox_or_stand_in(dir.path()))
            .build()
            .unwrap();
        assert_eq!(image.name, pause_image_name());
        let paths = layer_paths(&image);
        assert!(
            paths.contains(&("bin/sh".into(), Some("busybox".into()))),
            "{paths:?}"
        );
        assert!(paths.iter().any(|(p, _)| p == "pause"));
        let config: crate::oci::ImageConfig = serde_json::from_slice(&image.config_json).unwrap();
        assert_eq!(config.config.entrypoint, Some(vec!["/pause".to_string()]));
    }

    /// The script must end with status 0 on SIGTERM (and not hang): PID 1 of a pod ignores
    /// signals it has no handler for, so a missing trap would make every pod stop slow.
    #[test]
    fn pause_script_exits_zero_on_sigterm() {
        if !Path::new(BUSYBOX_PATH).exists() {
            eprintln!("skipped: {BUSYBOX_PATH} missing (install busybox-static)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("pause");
        std::fs::write(&script, PAUSE_SCRIPT).unwrap();
        let mut child = Command::new(BUSYBOX_PATH)
            .arg("sh")
            .arg(&script)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "pause must keep running"
        );
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        let exit = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("pause did not stop within 5s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(exit.code(), Some(0));
    }

    #[test]
    fn test_image_links_the_applets_and_defaults_to_sh() {
        let dir = tempfile::tempdir().unwrap();
        let image = busybox_test_image(&busybox_or_stand_in(dir.path()))
            .build()
            .unwrap();
        assert_eq!(image.name, TEST_BUSYBOX_IMAGE);
        let paths = layer_paths(&image);
        for applet in [
            "sh", "sleep", "httpd", "nc", "wget", "cat", "echo", "ls", "env", "dd", "head",
        ] {
            assert!(
                paths.contains(&(format!("bin/{applet}"), Some("busybox".into()))),
                "{applet} missing"
            );
        }
        let config: crate::oci::ImageConfig = serde_json::from_slice(&image.config_json).unwrap();
        assert_eq!(config.config.cmd, Some(vec!["sh".to_string()]));
        assert!(config.config.env.iter().any(|e| e.starts_with("PATH=")));
    }
}
