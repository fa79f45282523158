//! The proxy's view of the cluster: Services and EndpointSlices reduced to what the rules
//! need, one entry per (Service, port). Pure: no I/O, so rule generation is testable from
//! plain objects.
//!
//! Which endpoints count follows kube-proxy's `CategorizeEndpoints`: ready endpoints, or,
//! when none is ready, the ones still serving while terminating (so connections drain
//! during a rolling update instead of being rejected); the same per node for `Local`
//! traffic policies.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Services with this label are handled by another proxy; kube-proxy ignores them.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 h).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// Transport protocols a Service port can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The name nftables (and conntrack) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// Identifies one port of one Service, as kube-proxy's `ServicePortName` does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's name; empty for a Service's single unnamed port.
    pub port: String,
    pub protocol: Protocol,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.as_str(),
            self.port
        )
    }
}

/// One Service port as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` (only meaningful with a node port).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
}

/// One endpoint of a Service port, from an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// A Service port with all its known endpoints (sorted, unique by address and port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: ServicePort,
    pub endpoints: Vec<Endpoint>,
}

/// Everything the rules are generated from, in a deterministic order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub services: BTreeMap<ServicePortName, ServiceEntry>,
}

/// Endpoints per (port name, protocol), unique by address and port.
type PortEndpoints = BTreeMap<(String, Protocol), BTreeMap<(Ipv4Addr, u16), Endpoint>>;

/// Builds the snapshot from Services and EndpointSlices.
///
/// Services the proxy does not handle are left out: ExternalName and headless Services,
/// Services without an IPv4 ClusterIP (IPv6 is not programmed yet), those claimed by
/// another proxy, and ports with an unknown protocol.
pub fn build_snapshot<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Snapshot {
    // (namespace, service) -> (port name, protocol) -> endpoints, deduplicated across slices.
    let mut by_service: BTreeMap<(String, String), PortEndpoints> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(ns) = slice.metadata.namespace.clone() else {
            continue;
        };
        let Some(svc) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
        else {
            continue;
        };
        let ports = by_service.entry((ns, svc)).or_default();
        for p in slice.ports.iter().flatten() {
            let (Some(proto), Some(port)) = (Protocol::parse(p.protocol.as_deref()), p.port) else {
                continue;
            };
            let Ok(port) = u16::try_from(port) else {
                continue;
            };
            let eps = ports
                .entry((p.name.clone().unwrap_or_default(), proto))
                .or_default();
            for ep in &slice.endpoints {
                let cond = ep.conditions.as_ref();
                // Unset conditions mean "unknown", which consumers treat as ready.
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let serving = cond.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                // Endpoints list one address per family; kube-proxy uses the first.
                let Some(ip) = ep
                    .addresses
                    .first()
                    .and_then(|a| a.parse::<Ipv4Addr>().ok())
                else {
                    continue;
                };
                eps.entry((ip, port)).or_insert_with(|| Endpoint {
                    ip,
                    port,
                    node: ep.node_name.clone(),
                    ready,
                    serving,
                    terminating,
                });
            }
        }
    }

    let mut snapshot = Snapshot::default();
    for svc in services {
        let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else {
            continue;
        };
        if svc
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(SERVICE_PROXY_NAME_LABEL))
        {
            continue;
        }
        let Some(spec) = &svc.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let has_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let endpoints = by_service.get(&(ns.clone(), name.clone()));
        for p in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
                continue;
            };
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            let port_name = p.name.clone().unwrap_or_default();
            let node_port = if has_node_ports {
                p.node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0)
            } else {
                None
            };
            let eps = endpoints
                .and_then(|e| e.get(&(port_name.clone(), protocol)))
                .map(|e| e.values().cloned().collect())
                .unwrap_or_default();
            snapshot.services.insert(
                ServicePortName {
                    namespace: ns.clone(),
                    name: name.clone(),
                    port: port_name,
                    protocol,
                },
                ServiceEntry {
                    service: ServicePort {
                        cluster_ip,
                        port,
                        node_port,
                        affinity_timeout,
                        external_local: node_port.is_some()
                            && spec.external_traffic_policy.as_deref() == Some("Local"),
                        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                    },
                    endpoints: eps,
                },
            );
        }
    }
    snapshot
}

/// The endpoints each kind of traffic to a Service port goes to, per kube-proxy's rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Categorized<'a> {
    /// Used for cluster-wide (`Cluster` policy) traffic.
    pub cluster: Vec<&'a Endpoint>,
    /// Endpoints on this node, for `Local` policies.
    pub local: Vec<&'a Endpoint>,
    /// Whether any endpoint is reachable for the traffic this Service receives; when not,
    /// traffic is rejected, otherwise (a `Local` policy without local endpoints) dropped.
    pub any_reachable: bool,
}

/// Splits the endpoints into cluster-wide and node-local ones, each falling back to the
/// serving-and-terminating endpoints when none is ready.
pub fn categorize<'a>(entry: &'a ServiceEntry, node: &str) -> Categorized<'a> {
    fn pick<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
        let ready: Vec<_> = eps.clone().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        eps.filter(|e| e.serving && e.terminating).collect()
    }
    let cluster = pick(entry.endpoints.iter());
    let local = pick(
        entry
            .endpoints
            .iter()
            .filter(|e| e.node.as_deref() == Some(node)),
    );
    let svc = &entry.service;
    let any_reachable = if svc.internal_local && svc.external_local {
        !local.is_empty()
    } else if !svc.internal_local && !svc.external_local {
        !cluster.is_empty()
    } else {
        !cluster.is_empty() || !local.is_empty()
    };
    Categorized {
        cluster,
        local,
        any_reachable,
    }
}
