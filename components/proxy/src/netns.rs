//! Throw-away network namespaces for the real-nftables tests and the benchmark: created
//! with `ip netns add`, entered with `nsenter --net=` (never `ip netns exec`, which
//! remounts `/sys`), deleted on drop even when a test fails. Nothing touches the root
//! namespace's nftables or routes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::host::{Exec, Output, run_bounded};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace that is deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `kadm-<tag>-<pid>-<n>` with `lo` up.
    pub fn create(tag: &str) -> Result<Self> {
        let name = format!(
            "kadm-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.run("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `/run/netns/<name>`, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The host tools, run inside this namespace.
    pub fn exec(&self) -> Exec {
        Exec::in_netns(self.path())
    }

    /// Runs a command inside the namespace and fails on a non-zero exit.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let out = self.exec().run(program, &args, None)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Command {
                command: format!("{program} {} in {}", args.join(" "), self.name),
                status: format!("{:?}", out.status.code()),
                stderr: out.stderr,
            })
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete the network namespace");
        }
    }
}

/// Runs `ip ARGS` in the current namespace (only to add and delete namespaces and move
/// links out of it).
pub fn ip(args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    let out = run_bounded(cmd, None, Duration::from_secs(10))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: format!("ip {}", args.join(" ")),
            status: format!("{:?}", out.status.code()),
            stderr: out.stderr,
        })
    }
}

/// Connects `a` and `b` with a veth pair created directly inside them (the root
/// namespace never holds either end).
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_addr: &str,
    b: &Netns,
    b_if: &str,
    b_addr: &str,
) -> Result<()> {
    ip(&[
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ])?;
    a.run("ip", &["addr", "add", a_addr, "dev", a_if])?;
    a.run("ip", &["link", "set", a_if, "up"])?;
    b.run("ip", &["addr", "add", b_addr, "dev", b_if])?;
    b.run("ip", &["link", "set", b_if, "up"])?;
    Ok(())
}

/// Whether this process may create network namespaces and run nft (root with the tools).
pub fn available() -> bool {
    let uid_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    uid_root
        && ["/usr/sbin/nft", "/usr/bin/nsenter", "/usr/sbin/conntrack"]
            .iter()
            .all(|p| std::path::Path::new(p).exists())
}
