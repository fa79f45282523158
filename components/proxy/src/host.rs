//! The host boundary: `nft`, `conntrack` and `ip route` behind traits, with the real
//! implementations (exec, optionally inside a network namespace through
//! `nsenter --net=`) and recording fakes for unit tests.
//!
//! `nsenter --net` is used rather than `ip netns exec`, which remounts `/sys` and hides
//! the cgroup mounts (docs: lab-hosts item 2).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use kadm_base::command::Output;
use kadm_base::command::RunError;

use crate::cidr::Cidr4;
use crate::error::{Error, Result};
use crate::model::Protocol;

/// Longest a host command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies nftables scripts.
pub trait Nft: Send + 'static {
    /// Runs `nft -f -` with `script` as one transaction.
    fn apply(&self, script: &str) -> Result<()>;
}

/// Which conntrack entries to delete.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConntrackFilter {
    pub protocol: Protocol,
    /// The original destination address (a ClusterIP); `None` for NodePorts.
    pub orig_dst: Option<Ipv4Addr>,
    pub orig_port_dst: u16,
    /// The endpoint the entry was DNAT'd to; `None` deletes every entry for the address
    /// and port (e.g. entries cached while the Service had no endpoints).
    pub dst_nat: Option<Ipv4Addr>,
}

impl ConntrackFilter {
    /// The `conntrack -D` arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "-D".to_owned(),
            "-p".to_owned(),
            self.protocol.as_str().to_owned(),
        ];
        if let Some(ip) = self.orig_dst {
            a.extend(["--orig-dst".to_owned(), ip.to_string()]);
        }
        a.extend(["--orig-port-dst".to_owned(), self.orig_port_dst.to_string()]);
        if let Some(ip) = self.dst_nat {
            a.extend(["--dst-nat".to_owned(), ip.to_string()]);
        }
        a
    }
}

/// Deletes conntrack entries.
pub trait Conntrack: Send + 'static {
    fn delete(&self, filter: &ConntrackFilter) -> Result<()>;
}

/// The routes kadm keeps for address ranges that must never leave the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `unreachable CIDR`: dropped with an ICMP error. Right for pod CIDRs, whose live
    /// parts have more specific routes.
    Unreachable,
    /// `CIDR dev lo`: for the service range. Host processes must still be able to
    /// connect to ClusterIPs (the OUTPUT hook DNATs them afterwards); an `unreachable`
    /// route makes `connect()` fail before nftables sees the packet, while a route to
    /// `lo` keeps undelivered packets on the machine.
    Loopback,
}

/// Reads and changes the routing table.
pub trait Routes: Send + 'static {
    /// Whether exactly this route exists.
    fn exists(&self, cidr: Cidr4, kind: RouteKind) -> Result<bool>;
    fn add(&self, cidr: Cidr4, kind: RouteKind) -> Result<()>;
    fn delete(&self, cidr: Cidr4, kind: RouteKind) -> Result<()>;
}

/// Runs the real tools, in the current network namespace or in `netns`.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    /// A network namespace file such as `/run/netns/NAME`.
    pub netns: Option<PathBuf>,
}

impl Exec {
    pub fn in_netns(path: impl Into<PathBuf>) -> Self {
        Self {
            netns: Some(path.into()),
        }
    }

    /// Runs `program args` (inside the namespace if set) with `stdin`, bounded in time.
    pub fn run(&self, program: &str, args: &[String], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.args(args);
        run_bounded(cmd, stdin, COMMAND_TIMEOUT)
    }
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<Output> {
    let command = format!("{cmd:?}").replace('"', "");
    // nft reads all of stdin before acting, so writing it whole cannot deadlock on its
    // (small) output.
    kadm_base::command::run_bounded(&mut cmd, stdin, timeout).map_err(|e| match e {
        RunError::Timeout(timeout) => Error::Timeout { command, timeout },
        RunError::Spawn(source) | RunError::Wait(source) => Error::Spawn { command, source },
    })
}

fn check(command: &str, out: Output) -> Result<Output> {
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: command.to_owned(),
            status: out
                .status
                .code()
                .map_or_else(|| "killed".to_owned(), |c| format!("exit code {c}")),
            stderr: out.stderr.trim().to_owned(),
        })
    }
}

