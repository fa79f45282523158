use super::*;
use crate::model::build_snapshot;
use crate::testdata::{Ep, ready, service, slice};
use k8s_openapi::api::core::v1::{ClientIPConfig, Service, SessionAffinityConfig};
use k8s_openapi::api::discovery::v1::EndpointSlice;

fn cfg() -> RuleConfig {
    RuleConfig {
        node_name: "node-a".into(),
        cluster_cidrs: vec![Cidr4::parse("10.244.0.0/16").expect("cidr")],
        masquerade_all: false,
        nodeport_cidrs: Vec::new(),
        service_cidr: Cidr4::parse("10.96.0.0/12"),
    }
}

fn render(svcs: &[Service], slices: &[EndpointSlice]) -> String {
    generate(&build_snapshot(svcs, slices), &cfg())
}

/// The body of chain `prefix…` (the first chain whose name starts with it).
fn chain_body<'a>(text: &'a str, prefix: &str) -> &'a str {
    let start = text
        .find(&format!("\tchain {prefix}"))
        .unwrap_or_else(|| panic!("no chain {prefix} in\n{text}"));
    let end = text[start..].find("\n\t}\n").expect("chain end") + start;
    &text[start..end]
}

const SPN: &str = "default/web/tcp/p";

#[test]
fn cluster_ip_with_two_endpoints_balances_randomly_and_dnats() {
    let text = render(
        &[service("default", "web", "10.96.0.10", "TCP", 80)],
        &[slice(
            "default",
            "web",
            "a",
            "TCP",
            8080,
            &[ready("10.244.1.2", "node-a"), ready("10.244.2.2", "node-b")],
        )],
    );
    assert!(
        text.starts_with("table ip kadm\ndelete table ip kadm\ntable ip kadm {\n"),
        "{text}"
    );
    let svc = service_chain("service", &spn());
    assert!(
        text.contains(&format!(
            "elements = {{ 10.96.0.10 . tcp . 80 : goto {svc} }}"
        )),
        "{text}"
    );
    assert!(
        chain_body(&text, "services ")
            .contains("ip daddr @cluster-ips ip saddr != @cluster-cidrs jump mark-for-masquerade"),
        "{text}"
    );
    let body = chain_body(&text, &svc);
    assert!(
        body.ends_with(
            "\t\tmeta l4proto tcp numgen random mod 2 == 0 dnat to 10.244.1.2:8080\n\t\tmeta l4proto tcp dnat to 10.244.2.2:8080"
        ),
        "{body}"
    );
    assert!(
        text.contains("elements = { 10.244.1.2 . 10.244.1.2, 10.244.2.2 . 10.244.2.2 }"),
        "hairpin set: {text}"
    );
    assert!(
        chain_body(&text, "masquerading").contains(
            "ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade"
        ),
        "{text}"
    );
    assert!(
        text.contains("\t\telements = { 10.96.0.10 }\n"),
        "cluster-ips set: {text}"
    );
    assert!(text.contains("ip daddr 10.96.0.0/12 drop"), "{text}");
}

fn spn() -> ServicePortName {
    ServicePortName {
        namespace: "default".into(),
        name: "web".into(),
        port: "p".into(),
        protocol: crate::model::Protocol::Tcp,
    }
}

#[test]
fn service_without_endpoints_is_rejected() {
    let text = render(&[service("default", "web", "10.96.0.10", "UDP", 53)], &[]);
    assert!(
        text.contains("elements = { 10.96.0.10 . udp . 53 : goto reject-chain }"),
        "{text}"
    );
    assert!(
        !text.contains("chain service-UDP") && !text.contains("numgen"),
        "{text}"
    );
    assert!(
        chain_body(&text, "reject-chain").contains("\t\treject"),
        "{text}"
    );
    // Not ready and not serving endpoints do not count.
    let text = render(
        &[service("default", "web", "10.96.0.10", "UDP", 53)],
        &[slice(
            "default",
            "web",
            "a",
            "UDP",
            53,
            &[("10.244.1.2", "node-a", false, false, false)],
        )],
    );
    assert!(
        text.contains("10.96.0.10 . udp . 53 : goto reject-chain"),
        "{text}"
    );
}

