//! `kadm secrets rotate-key` for real: `kadm init` in a temporary host tree (real etcd, real
//! kadm-apiserver under the host supervisor, free loopback ports), Secrets written through
//! kubectl, and the bytes in etcd read back with etcdctl after each rotation.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Host {
    root: tempfile::TempDir,
    /// apiserver, etcd client, peer, metrics, controller-manager, scheduler.
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

    /// `kadm <args…> <host flags>`.
    fn kadm(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kadm"))
            .args(args)
            .args(self.flags())
            .env("HOME", self.root.path())
            .output()
            .expect("run kadm")
    }

    fn etc(&self) -> PathBuf {
        self.root.path().join("etc/kadm")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/kubectl")
            .arg(format!(
                "--kubeconfig={}",
                self.etc().join("admin.conf").display()
            ))
            .args(args)
            .env("HOME", self.root.path())
            .output()
            .expect("run kubectl")
    }

    /// The raw value of an etcd key, with the apiserver's etcd client certificate.
    fn etcd_value(&self, key: &str) -> Vec<u8> {
        let pki = self.etc().join("pki");
        let out = Command::new("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{}", self.ports[1]))
            .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join("apiserver-etcd-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                pki.join("apiserver-etcd-client.key").display()
            ))
            .arg("--command-timeout=10s")
            .args(["get", key, "--print-value-only"])
            .output()
            .expect("run etcdctl");
        let mut v = ok(&out).into_bytes();
        if v.last() == Some(&b'\n') {
            v.pop();
        }
        v
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.etc().join("encryption-config.yaml")).expect("config")
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Whatever happened, stop what this test started (by the pids kadm recorded).
        let _ = Command::new(env!("CARGO_BIN_EXE_kadm"))
            .args(["reset", "--yes"])
            .args(self.flags())
            .env("HOME", self.root.path())
            .output();
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

const PLAINTEXT: &str = "rotate-me-plaintext";

fn assert_stored_with(host: &Host, name: &str, key: &str) {
    let raw = host.etcd_value(&format!("/registry/secrets/default/{name}"));
    let prefix = format!("k8s:enc:aescbc:v1:{key}:");
    assert!(
        raw.starts_with(prefix.as_bytes()),
        "{name} should start with {prefix}: {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(40)])
    );
    assert!(
        !raw.windows(PLAINTEXT.len())
            .any(|w| w == PLAINTEXT.as_bytes()),
        "{name} holds the plaintext"
    );
    let got = ok(&host.kubectl(&[
        "get",
        "secret",
        name,
        "-n",
        "default",
        "-o",
        "go-template={{.data.password | base64decode}}",
    ]));
    assert_eq!(got, PLAINTEXT);
}

/// The names of the aescbc keys in the config, in order.
fn key_names(config: &str) -> Vec<String> {
    config
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("name: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn init_encrypts_secrets_and_rotate_key_reencrypts_them() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kadm"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    assert!(
        bin.join("kadm-apiserver").exists(),
        "build the workspace binaries first (`cargo build --workspace --bins`, as `make test` does)"
    );
    let host = Host::new();
    // Only what Secrets need (etcd + apiserver): installing and running the other
    // components would double the test's time on a debug build without testing more.
    let bins = tempfile::tempdir().expect("tempdir");
    for b in ["kadm", "kadm-apiserver"] {
        std::os::unix::fs::symlink(bin.join(b), bins.path().join(b)).expect("symlink");
    }
    let bin_flag = format!("--binaries-dir={}", bins.path().display());
    ok(&host.kadm(&[
        "init",
        &bin_flag,
        "--advertise-address=127.0.0.1",
        "--node-name=it-node",
    ]));

    // init wrote one private aescbc key and runs the apiserver with it.
    let path = host.etc().join("encryption-config.yaml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("config").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(key_names(&host.config()), vec!["key1"]);
    let supervisor = std::fs::read_to_string(host.etc().join("supervisor.yaml")).expect("sup");
    assert!(
        supervisor.contains(&format!("--encryption-provider-config={}", path.display())),
        "{supervisor}"
    );
    for name in ["s1", "s2"] {
        ok(&host.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            "default",
            &format!("--from-literal=password={PLAINTEXT}"),
        ]));
        assert_stored_with(&host, name, "key1");
    }

    // A rotation: key2 writes, every secret is rewritten with it, key1 is gone.
    let out = ok(&host.kadm(&["secrets", "rotate-key"]));
    for want in [
        "added aescbc key key2",
        "(key1 kept for reading)",
        "restarted kadm-apiserver",
        "rewrote 2 secrets with aescbc key key2",
        "removed the old keys key1",
        "secrets are encrypted with aescbc key key2; removed key1",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert_eq!(key_names(&host.config()), vec!["key2"]);
    for name in ["s1", "s2"] {
        assert_stored_with(&host, name, "key2");
    }

    // A rotation that stopped after adding its key (key3 first, key2 still there) is
    // finished by the next run instead of starting another.
    let config = host.config();
    let key2_line = config
        .lines()
        .position(|l| l.contains("name: key2"))
        .expect("key2");
    let mut lines: Vec<String> = config.lines().map(str::to_string).collect();
    let indent = &lines[key2_line][..lines[key2_line].find('-').expect("dash")];
    let indent = indent.to_string();
    lines.insert(
        key2_line,
        format!(
            "{indent}  secret: {}",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        ),
    );
    lines.insert(key2_line, format!("{indent}- name: key3"));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    assert_eq!(key_names(&host.config()), vec!["key3", "key2"]);
    let out = ok(&host.kadm(&["secrets", "rotate-key"]));
    assert!(
        out.contains("aescbc key key3 already writes and key2 still read: finishing that rotation"),
        "{out}"
    );
    assert!(out.contains("removed the old keys key2"), "{out}");
    assert_eq!(key_names(&host.config()), vec!["key3"]);
    for name in ["s1", "s2"] {
        assert_stored_with(&host, name, "key3");
    }

    // Reset removes the key file with the rest of /etc/kadm.
    ok(&host.kadm(&["reset", "--yes"]));
    assert!(!path.exists());
}
