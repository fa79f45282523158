//! Facts about this host, read from /proc, /sys, /etc and statvfs: what the Node reports as
//! capacity, nodeInfo and addresses, and what the pressure conditions measure.

use std::net::IpAddr;
use std::path::Path;

use crate::error::{Error, Result};

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: path.into(),
        source,
    })
}

/// The kernel's host name.
pub fn hostname() -> Result<String> {
    Ok(read("/proc/sys/kernel/hostname")?.trim().to_string())
}

/// `uname -r`.
pub fn kernel_version() -> Result<String> {
    Ok(read("/proc/sys/kernel/osrelease")?.trim().to_string())
}

/// The boot id, new at every boot (the node's `bootID`: a change tells controllers the
/// node rebooted).
pub fn boot_id() -> Result<String> {
    Ok(read("/proc/sys/kernel/random/boot_id")?.trim().to_string())
}

/// `/etc/machine-id`, empty when the host has none.
pub fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The DMI product UUID, empty when unreadable (containers, some VMs).
pub fn system_uuid() -> String {
    std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `PRETTY_NAME` of an os-release file's content.
pub fn os_image_from(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// `PRETTY_NAME` from /etc/os-release (falling back to /usr/lib/os-release).
pub fn os_image() -> String {
    let content = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    os_image_from(&content)
}

/// Go's name for this architecture, as Kubernetes reports it (`amd64`, `arm64`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Logical CPUs.
pub fn cpu_count() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Memory figures from /proc/meminfo, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

/// Parses /proc/meminfo content.
pub fn memory_from(meminfo: &str) -> Option<Memory> {
    let field = |name: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    Some(Memory {
        total: field("MemTotal")?,
        available: field("MemAvailable")?,
    })
}

pub fn memory() -> Result<Memory> {
    memory_from(&read("/proc/meminfo")?)
        .ok_or_else(|| Error::Host("/proc/meminfo has no MemTotal/MemAvailable".into()))
}

/// Size and free space of the filesystem holding a path, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filesystem {
    pub capacity: u64,
    pub available: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// statvfs of `path` (the closest existing ancestor, so a not-yet-created directory
/// still measures the disk it will live on).
pub fn filesystem(path: &Path) -> Result<Filesystem> {
    let mut p = path;
    while !p.exists() {
        p = p.parent().unwrap_or(Path::new("/"));
    }
    let st = nix::sys::statvfs::statvfs(p).map_err(|e| Error::Io {
        action: "statvfs",
        path: p.to_path_buf(),
        source: e.into(),
    })?;
    let frsize = st.fragment_size();
    Ok(Filesystem {
        capacity: st.blocks().saturating_mul(frsize),
        available: st.blocks_available().saturating_mul(frsize),
        inodes: st.files(),
        inodes_free: st.files_available(),
    })
}

/// Process ids: the limit and how many are in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pids {
    pub max: u64,
    pub running: u64,
}

pub fn pids() -> Result<Pids> {
    let max: u64 = read("/proc/sys/kernel/pid_max")?
        .trim()
        .parse()
        .map_err(|_| Error::Host("/proc/sys/kernel/pid_max is not a number".into()))?;
    // Threads use pids too; /proc/loadavg's fourth field counts every task.
    let loadavg = read("/proc/loadavg")?;
    let running = loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split('/').nth(1))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Host("/proc/loadavg has no task count".into()))?;
    Ok(Pids { max, running })
}

/// The interface of the IPv4 default route in /proc/net/route content.
pub fn default_route_interface(route: &str) -> Option<String> {
    route.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let iface = f.next()?;
        let dest = f.next()?;
        let _gw = f.next()?;
        let _flags = f.next()?;
        let mask = l.split_whitespace().nth(7)?;
        (dest == "00000000" && mask == "00000000").then(|| iface.to_string())
    })
}

/// The node's InternalIP when no `--node-ip` is given: the IPv4 address of the default
/// route's interface, else the first global address of any interface.
pub fn default_node_ip() -> Result<IpAddr> {
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let iface = default_route_interface(&route);
    let addrs: Vec<(String, IpAddr)> = nix::ifaddrs::getifaddrs()
        .map_err(|e| Error::Host(format!("list interface addresses: {e}")))?
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in().map(|s| IpAddr::V4(s.ip()))?;
            Some((a.interface_name, ip))
        })
        .filter(|(_, ip)| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    if let Some(iface) = iface
        && let Some((_, ip)) = addrs.iter().find(|(n, _)| *n == iface)
    {
        return Ok(*ip);
    }
    addrs.first().map(|(_, ip)| *ip).ok_or_else(|| {
        Error::Host(
            "no non-loopback IPv4 address found; give the node's address with --node-ip".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes() {
        let m = memory_from(
            "MemTotal:       24682416 kB\nMemFree:  1 kB\nMemAvailable:   24080864 kB\n",
        )
        .expect("parse");
        assert_eq!(m.total, 24_682_416 * 1024);
        assert_eq!(m.available, 24_080_864 * 1024);
        assert!(memory_from("MemFree: 1 kB\n").is_none());
    }

    #[test]
    fn os_release_pretty_name() {
        assert_eq!(
            os_image_from(
                "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
            ),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(os_image_from(""), "Linux");
    }

    #[test]
    fn default_route_is_found() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\n"), None);
    }

    #[test]
    fn this_host_has_facts() {
        assert!(!kernel_version().expect("kernel").is_empty());
        assert_eq!(boot_id().expect("boot id").len(), 36);
        assert!(memory().expect("memory").total > 0);
        let fs = filesystem(Path::new("/nonexistent/dir/below/root")).expect("statvfs");
        assert!(fs.capacity >= fs.available && fs.capacity > 0);
        let p = pids().expect("pids");
        assert!(p.max > p.running && p.running > 0);
    }
}
