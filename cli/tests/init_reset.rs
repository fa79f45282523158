//! `kadm init` and `kadm reset` for real: a control plane (real etcd, real
//! kadm-apiserver, the host supervisor) inside a temporary host tree on free
//! loopback ports, so the test never touches the machine's own /etc or ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Host {
    root: tempfile::TempDir,
    ports: [u16; 6],
}

impl Host {
    fn new() -> Host {
        let mut ports = [0u16; 6];
        for i in 0..ports.len() {
            let mut candidate = free_port();
            while ports.contains(&candidate) {
                candidate = free_port();
            }
            ports[i] = candidate;
        }
        Host {
            root: tempfile::tempdir().expect("tempdir"),
            ports,
        }
    }

    fn flags(&self) -> Vec<String> {
        let [api, client, peer, metrics, cm, sched] = self.ports;
        vec![
            format!("--prefix={}", self.root.path().display()),
            format!("--apiserver-port={api}"),
            format!("--etcd-client-port={client}"),
            format!("--etcd-peer-port={peer}"),
            format!("--etcd-metrics-port={metrics}"),
            format!("--controller-manager-port={cm}"),
            format!("--scheduler-port={sched}"),
        ]
    }

    fn kadm(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if args.first().is_some_and(|a| *a == "certs") {
            all.extend(self.flags());
        } else {
            all.splice(1..1, self.flags());
        }
        Command::new(env!("CARGO_BIN_EXE_kadm"))
            .args(&all)
            .env("HOME", self.root.path())
            .output()
            .expect("run kadm")
    }

    fn etc(&self) -> PathBuf {
        self.root.path().join("etc/kadm")
    }

    fn state(&self) -> serde_json::Value {
        let s = std::fs::read_to_string(self.root.path().join("run/kadm/supervisor.json"))
            .expect("state file");
        serde_json::from_str(&s).expect("state json")
    }

    fn component_pid(&self, name: &str) -> u32 {
        self.state()["components"]
            .as_array()
            .expect("components")
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["pid"].as_u64())
            .expect("pid") as u32
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        // The dispatcher picks kubectl 1.33 for kadm's v1.33 API: protobuf bodies on typed creates.
        Command::new("/usr/bin/kubectl")
            .arg(format!(
                "--kubeconfig={}",
                self.etc().join("admin.conf").display()
            ))
            .args(args)
            .output()
            .expect("run kubectl")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Whatever happened, stop what this test started (by the pids kadm recorded).
        let _ = self.kadm(&["reset", "--yes"]);
    }
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "failed: {out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn binaries_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kadm"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

#[test]
fn init_restart_reinit_and_reset_leave_nothing_behind() {
    let bin = binaries_dir();
    assert!(
        bin.join("kadm-apiserver").exists(),
        "build the workspace binaries first (`cargo build --workspace --bins`, as `make test` does)"
    );
    let host = Host::new();
    let bin_flag = format!("--binaries-dir={}", bin.display());
    let out = ok(&host.kadm(&[
        "init",
        &bin_flag,
        "--advertise-address=127.0.0.1",
        "--node-name=it-node",
    ]));
    assert!(
        out.contains("control plane of cluster kadm is ready"),
        "{out}"
    );
    assert!(host.etc().join("cluster.yaml").exists());
    for f in [
        "pki/ca.key",
        "pki/apiserver.key",
        "pki/etcd/server.key",
        "admin.conf",
    ] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(host.etc().join(f))
                .expect(f)
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{f} must be private");
    }

    // The API answers real kubectl.
    let ns = ok(&host.kubectl(&["get", "ns", "-o", "name"]));
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{want}")), "{ns}");
    }
    ok(&host.kubectl(&[
        "create",
        "configmap",
        "keep",
        "-n",
        "default",
        "--from-literal=a=b",
    ]));

    // A killed apiserver is restarted by the supervisor and the data is still there.
    let old = host.component_pid("kadm-apiserver");
    nix_kill(old);
    let t0 = Instant::now();
    loop {
        let o = host.kubectl(&[
            "get",
            "cm",
            "keep",
            "-n",
            "default",
            "-o",
            "jsonpath={.data.a}",
        ]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout) == "b" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "apiserver not back after 15s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(host.component_pid("kadm-apiserver"), old);

    // Re-running init on an initialized host changes nothing.
    let ca_before = std::fs::read(host.etc().join("pki/ca.crt")).expect("ca");
    let again = ok(&host.kadm(&[
        "init",
        &bin_flag,
        "--advertise-address=127.0.0.1",
        "--node-name=it-node",
    ]));
    assert!(again.contains("already initialized"), "{again}");
    assert_eq!(
        std::fs::read(host.etc().join("pki/ca.crt")).expect("ca"),
        ca_before
    );

    // Certificates are listed with their expiry.
    let certs = ok(&host.kadm(&["certs", "check-expiration"]));
    assert!(
        certs.contains("apiserver") && certs.contains("364d") && certs.contains("etcd-ca"),
        "{certs}"
    );

    // Reset stops every component and removes kadm's directories.
    let pids: Vec<u32> = host.state()["components"]
        .as_array()
        .expect("c")
        .iter()
        .filter_map(|c| c["pid"].as_u64())
        .map(|p| p as u32)
        .collect();
    let supervisor = host.state()["pid"].as_u64().expect("supervisor pid") as u32;
    ok(&host.kadm(&["reset", "--yes"]));
    for pid in pids.iter().chain([supervisor].iter()) {
        let t0 = Instant::now();
        while alive(*pid) && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!alive(*pid), "pid {pid} still running after reset");
    }
    for d in [
        "etc/kadm",
        "var/lib/kadm",
        "run/kadm",
        "usr/local/bin/kadm-apiserver",
    ] {
        assert!(!host.root.path().join(d).exists(), "{d} left behind");
    }
    // Reset twice is fine.
    ok(&host.kadm(&["reset", "--yes"]));
}

#[test]
fn init_refuses_busy_ports_and_changes_nothing() {
    let host = Host::new();
    let _busy = TcpListener::bind(("0.0.0.0", host.ports[0])).expect("occupy apiserver port");
    let bin_flag = format!("--binaries-dir={}", binaries_dir().display());
    let o = host.kadm(&[
        "init",
        &bin_flag,
        "--advertise-address=127.0.0.1",
        "--node-name=it-node",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("port {} is already in use", host.ports[0])),
        "{err}"
    );
    assert!(
        !host.etc().join("pki").exists(),
        "preflight failure must not write anything"
    );
}

fn nix_kill(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}