impl Nft for Exec {
    fn apply(&self, script: &str) -> Result<()> {
        let out = self.run("nft", &["-f".to_owned(), "-".to_owned()], Some(script))?;
        check("nft -f -", out).map(drop)
    }
}

impl Conntrack for Exec {
    fn delete(&self, filter: &ConntrackFilter) -> Result<()> {
        let args = filter.args();
        let out = self.run("conntrack", &args, None)?;
        // conntrack exits 1 when nothing matched; that is success here.
        if !out.status.success() && out.stderr.contains("0 flow entries have been deleted") {
            return Ok(());
        }
        check(&format!("conntrack {}", args.join(" ")), out).map(drop)
    }
}

fn route_args(verb: &str, cidr: Cidr4, kind: RouteKind) -> Vec<String> {
    let mut a = vec!["-4".to_owned(), "route".to_owned(), verb.to_owned()];
    match kind {
        RouteKind::Unreachable => a.extend(["unreachable".to_owned(), cidr.to_string()]),
        RouteKind::Loopback => a.extend([cidr.to_string(), "dev".to_owned(), "lo".to_owned()]),
    }
    a
}

impl Routes for Exec {
    fn exists(&self, cidr: Cidr4, kind: RouteKind) -> Result<bool> {
        let args = [
            "-4",
            "route",
            "show",
            "exact",
            &cidr.to_string(),
            "table",
            "main",
        ]
        .map(str::to_owned);
        let out = check("ip route show", self.run("ip", &args, None)?)?;
        let c = cidr.to_string();
        Ok(out.stdout.lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match kind {
                RouteKind::Unreachable => {
                    words.first() == Some(&"unreachable") && words.get(1) == Some(&c.as_str())
                }
                RouteKind::Loopback => {
                    words.first() == Some(&c.as_str())
                        && words.windows(2).any(|w| w == ["dev", "lo"])
                }
            }
        }))
    }

    fn add(&self, cidr: Cidr4, kind: RouteKind) -> Result<()> {
        let args = route_args("add", cidr, kind);
        check(
            &format!("ip {}", args.join(" ")),
            self.run("ip", &args, None)?,
        )
        .map(drop)
    }

    fn delete(&self, cidr: Cidr4, kind: RouteKind) -> Result<()> {
        let args = route_args("del", cidr, kind);
        check(
            &format!("ip {}", args.join(" ")),
            self.run("ip", &args, None)?,
        )
        .map(drop)
    }
}

/// A fake host that records every call; `fail_nft` makes the next applies fail.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub fail_nft: Arc<Mutex<bool>>,
    pub routes: Arc<Mutex<Vec<(Cidr4, RouteKind)>>>,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Nft(String),
    Conntrack(ConntrackFilter),
    RouteAdd(Cidr4, RouteKind),
    RouteDel(Cidr4, RouteKind),
}

impl Recorder {
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("recorder lock"))
    }
}

impl Nft for Recorder {
    fn apply(&self, script: &str) -> Result<()> {
        self.calls
            .lock()
            .expect("recorder lock")
            .push(Call::Nft(script.to_owned()));
        if *self.fail_nft.lock().expect("recorder lock") {
            return Err(Error::Command {
                command: "nft -f -".into(),
                status: "exit code 1".into(),
                stderr: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl Conntrack for Recorder {
    fn delete(&self, filter: &ConntrackFilter) -> Result<()> {
        self.calls
            .lock()
            .expect("recorder lock")
            .push(Call::Conntrack(filter.clone()));
        Ok(())
    }
}

impl Routes for Recorder {
    fn exists(&self, cidr: Cidr4, kind: RouteKind) -> Result<bool> {
        Ok(self
            .routes
            .lock()
            .expect("recorder lock")
            .contains(&(cidr, kind)))
    }
    fn add(&self, cidr: Cidr4, kind: RouteKind) -> Result<()> {
        self.calls
            .lock()
            .expect("recorder lock")
            .push(Call::RouteAdd(cidr, kind));
        self.routes
            .lock()
            .expect("recorder lock")
            .push((cidr, kind));
        Ok(())
    }
    fn delete(&self, cidr: Cidr4, kind: RouteKind) -> Result<()> {
        self.calls
            .lock()
            .expect("recorder lock")
            .push(Call::RouteDel(cidr, kind));
        self.routes
            .lock()
            .expect("recorder lock")
            .retain(|r| *r != (cidr, kind));
        Ok(())
    }
}
