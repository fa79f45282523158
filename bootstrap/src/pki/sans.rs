//! Subject alternative names and the service-network arithmetic behind them.
//!
//! Clients verify a serving certificate against the name or IP they dialled, so the SAN lists
//! decide which addresses work at all: a missing `kubernetes.default.svc` breaks every pod that
//! talks to the API, a missing host IP breaks `kubectl` from outside.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// One subject alternative name.
///
/// Our own type rather than rcgen's `SanType` so callers do not depend on rcgen, and so names
/// can be compared (DNS names case-insensitively, via lowercasing at construction) when checking
/// whether an existing certificate still covers what the cluster needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl San {
    /// Reads an operator-supplied SAN: an IP address if it parses as one, else a DNS name.
    ///
    /// DNS names are checked here because rcgen only checks that they are ASCII; a typo such as
    /// `api .example.com` would otherwise produce a certificate no client can ever match.
    pub fn parse(s: &str) -> Result<San> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        San::dns(s)
    }

    /// A DNS SAN, validated and lowercased (DNS is case-insensitive; certificates compare
    /// lowercase).
    pub fn dns(name: &str) -> Result<San> {
        let invalid = |reason: &str| Error::InvalidSan {
            san: name.to_string(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > 253 {
            return Err(invalid("it is longer than 253 characters"));
        }
        for label in name.split('.') {
            if label.is_empty() {
                return Err(invalid("it has an empty label"));
            }
            if label.len() > 63 {
                return Err(invalid("a label is longer than 63 characters"));
            }
            if !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*')
            {
                return Err(invalid(
                    "only letters, digits, '-', '_', '*' and '.' are allowed",
                ));
            }
        }
        Ok(San::Dns(name.to_ascii_lowercase()))
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

/// The ClusterIP of the `kubernetes` service: the first address of the service network.
///
/// Pods reach the API through that IP, so the apiserver certificate must carry it; it is
/// computed the way Kubernetes allocates it (network address + 1) so both always agree. For a
/// dual-stack list (`10.96.0.0/12,fd00::/108`) the first network counts, as in kubeadm.
pub fn first_service_ip(cidr: &str) -> Result<IpAddr> {
    let invalid = |reason: &str| Error::InvalidCidr {
        cidr: cidr.to_string(),
        reason: reason.to_string(),
    };
    let first = cidr.split(',').next().unwrap_or_default().trim();
    let (addr, prefix) = first
        .split_once('/')
        .ok_or_else(|| invalid("missing '/<prefix length>'"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| invalid("the address part is not an ip address"))?;
    let prefix: u32 = prefix
        .parse()
        .map_err(|_| invalid("the prefix length is not a number"))?;
    match addr {
        IpAddr::V4(v4) => {
            if prefix > 31 {
                return Err(invalid(
                    "the prefix leaves no room for service ips (at most /31)",
                ));
            }
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let network = u32::from(v4) & mask;
            Ok(IpAddr::V4(Ipv4Addr::from(network + 1)))
        }
        IpAddr::V6(v6) => {
            if prefix > 127 {
                return Err(invalid(
                    "the prefix leaves no room for service ips (at most /127)",
                ));
            }
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            let network = u128::from(v6) & mask;
            Ok(IpAddr::V6(Ipv6Addr::from(network + 1)))
        }
    }
}

/// Appends `san` unless already present, keeping first-seen order so certificates list SANs
/// in a stable, readable order.
pub(crate) fn push_unique(sans: &mut Vec<San>, san: San) {
    if !sans.contains(&san) {
        sans.push(san);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_service_ip_of_default_cidr() {
        assert_eq!(first_service_ip("10.96.0.0/12").unwrap(), ip("10.96.0.1"));
    }

    #[test]
    fn first_service_ip_masks_host_bits() {
        assert_eq!(first_service_ip("10.100.3.7/12").unwrap(), ip("10.96.0.1"));
        assert_eq!(first_service_ip("172.20.0.0/16").unwrap(), ip("172.20.0.1"));
        assert_eq!(first_service_ip("0.0.0.0/0").unwrap(), ip("0.0.0.1"));
        assert_eq!(
            first_service_ip("192.168.1.0/31").unwrap(),
            ip("192.168.1.1")
        );
    }

    #[test]
    fn first_service_ip_ipv6_and_dual_stack() {
        assert_eq!(first_service_ip("fd00::/108").unwrap(), ip("fd00::1"));
        assert_eq!(
            first_service_ip(" 10.96.0.0/12 , fd00::/108").unwrap(),
            ip("10.96.0.1")
        );
    }

    #[test]
    fn first_service_ip_rejects_garbage() {
        for bad in [
            "",
            "10.96.0.0",
            "10.96.0.0/",
            "10.96.0.0/33",
            "10.96.0.1/32",
            "fd00::/128",
            "ten/12",
            "10.96.0.0/x",
        ] {
            let err = first_service_ip(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidCidr { .. }),
                "{bad:?} gave {err}"
            );
        }
    }

    #[test]
    fn san_parse_distinguishes_ip_and_dns() {
        assert_eq!(San::parse("10.0.0.5").unwrap(), San::Ip(ip("10.0.0.5")));
        assert_eq!(San::parse("::1").unwrap(), San::Ip(ip("::1")));
        assert_eq!(
            San::parse(" API.Example.com ").unwrap(),
            San::Dns("api.example.com".into())
        );
        assert_eq!(
            San::parse("*.apps.example.com").unwrap(),
            San::Dns("*.apps.example.com".into())
        );
        for bad in ["", "api example.com", "a..b", "bad/slash", "ünï.com"] {
            assert!(San::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
