//! A cluster CIDR cut into equal node CIDRs, with which of them are taken (Kubernetes'
//! `cidrset`): allocation walks round-robin from the last one handed out, so a released
//! CIDR is not given to the next node at once.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Node CIDRs per cluster CIDR at most (Kubernetes allows 16 bits between the two masks).
pub const MAX_SUBNET_BITS: u8 = 16;

/// Why a CIDR or a mask cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    Parse(String),
    MaskTooSmall { cluster: u8, node: u8 },
    TooManySubnets { cluster: u8, node: u8 },
    OutOfRange { cidr: String, cluster: String },
    WrongFamily { cidr: String, cluster: String },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parse(s) => write!(f, "{s:?} is not a CIDR (like 10.244.0.0/16)"),
            Self::MaskTooSmall { cluster, node } => write!(
                f,
                "the node CIDR mask /{node} must be longer than the cluster CIDR mask /{cluster}"
            ),
            Self::TooManySubnets { cluster, node } => write!(
                f,
                "the node CIDR mask /{node} is more than {MAX_SUBNET_BITS} bits longer than the cluster CIDR mask /{cluster}; use a longer cluster prefix or a shorter node mask"
            ),
            Self::OutOfRange { cidr, cluster } => {
                write!(f, "{cidr} is out of the range of cluster CIDR {cluster}")
            }
            Self::WrongFamily { cidr, cluster } => {
                write!(
                    f,
                    "{cidr} is not of the IP family of cluster CIDR {cluster}"
                )
            }
        }
    }
}

/// A parsed `address/prefix`, as an integer and the family's width in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: u128,
    pub prefix: u8,
    /// 32 for IPv4, 128 for IPv6.
    pub bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError::Parse(s.to_string());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(err)?;
        let ip: IpAddr = ip.parse().map_err(|_| err())?;
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let (addr, bits) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        if prefix > bits {
            return Err(err());
        }
        Ok(Cidr {
            addr: addr & mask(prefix, bits),
            prefix,
            bits,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bits == 32 {
            let v4 = Ipv4Addr::from(u32::try_from(self.addr).unwrap_or(0));
            write!(f, "{v4}/{}", self.prefix)
        } else {
            write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.prefix)
        }
    }
}

fn mask(prefix: u8, bits: u8) -> u128 {
    let all = if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    if prefix == 0 {
        0
    } else {
        (all >> (bits - prefix)) << (bits - prefix)
    }
}

/// The node CIDRs of one cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Cidr,
    node_prefix: u8,
    used: Vec<bool>,
    allocated: usize,
    /// Where the next search starts.
    next: usize,
}

impl CidrSet {
    pub fn new(cluster: &str, node_prefix: u8) -> Result<CidrSet, CidrError> {
        let cluster = Cidr::parse(cluster)?;
        if node_prefix <= cluster.prefix || node_prefix > cluster.bits {
            return Err(CidrError::MaskTooSmall {
                cluster: cluster.prefix,
                node: node_prefix,
            });
        }
        if node_prefix - cluster.prefix > MAX_SUBNET_BITS {
            return Err(CidrError::TooManySubnets {
                cluster: cluster.prefix,
                node: node_prefix,
            });
        }
        let count = 1usize << (node_prefix - cluster.prefix);
        Ok(CidrSet {
            cluster,
            node_prefix,
            used: vec![false; count],
            allocated: 0,
            next: 0,
        })
    }

    pub fn cluster(&self) -> Cidr {
        self.cluster
    }

    pub fn is_ipv4(&self) -> bool {
        self.cluster.bits == 32
    }

