//! Builders of Services and EndpointSlices for tests and the benchmark.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort as K8sServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::SERVICE_NAME_LABEL;

/// A ClusterIP Service with one named port.
pub fn service(ns: &str, name: &str, cluster_ip: &str, proto: &str, port: i32) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(cluster_ip.into()),
            cluster_ips: Some(vec![cluster_ip.into()]),
            ports: Some(vec![K8sServicePort {
                name: Some("p".into()),
                protocol: Some(proto.into()),
                port,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// An endpoint description: address, node, ready, serving, terminating.
pub type Ep<'a> = (&'a str, &'a str, bool, bool, bool);

/// A ready endpoint on `node`.
pub fn ready<'a>(ip: &'a str, node: &'a str) -> Ep<'a> {
    (ip, node, true, true, false)
}

/// An EndpointSlice for the Service's port `p`.
pub fn slice(
    ns: &str,
    svc: &str,
    suffix: &str,
    proto: &str,
    port: i32,
    eps: &[Ep<'_>],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(format!("{svc}-{suffix}")),
            labels: Some(BTreeMap::from([(
                SERVICE_NAME_LABEL.to_owned(),
                svc.to_owned(),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: eps
            .iter()
            .map(|(ip, node, ready, serving, terminating)| Endpoint {
                addresses: vec![(*ip).to_owned()],
                node_name: Some((*node).to_owned()),
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    serving: Some(*serving),
                    terminating: Some(*terminating),
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(vec![EndpointPort {
            name: Some("p".into()),
            protocol: Some(proto.into()),
            port: Some(port),
            ..Default::default()
        }]),
    }
}

/// `n` Services with `per` ready endpoints each, for the benchmark: ClusterIPs from
/// 10.96.0.0/12 and endpoints from 10.244.0.0/16.
pub fn many(n: usize, per: usize) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    let mut next_ep: u32 = u32::from(std::net::Ipv4Addr::new(10, 244, 0, 2));
    for i in 0..n {
        let ci =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 96, 1, 0)) + i as u32);
        let name = format!("svc-{i}");
        services.push(service("bench", &name, &ci.to_string(), "TCP", 80));
        let ips: Vec<String> = (0..per)
            .map(|_| {
                let ip = std::net::Ipv4Addr::from(next_ep);
                next_ep += 1;
                ip.to_string()
            })
            .collect();
        let eps: Vec<Ep<'_>> = ips.iter().map(|ip| ready(ip, "node-a")).collect();
        slices.push(slice("bench", &name, "a", "TCP", 8080, &eps));
    }
    (services, slices)
}