#[test]
fn node_port_goes_through_an_external_chain_that_masquerades() {
    let mut svc = service("default", "web", "10.96.0.10", "TCP", 80);
    let spec = svc.spec.as_mut().expect("spec");
    spec.type_ = Some("NodePort".into());
    spec.ports.as_mut().expect("ports")[0].node_port = Some(30080);
    let text = render(
        &[svc],
        &[slice(
            "default",
            "web",
            "a",
            "TCP",
            8080,
            &[ready("10.244.1.2", "node-b")],
        )],
    );
    let ext = service_chain("external", &spn());
    assert!(
        text.contains(&format!("elements = {{ tcp . 30080 : goto {ext} }}")),
        "{text}"
    );
    let body = chain_body(&text, &ext);
    assert!(body.contains("\t\tjump mark-for-masquerade\n"), "{body}");
    assert!(
        body.contains(&format!("goto {}", service_chain("service", &spn()))),
        "{body}"
    );
    assert!(
        chain_body(&text, "services ").contains("fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports"),
        "{text}"
    );
}

#[test]
fn session_affinity_remembers_the_client_per_endpoint() {
    let mut svc = service("default", "web", "10.96.0.10", "TCP", 80);
    let spec = svc.spec.as_mut().expect("spec");
    spec.session_affinity = Some("ClientIP".into());
    spec.session_affinity_config = Some(SessionAffinityConfig {
        client_ip: Some(ClientIPConfig {
            timeout_seconds: Some(60),
        }),
    });
    let text = render(
        &[svc],
        &[slice(
            "default",
            "web",
            "a",
            "TCP",
            8080,
            &[ready("10.244.1.2", "node-a")],
        )],
    );
    let set = format!(
        "affinity-{}-{SPN}__10.244.1.2/8080",
        hash8(&format!("{SPN}__10.244.1.2/8080"))
    );
    assert!(
        text.contains(&format!(
            "\tset {set} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n\t}}"
        )),
        "{text}"
    );
    let svc_body = chain_body(&text, &service_chain("service", &spn()));
    let sticky = format!(
        "ip saddr @{set} meta l4proto tcp update @{set} {{ ip saddr }} dnat to 10.244.1.2:8080"
    );
    let random =
        format!("\t\tmeta l4proto tcp update @{set} {{ ip saddr }} dnat to 10.244.1.2:8080");
    let s = svc_body.find(&sticky).expect("affinity rule");
    let r = svc_body.rfind(&random).expect("balancing rule");
    assert!(s < r, "{svc_body}");
}

