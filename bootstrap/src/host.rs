//! Facts about this host that init needs: its name and the address others reach it by.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// The kernel's host name, lowercased (node names are DNS subdomains).
pub fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The IPv4 address of the interface holding the default route; loopback when there is none.
/// Reads the routing table with `ip -j`; no packet is sent.
pub fn default_address() -> IpAddr {
    let dev = Command::new("ip")
        .args(["-j", "-4", "route", "show", "default"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| {
            v.get(0)
                .and_then(|r| r.get("dev"))
                .and_then(|d| d.as_str())
                .map(str::to_string)
        });
    let Some(dev) = dev else {
        return IpAddr::V4(Ipv4Addr::LOCALHOST);
    };
    Command::new("ip")
        .args(["-j", "-4", "addr", "show", "dev", &dev])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| {
            v.get(0)?
                .get("addr_info")?
                .as_array()?
                .iter()
                .find_map(|a| a.get("local")?.as_str()?.parse::<IpAddr>().ok())
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}
