//! The address and port ranges Services are given values from, and how a free value is
//! picked: Kubernetes' rules (network and IPv4 broadcast addresses never handed out;
//! random picks from the upper band first, so the lower band stays free for users who
//! choose their own IP or port — KEP-3070 and KEP-3668).

use std::collections::HashSet;
use std::net::IpAddr;

use rand::Rng;

/// Random tries before a pick falls back to scanning for a free value.
const RANDOM_TRIES: usize = 64;
/// IPv6 ranges are capped at this many addresses, as Kubernetes' bitmap allocator is.
const MAX_V6_SIZE: u128 = 1 << 16;

/// A service CIDR such as `10.96.0.0/12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRange {
    cidr: String,
    base: u128,
    /// Addresses in the CIDR (capped for IPv6).
    size: u128,
    v6: bool,
}

impl IpRange {
    pub fn parse(cidr: &str) -> Result<IpRange, String> {
        let cidr = cidr.trim();
        let (ip, bits) = cidr.split_once('/').ok_or_else(|| {
            format!("invalid service cidr {cidr:?}: want an address/prefix such as 10.96.0.0/12")
        })?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|e| format!("invalid service cidr {cidr:?}: {e}"))?;
        let bits: u32 = bits
            .parse()
            .map_err(|e| format!("invalid service cidr {cidr:?}: {e}"))?;
        let (width, value, v6) = match ip {
            IpAddr::V4(a) => (32, u128::from(u32::from(a)), false),
            IpAddr::V6(a) => (128, u128::from(a), true),
        };
        // At least 4 addresses (two usable beyond network and broadcast).
        if bits > width - 2 {
            return Err(format!(
                "invalid service cidr {cidr:?}: the prefix /{bits} is too small for services; use /{} or shorter",
                width - 2
            ));
        }
        let host_bits = width - bits;
        let mask = if host_bits >= 128 {
            0
        } else {
            !((1u128 << host_bits) - 1)
        };
        let base = value & mask;
        let size = if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        };
        let size = if v6 { size.min(MAX_V6_SIZE) } else { size };
        Ok(IpRange {
            cidr: format!("{}/{bits}", to_ip(base, v6)),
            base,
            size,
            v6,
        })
    }

    /// The CIDR as Kubernetes prints it in errors.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    pub fn family(&self) -> &'static str {
        if self.v6 { "IPv6" } else { "IPv4" }
    }

    /// Offsets that may be handed out: 1 (after the network address) up to the last
    /// address, or the one before it for IPv4 (broadcast).
    fn usable(&self) -> (u128, u128) {
        let last = if self.v6 {
            self.size - 1
        } else {
            self.size - 2
        };
        (1, last)
    }

    /// The first usable address: the `kubernetes` Service's.
    pub fn first(&self) -> IpAddr {
        to_ip(self.base + 1, self.v6)
    }

    /// The offset of `ip`, when it may be handed out.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        let value = match (ip, self.v6) {
            (IpAddr::V4(a), false) => u128::from(u32::from(a)),
            (IpAddr::V6(a), true) => u128::from(a),
            _ => return None,
        };
        let off = value.checked_sub(self.base)?;
        let (lo, hi) = self.usable();
        (lo..=hi).contains(&off).then_some(off)
    }

    pub fn at(&self, offset: u128) -> IpAddr {
        to_ip(self.base + offset, self.v6)
    }

    /// A free address for a Service that asked for none, or `None` when the range is
    /// full. `taken` holds the addresses known to be allocated; the first address is
    /// kept for the `kubernetes` Service.
    pub fn pick(&self, taken: &HashSet<IpAddr>) -> Option<IpAddr> {
        let (lo, hi) = self.usable();
        // The first address is never handed out dynamically.
        let lo = lo + 1;
        let band = band_offset(hi - lo + 1, 16, 256, 16);
        let free = |off: u128| !taken.contains(&self.at(off));
        pick_in(lo, hi, band, free).map(|off| self.at(off))
    }
}

fn to_ip(value: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(value.into())
    } else {
        IpAddr::V4((value as u32).into())
    }
}

/// Size of the lower band Kubernetes keeps for requested values: `size/step` bounded to
/// `[min, max]`, none when the range is smaller than `min`.
fn band_offset(size: u128, min: u128, max: u128, step: u128) -> u128 {
    if size < min {
        return 0;
    }
    (size / step).clamp(min, max)
}

