//! kadm-proxy against real nftables, conntrack and routes, inside network namespaces the
//! tests create and delete (never the root namespace's rules). Needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kadm_proxy::cidr::Cidr4;
use kadm_proxy::host::RouteKind;
use kadm_proxy::model::build_snapshot;
use kadm_proxy::netns::{Netns, veth};
use kadm_proxy::routes::RouteGuard;
use kadm_proxy::rules::RuleConfig;
use kadm_proxy::sync::Syncer;
use kadm_proxy::testdata::{Ep, ready, service, slice};

fn config() -> RuleConfig {
    RuleConfig {
        node_name: "node-a".into(),
        cluster_cidrs: vec![Cidr4::parse("10.244.0.0/16").expect("cidr")],
        service_cidr: Cidr4::parse("10.96.0.0/12"),
        ..Default::default()
    }
}

fn require_root() {
    assert!(
        kadm_proxy::netns::available(),
        "these tests need root with nft, conntrack and nsenter installed"
    );
}

#[test]
fn table_applies_lists_back_and_is_replaced_whole() -> Result<()> {
    require_root();
    let ns = Netns::create("proxytest")?;
    let mut syncer = Syncer::new(ns.exec(), ns.exec(), config());
    let svcs = [
        service("default", "web", "10.96.0.10", "TCP", 80),
        service("kube-system", "dns", "10.96.0.53", "UDP", 53),
    ];
    let eps: [Ep<'_>; 2] = [ready("10.244.1.2", "node-a"), ready("10.244.2.2", "node-b")];
    let slices = [
        slice("default", "web", "a", "TCP", 8080, &eps),
        slice("kube-system", "dns", "a", "UDP", 53, &eps),
    ];
    assert!(syncer.sync(&build_snapshot(&svcs, &slices))?.applied);
    let listed = ns.run("nft", &["list", "table", "ip", "kadm"])?.stdout;
    assert!(
        listed.contains("10.96.0.10 . tcp . 80 : goto service-"),
        "{listed}"
    );
    assert!(listed.contains("dnat to 10.244.2.2:8080"), "{listed}");
    assert!(
        listed.contains("numgen random mod 2 0 dnat to 10.244.1.2:8080"),
        "{listed}"
    );

    // Second sync: one endpoint gone, everything else unchanged; the old chain must vanish.
    let slices2 = [
        slice("default", "web", "a", "TCP", 8080, &eps[..1]),
        slice("kube-system", "dns", "a", "UDP", 53, &eps[..1]),
    ];
    let o = syncer.sync(&build_snapshot(&svcs, &slices2))?;
    assert!(o.applied);
    assert_eq!(o.conntrack_deletes, 1, "the UDP endpoint that went away");
    let listed = ns.run("nft", &["list", "table", "ip", "kadm"])?.stdout;
    assert!(!listed.contains("10.244.2.2"), "{listed}");
    assert!(!listed.contains("numgen"), "{listed}");
    let tables = ns.run("nft", &["list", "tables"])?.stdout;
    assert_eq!(tables.trim(), "table ip kadm");

    // A broken script changes nothing: the transaction is all or nothing.
    let bad = "table ip kadm\ndelete table ip kadm\ntable ip kadm {\n\tchain x {\n\t\tnot a rule\n\t}\n}\n";
    assert!(kadm_proxy::host::Nft::apply(&ns.exec(), bad).is_err());
    assert_eq!(
        ns.run("nft", &["list", "table", "ip", "kadm"])?.stdout,
        listed
    );
    Ok(())
}

/// Kills and reaps a process started in a test, even when the test fails.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn httpd(ns: &Netns, dir: &std::path::Path) -> Result<Proc> {
    let child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start busybox httpd")?;
    Ok(Proc(child))
}

/// `busybox wget` from inside `ns` (its -T flag crashes busybox 1.35, so the bound is
/// the command timeout); the body or the error text.
fn wget(ns: &Netns, url: &str) -> Result<(bool, String)> {
    let mut cmd = Command::new("timeout");
    cmd.args(["3", "nsenter"])
        .arg(format!("--net={}", ns.path().display()))
        .args(["busybox", "wget", "-q", "-O", "-", url]);
    let out = kadm_proxy::host::run_bounded(cmd, None, Duration::from_secs(5))?;
    Ok((
        out.status.success(),
        format!("{}{}", out.stdout.trim(), out.stderr.trim()),
    ))
}