#[test]
fn local_policies_use_only_this_nodes_endpoints() {
    let mut svc = service("default", "web", "10.96.0.10", "TCP", 80);
    let spec = svc.spec.as_mut().expect("spec");
    spec.type_ = Some("NodePort".into());
    spec.ports.as_mut().expect("ports")[0].node_port = Some(30080);
    spec.external_traffic_policy = Some("Local".into());
    spec.internal_traffic_policy = Some("Local".into());
    let eps: [Ep<'_>; 2] = [ready("10.244.1.2", "node-a"), ready("10.244.2.2", "node-b")];
    let text = render(
        std::slice::from_ref(&svc),
        &[slice("default", "web", "a", "TCP", 8080, &eps)],
    );
    let local = service_chain("local", &spn());
    assert!(
        text.contains(&format!("10.96.0.10 . tcp . 80 : goto {local}")),
        "{text}"
    );
    let body = chain_body(&text, &local);
    assert!(body.contains("dnat to 10.244.1.2:8080"), "{body}");
    assert!(
        !body.contains("numgen") && !body.contains("10.244.2.2"),
        "{body}"
    );
    let ext = chain_body(&text, &service_chain("external", &spn()));
    assert!(
        ext.contains("fib saddr type local jump mark-for-masquerade"),
        "{ext}"
    );
    assert!(ext.contains(&format!("goto {local}")), "{ext}");

    // No endpoint on this node, but some elsewhere: dropped rather than rejected.
    let eps: [Ep<'_>; 1] = [ready("10.244.2.2", "node-b")];
    let mut other = svc.clone();
    other.spec.as_mut().expect("spec").external_traffic_policy = Some("Cluster".into());
    let text = render(&[other], &[slice("default", "web", "a", "TCP", 8080, &eps)]);
    assert!(text.contains("10.96.0.10 . tcp . 80 : drop"), "{text}");
    assert!(
        text.contains(&format!(
            "tcp . 30080 : goto {}",
            service_chain("external", &spn())
        )),
        "{text}"
    );
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let svc = service("default", "web", "10.96.0.10", "TCP", 80);
    let eps: [Ep<'_>; 3] = [
        ("10.244.1.2", "node-a", false, true, true),
        ("10.244.1.3", "node-a", false, false, true),
        ("10.244.1.4", "node-a", false, true, true),
    ];
    let text = render(
        std::slice::from_ref(&svc),
        &[slice("default", "web", "a", "TCP", 8080, &eps)],
    );
    let body = chain_body(&text, &service_chain("service", &spn()));
    assert!(
        body.contains("numgen random mod 2 == 0 dnat to 10.244.1.2:8080"),
        "{body}"
    );
    assert!(body.contains("dnat to 10.244.1.4:8080"), "{body}");
    assert!(!body.contains("10.244.1.3"), "{body}");
    // With one ready endpoint the terminating ones are left out.
    let mut eps = eps.to_vec();
    eps.push(ready("10.244.1.9", "node-b"));
    let text = render(&[svc], &[slice("default", "web", "a", "TCP", 8080, &eps)]);
    let body = chain_body(&text, &service_chain("service", &spn()));
    assert!(
        !body.contains("numgen") && body.contains("dnat to 10.244.1.9:8080"),
        "{body}"
    );
}

#[test]
fn same_input_gives_identical_text_whatever_the_order() {
    let svcs = [
        service("default", "web", "10.96.0.10", "TCP", 80),
        service("kube-system", "dns", "10.96.0.53", "UDP", 53),
    ];
    let slices = [
        slice(
            "default",
            "web",
            "a",
            "TCP",
            8080,
            &[ready("10.244.1.2", "node-a")],
        ),
        slice(
            "default",
            "web",
            "b",
            "TCP",
            8080,
            &[ready("10.244.2.2", "node-b"), ready("10.244.1.2", "node-a")],
        ),
        slice(
            "kube-system",
            "dns",
            "a",
            "UDP",
            53,
            &[ready("10.244.1.5", "node-a")],
        ),
    ];
    let a = render(&svcs, &slices);
    let mut rs = svcs.to_vec();
    rs.reverse();
    let mut rsl = slices.to_vec();
    rsl.reverse();
    assert_eq!(a, render(&rs, &rsl));
    assert!(a.contains("numgen random mod 2 == 0"), "{a}");
}

#[test]
fn masquerade_all_marks_every_cluster_ip_connection() {
    let snap = build_snapshot(
        &[service("default", "web", "10.96.0.10", "TCP", 80)],
        &[slice(
            "default",
            "web",
            "a",
            "TCP",
            8080,
            &[ready("10.244.1.2", "node-a")],
        )],
    );
    let text = generate(
        &snap,
        &RuleConfig {
            masquerade_all: true,
            ..cfg()
        },
    );
    assert!(
        chain_body(&text, "services ")
            .contains("\t\tip daddr @cluster-ips jump mark-for-masquerade"),
        "{text}"
    );
    let text = generate(
        &snap,
        &RuleConfig {
            nodeport_cidrs: vec![Cidr4::parse("192.168.0.0/24").expect("cidr")],
            ..cfg()
        },
    );
    assert!(text.contains("set nodeport-ips {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 192.168.0.0/24 }"), "{text}");
    assert!(text.contains("fib daddr type local ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"), "{text}");
}
