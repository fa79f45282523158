//! kadm-proxy flags, named like kube-proxy's where they mean the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kadm_base::leader::parse_duration;

use crate::cidr::{Cidr4, parse_list_v4};
use crate::error::{Error, Result};

/// Production location of the proxy's kubeconfig.
pub const DEFAULT_KUBECONFIG: &str = "/etc/kadm/proxy.conf";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "kadm-proxy",
    version = kadm_base::VERSION,
    about = "kadm's service proxy: Services and EndpointSlices to one nftables table"
)]
pub struct Options {
    /// Kubeconfig with the apiserver address and the system:kube-proxy client certificate.
    #[arg(long, default_value = DEFAULT_KUBECONFIG)]
    pub kubeconfig: PathBuf,

    /// This node's name, when it differs from the host name (endpoints are matched by it
    /// for Local traffic policies).
    #[arg(long)]
    pub hostname_override: Option<String>,

    /// Pod CIDRs (comma-separated); traffic to ClusterIPs from outside them is masqueraded.
    #[arg(long, default_value = "")]
    pub cluster_cidr: String,

    /// The ClusterIP range; kept on the machine by a route and unallocated addresses dropped.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,

    /// Where /healthz is served.
    #[arg(long, default_value = "0.0.0.0:10256")]
    pub healthz_bind_address: SocketAddr,

    /// CIDRs of the node addresses NodePorts answer on (comma-separated); default: all
    /// local addresses except loopback.
    #[arg(long, default_value = "")]
    pub nodeport_addresses: String,

    /// SNAT all traffic sent to ClusterIPs.
    #[arg(long)]
    pub masquerade_all: bool,

    /// Minimum time between two syncs; changes arriving faster are coalesced.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub min_sync_period: Duration,

    /// Full resync interval even without changes (repairs rules changed behind our back).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_period: Duration,
}

impl Options {
    pub fn cluster_cidrs(&self) -> Result<Vec<Cidr4>> {
        parse_list_v4(&self.cluster_cidr).map_err(|reason| Error::InvalidFlag {
            flag: "--cluster-cidr",
            value: self.cluster_cidr.clone(),
            reason,
        })
    }

    pub fn nodeport_cidrs(&self) -> Result<Vec<Cidr4>> {
        parse_list_v4(&self.nodeport_addresses).map_err(|reason| Error::InvalidFlag {
            flag: "--nodeport-addresses",
            value: self.nodeport_addresses.clone(),
            reason,
        })
    }

    pub fn service_cidr(&self) -> Result<Option<Cidr4>> {
        let v =
            parse_list_v4(&self.service_cluster_ip_range).map_err(|reason| Error::InvalidFlag {
                flag: "--service-cluster-ip-range",
                value: self.service_cluster_ip_range.clone(),
                reason,
            })?;
        Ok(v.first().copied())
    }

    /// The node name: the override, or the host name in lower case (as kube-proxy).
    pub fn node_name(&self) -> Result<String> {
        if let Some(n) = self
            .hostname_override
            .as_deref()
            .filter(|n| !n.trim().is_empty())
        {
            return Ok(n.trim().to_lowercase());
        }
        let path = "/proc/sys/kernel/hostname";
        std::fs::read_to_string(path)
            .map(|h| h.trim().to_lowercase())
            .map_err(|source| Error::Base(kadm_base::Error::Hostname { path, source }))
    }
}