/// A free offset in `[lo, hi]`: random tries in the upper band (`lo + band ..= hi`),
/// then the lower band, then a scan from a random start over the whole range.
fn pick_in(lo: u128, hi: u128, band: u128, free: impl Fn(u128) -> bool) -> Option<u128> {
    if hi < lo {
        return None;
    }
    let mut rng = rand::rng();
    let upper = lo + band;
    for (from, to) in [(upper, hi), (lo, upper.saturating_sub(1).min(hi))] {
        if to < from {
            continue;
        }
        for _ in 0..RANDOM_TRIES {
            let off = rng.random_range(from..=to);
            if free(off) {
                return Some(off);
            }
        }
    }
    let span = hi - lo + 1;
    let start = rng.random_range(0..span);
    // Bounded: at most `span` checks, and span is at most 2^24 for a /8 or 2^16 for IPv6.
    (0..span)
        .map(|i| lo + (start + i) % span)
        .find(|&off| free(off))
}

/// A node port range such as `30000-32767` (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange {
    pub base: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let s = s.trim();
        let bad = |why: &str| {
            format!("invalid node port range {s:?}: {why}; use for example 30000-32767")
        };
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a, b),
            None => (s, s),
        };
        let base: u16 = a.trim().parse().map_err(|_| bad("not a port"))?;
        let last: u16 = b.trim().parse().map_err(|_| bad("not a port"))?;
        if base == 0 || last < base {
            return Err(bad("the range is empty"));
        }
        Ok(PortRange { base, last })
    }

    pub fn contains(&self, port: i64) -> bool {
        (i64::from(self.base)..=i64::from(self.last)).contains(&port)
    }

    /// The range as Kubernetes prints it (`30000-32767`).
    pub fn describe(&self) -> String {
        format!("{}-{}", self.base, self.last)
    }

    /// A free port, or `None` when the range is full.
    pub fn pick(&self, taken: &HashSet<u16>) -> Option<u16> {
        let lo = u128::from(self.base);
        let hi = u128::from(self.last);
        let band = band_offset(hi - lo + 1, 16, 128, 32);
        pick_in(lo, hi, band, |p| !taken.contains(&(p as u16))).map(|p| p as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn range_math_excludes_network_and_broadcast() {
        let r = IpRange::parse("10.96.0.0/12").expect("parse");
        assert_eq!(r.cidr(), "10.96.0.0/12");
        assert_eq!(r.first(), ip("10.96.0.1"));
        assert_eq!(r.offset_of(ip("10.96.0.0")), None, "network");
        assert_eq!(r.offset_of(ip("10.111.255.255")), None, "broadcast");
        assert_eq!(r.offset_of(ip("10.111.255.254")), Some((1 << 20) - 2));
        assert_eq!(r.offset_of(ip("10.0.0.1")), None, "outside");
        assert_eq!(r.offset_of(ip("fd00::1")), None, "other family");
        let unaligned = IpRange::parse("10.96.3.7/24").expect("parse");
        assert_eq!(unaligned.cidr(), "10.96.3.0/24");
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(IpRange::parse("10.96.0.0").is_err());
        assert!(IpRange::parse("10.96.0.0/31").is_err());
        assert!(IpRange::parse("nope/12").is_err());
        assert!(PortRange::parse("32767-30000").is_err());
        assert!(PortRange::parse("x-1").is_err());
    }

    #[test]
    fn picks_skip_first_network_and_broadcast_until_exhausted() {
        // /29: offsets 0 (network) … 7 (broadcast); 1 is the kubernetes Service's.
        let r = IpRange::parse("192.168.1.0/29").expect("parse");
        let mut taken = HashSet::new();
        for _ in 0..5 {
            let got = r.pick(&taken).expect("a free address");
            let off = r.offset_of(got).expect("in range");
            assert!((2..=6).contains(&off), "{got}");
            assert!(taken.insert(got), "{got} handed out twice");
        }
        assert_eq!(r.pick(&taken), None, "exhausted");
    }

    #[test]
    fn random_picks_prefer_the_upper_band() {
        let r = IpRange::parse("10.96.0.0/24").expect("parse");
        // 253 usable after the first; lower band 16 addresses.
        for _ in 0..200 {
            let got = r.pick(&HashSet::new()).expect("free");
            assert!(r.offset_of(got).expect("in range") >= 18, "{got}");
        }
    }

    #[test]
    fn ipv6_ranges_exclude_only_the_network_address() {
        let r = IpRange::parse("fd00:10:96::/112").expect("parse");
        assert_eq!(r.family(), "IPv6");
        assert_eq!(r.offset_of(ip("fd00:10:96::")), None);
        assert_eq!(r.offset_of(ip("fd00:10:96::ffff")), Some(0xffff));
    }

    #[test]
    fn ports_are_picked_within_the_range_until_full() {
        let r = PortRange::parse("30000-30019").expect("parse");
        assert_eq!(r.describe(), "30000-30019");
        assert!(r.contains(30019) && !r.contains(30020) && !r.contains(29999));
        let mut taken = HashSet::new();
        for _ in 0..20 {
            let p = r.pick(&taken).expect("free port");
            assert!(r.contains(i64::from(p)));
            assert!(taken.insert(p), "{p} twice");
        }
        assert_eq!(r.pick(&taken), None);
    }
}