#[test]
fn cluster_ip_answers_from_both_backends_and_empty_service_is_refused() -> Result<()> {
    require_root();
    let node = Netns::create("pxnode")?;
    let pod_a = Netns::create("pxpoda")?;
    let pod_b = Netns::create("pxpodb")?;
    let client = Netns::create("pxcli")?;
    veth(
        &node,
        "pa0",
        "10.244.1.1/24",
        &pod_a,
        "eth0",
        "10.244.1.2/24",
    )?;
    veth(
        &node,
        "pb0",
        "10.244.2.1/24",
        &pod_b,
        "eth0",
        "10.244.2.2/24",
    )?;
    veth(
        &node,
        "cl0",
        "10.99.0.1/24",
        &client,
        "eth0",
        "10.99.0.2/24",
    )?;
    pod_a.run("ip", &["route", "add", "default", "via", "10.244.1.1"])?;
    pod_b.run("ip", &["route", "add", "default", "via", "10.244.2.1"])?;
    client.run("ip", &["route", "add", "default", "via", "10.99.0.1"])?;
    node.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;

    let dirs = tempfile::tempdir()?;
    let mut procs = Vec::new();
    for (name, ns) in [("pod-a", &pod_a), ("pod-b", &pod_b)] {
        let d = dirs.path().join(name);
        std::fs::create_dir(&d)?;
        std::fs::write(d.join("index.html"), format!("{name}\n"))?;
        procs.push(httpd(ns, &d)?);
    }

    // The service range stays on the node; host processes still reach ClusterIPs.
    let routes = RouteGuard::ensure(
        node.exec(),
        &[(
            Cidr4::parse("10.96.0.0/12").expect("cidr"),
            RouteKind::Loopback,
        )],
    )?;
    let mut syncer = Syncer::new(node.exec(), node.exec(), config());
    let svcs = [
        service("default", "web", "10.96.0.10", "TCP", 80),
        service("default", "empty", "10.96.0.11", "TCP", 80),
        service("default", "dns", "10.96.0.53", "UDP", 53),
    ];
    let eps: [Ep<'_>; 2] = [ready("10.244.1.2", "node-a"), ready("10.244.2.2", "node-a")];
    syncer.sync(&build_snapshot(
        &svcs,
        &[
            slice("default", "web", "a", "TCP", 80, &eps),
            slice("default", "dns", "a", "UDP", 5353, &eps),
        ],
    ))?;

    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut seen_a, mut seen_b) = (false, false);
    let mut last = String::new();
    for _ in 0..60 {
        if (seen_a && seen_b) || Instant::now() > deadline {
            break;
        }
        let (ok, body) = wget(&client, "http://10.96.0.10/")?;
        seen_a |= ok && body == "pod-a";
        seen_b |= ok && body == "pod-b";
        last = body;
    }
    if !(seen_a && seen_b) {
        bail!(
            "ClusterIP did not answer from both backends (a: {seen_a}, b: {seen_b}); last: {last}"
        );
    }

    // From the node itself (OUTPUT hook), through the service-range route.
    let (ok, body) = wget(&node, "http://10.96.0.10/")?;
    assert!(ok && body.starts_with("pod-"), "{body}");

    // No endpoints: rejected at once, not left to time out.
    let started = Instant::now();
    let (ok, body) = wget(&client, "http://10.96.0.11/")?;
    assert!(!ok && body.contains("refused"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    // UDP: a datagram to the ClusterIP leaves a conntrack entry DNAT'd to one endpoint;
    // when that endpoint goes away, the sync deletes the entry with the real conntrack.
    let udp_entries = || -> Result<String> {
        let out = node.exec().run(
            "conntrack",
            &["-L", "-p", "udp", "--orig-dst", "10.96.0.53"].map(str::to_owned),
            None,
        )?;
        Ok(out.stdout)
    };
    // The pods drop the datagram silently: an ICMP port-unreachable would make the kernel
    // discard the unreplied entry by itself.
    for pod in [&pod_a, &pod_b] {
        let sink = "table ip sink {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tudp dport 5353 drop\n\t}\n}\n";
        let out = pod
            .exec()
            .run("nft", &["-f".to_owned(), "-".to_owned()], Some(sink))?;
        assert!(out.status.success(), "{}", out.stderr);
    }
    client.run("bash", &["-c", "echo hi > /dev/udp/10.96.0.53/53"])?;
    let listed = udp_entries()?;
    let chosen = ["10.244.1.2", "10.244.2.2"]
        .into_iter()
        .find(|ip| listed.contains(&format!("src={ip} ")))
        .with_context(|| {
            let all = node
                .exec()
                .run("conntrack", &["-L".to_owned()], None)
                .map(|o| format!("{} {}", o.stdout, o.stderr));
            format!("no conntrack entry for the UDP Service: {listed:?}; all: {all:?}")
        })?;
    let remaining: Vec<Ep<'_>> = eps.iter().copied().filter(|e| e.0 != chosen).collect();
    let o = syncer.sync(&build_snapshot(
        &svcs,
        &[
            slice("default", "web", "a", "TCP", 80, &eps),
            slice("default", "dns", "a", "UDP", 5353, &remaining),
        ],
    ))?;
    assert_eq!(o.conntrack_deletes, 1);
    let listed = udp_entries()?;
    assert!(!listed.contains(&format!("src={chosen} ")), "{listed}");

    routes.release();
    let left = node
        .run("ip", &["-4", "route", "show", "exact", "10.96.0.0/12"])?
        .stdout;
    assert!(left.trim().is_empty(), "{left}");
    drop(procs);
    Ok(())
}
