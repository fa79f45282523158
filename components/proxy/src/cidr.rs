//! IPv4 CIDR blocks as given in flags (`10.96.0.0/12`).

use std::net::Ipv4Addr;

/// An IPv4 network, normalized to its first address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr4 {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr4 {
    /// Parses `a.b.c.d/n` (or a bare address as /32); host bits are cleared.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let prefix: u8 = p.trim().parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Some(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(ip) & mask == u32::from(self.addr)
    }
}

impl std::fmt::Display for Cidr4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses a comma-separated list, keeping the IPv4 entries; IPv6 entries are skipped
/// because only the `ip` family is programmed.
pub fn parse_list_v4(s: &str) -> Result<Vec<Cidr4>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains(':') {
            continue;
        }
        out.push(
            Cidr4::parse(part)
                .ok_or_else(|| format!("{part:?} is not an IPv4 CIDR such as 10.96.0.0/12"))?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let c = Cidr4::parse("10.96.0.1/12").expect("cidr");
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert!(c.contains("10.111.255.255".parse().expect("ip")));
        assert!(!c.contains("10.112.0.0".parse().expect("ip")));
        assert!(Cidr4::parse("10.0.0.0/33").is_none());
        assert_eq!(
            parse_list_v4("10.244.0.0/16, fd00::/64").expect("list"),
            vec![Cidr4::parse("10.244.0.0/16").expect("cidr")]
        );
        assert!(parse_list_v4("nope").is_err());
    }
}