    /// How many node CIDRs are taken.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    fn subnet(&self, index: usize) -> Cidr {
        let shift = self.cluster.bits - self.node_prefix;
        Cidr {
            addr: self.cluster.addr + ((index as u128) << shift),
            prefix: self.node_prefix,
            bits: self.cluster.bits,
        }
    }

    /// The next free node CIDR, or `None` when every one is taken.
    pub fn allocate_next(&mut self) -> Option<Cidr> {
        let n = self.used.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.allocated += 1;
                self.next = (i + 1) % n;
                return Some(self.subnet(i));
            }
        }
        None
    }

    /// The node-CIDR indexes `cidr` covers (a larger CIDR covers several).
    fn indexes(&self, cidr: &str) -> Result<std::ops::Range<usize>, CidrError> {
        let c = Cidr::parse(cidr)?;
        let cluster = self.cluster.to_string();
        if c.bits != self.cluster.bits {
            return Err(CidrError::WrongFamily {
                cidr: cidr.to_string(),
                cluster,
            });
        }
        let within = c.prefix >= self.cluster.prefix
            && (c.addr & mask(self.cluster.prefix, c.bits)) == self.cluster.addr;
        if !within {
            return Err(CidrError::OutOfRange {
                cidr: cidr.to_string(),
                cluster,
            });
        }
        let shift = self.cluster.bits - self.node_prefix;
        let offset = c.addr - self.cluster.addr;
        let first = usize::try_from(offset >> shift).unwrap_or(usize::MAX);
        let span = if c.prefix >= self.node_prefix {
            1
        } else {
            1usize << (self.node_prefix - c.prefix)
        };
        Ok(first..first.saturating_add(span).min(self.used.len()))
    }

    /// Marks a CIDR a node already has as taken (after a restart). Idempotent.
    pub fn occupy(&mut self, cidr: &str) -> Result<(), CidrError> {
        for i in self.indexes(cidr)? {
            if !self.used[i] {
                self.used[i] = true;
                self.allocated += 1;
            }
        }
        Ok(())
    }

    /// Gives a node's CIDR back. Idempotent.
    pub fn release(&mut self, cidr: &str) -> Result<(), CidrError> {
        for i in self.indexes(cidr)? {
            if self.used[i] {
                self.used[i] = false;
                self.allocated -= 1;
            }
        }
        Ok(())
    }

    /// Whether `cidr` is of this set's family (dual-stack nodes carry one of each).
    pub fn same_family(&self, cidr: &str) -> bool {
        Cidr::parse(cidr).is_ok_and(|c| c.bits == self.cluster.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_node_cidrs_in_order() {
        let mut s = CidrSet::new("10.244.0.0/16", 24).expect("set");
        assert_eq!(s.capacity(), 256);
        let a = s.allocate_next().expect("a").to_string();
        let b = s.allocate_next().expect("b").to_string();
        assert_eq!(a, "10.244.0.0/24");
        assert_eq!(b, "10.244.1.0/24");
        assert_eq!(s.allocated(), 2);
    }

    #[test]
    fn exhaustion_and_release() {
        let mut s = CidrSet::new("10.100.0.0/23", 24).expect("set");
        let a = s.allocate_next().expect("a").to_string();
        let _b = s.allocate_next().expect("b");
        assert!(s.allocate_next().is_none());
        s.release(&a).expect("release");
        assert_eq!(s.allocate_next().expect("again").to_string(), a);
    }

    #[test]
    fn occupy_rebuilds_state_and_skips_taken_cidrs() {
        let mut s = CidrSet::new("10.244.0.0/16", 24).expect("set");
        s.occupy("10.244.0.0/24").expect("occupy");
        s.occupy("10.244.0.0/24").expect("idempotent");
        assert_eq!(s.allocated(), 1);
        assert_eq!(
            s.allocate_next().expect("next").to_string(),
            "10.244.1.0/24"
        );
        assert!(matches!(
            s.occupy("10.245.0.0/24"),
            Err(CidrError::OutOfRange { .. })
        ));
        assert!(matches!(
            s.occupy("fd00::/64"),
            Err(CidrError::WrongFamily { .. })
        ));
        // A larger CIDR covers several node CIDRs.
        s.occupy("10.244.8.0/22").expect("wide");
        assert_eq!(s.allocated(), 6);
    }

    #[test]
    fn ipv6_and_mask_checks() {
        let mut s = CidrSet::new("fd00:10:244::/56", 64).expect("v6");
        assert_eq!(
            s.allocate_next().expect("first").to_string(),
            "fd00:10:244::/64"
        );
        assert_eq!(
            s.allocate_next().expect("second").to_string(),
            "fd00:10:244:1::/64"
        );
        assert!(matches!(
            CidrSet::new("10.0.0.0/8", 30),
            Err(CidrError::TooManySubnets { .. })
        ));
        assert!(matches!(
            CidrSet::new("10.0.0.0/24", 16),
            Err(CidrError::MaskTooSmall { .. })
        ));
        assert!(matches!(CidrSet::new("nope", 24), Err(CidrError::Parse(_))));
        assert_eq!(
            Cidr::parse("10.244.3.7/24").expect("masked").to_string(),
            "10.244.3.0/24"
        );
    }
}
