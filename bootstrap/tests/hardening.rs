//! What `kadm init` exposes: etcd listens only where it must, with client certificates, and
//! every private key init writes (certificates' keys, kubeconfigs) is readable by its owner
//! alone — the user running init, root on a real host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kadm_bootstrap::init::{InitOptions, control_plane_components};
use kadm_bootstrap::kubeconfig::ensure_control_plane_kubeconfigs;
use kadm_bootstrap::layout::Layout;
use kadm_bootstrap::pki::{Pki, PkiSpec};

fn options(root: &Path, advertise: IpAddr) -> InitOptions {
    InitOptions {
        layout: Layout::rooted(root),
        cluster_name: "kadm".into(),
        node_name: "cp-1".into(),
        advertise_address: advertise,
        service_cidr: "10.96.0.0/12".into(),
        extra_sans: Vec::new(),
        binaries_dir: root.join("bin"),
        etcd_binary: PathBuf::from("/usr/bin/etcd"),
        use_systemd: false,
        require_root: false,
        ready_timeout: Duration::from_secs(1),
    }
}

/// etcd's `--flag=value` arguments (a flag given twice would hide one: refused).
fn etcd_flags(opts: &InitOptions) -> BTreeMap<String, String> {
    let cfg = control_plane_components(opts);
    let etcd = cfg
        .components
        .iter()
        .find(|c| c.name == "etcd")
        .expect("an etcd component");
    let mut flags = BTreeMap::new();
    for a in &etcd.args {
        let (k, v) = a
            .strip_prefix("--")
            .and_then(|a| a.split_once('='))
            .unwrap_or_else(|| panic!("etcd argument {a:?} is not --flag=value"));
        assert!(
            flags.insert(k.to_string(), v.to_string()).is_none(),
            "--{k} given twice"
        );
    }
    flags
}

fn hosts(urls: &str, scheme: &str) -> Vec<IpAddr> {
    urls.split(',')
        .map(|u| {
            let rest = u
                .strip_prefix(&format!("{scheme}://"))
                .unwrap_or_else(|| panic!("{u} is not {scheme}"));
            let (host, port) = rest.rsplit_once(':').expect("host:port");
            assert!(port.parse::<u16>().is_ok(), "{u}: port");
            host.trim_matches(['[', ']'])
                .parse()
                .expect("an IP address")
        })
        .collect()
}

#[test]
fn etcd_listens_only_on_loopback_and_the_advertise_address_with_client_certs() {
    let dir = tempfile::tempdir().unwrap();
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    for advertise in ["127.0.0.1", "192.0.2.10"] {
        let advertise: IpAddr = advertise.parse().unwrap();
        let flags = etcd_flags(&options(dir.path(), advertise));
        for h in hosts(&flags["listen-client-urls"], "https") {
            assert!(h == loopback || h == advertise, "client url on {h}");
            assert!(!h.is_unspecified());
        }
        // Peers only on the advertise address; metrics (plain HTTP) only on loopback.
        assert_eq!(hosts(&flags["listen-peer-urls"], "https"), vec![advertise]);
        assert_eq!(hosts(&flags["listen-metrics-urls"], "http"), vec![loopback]);
        // Clients and peers must present certificates of etcd's CA.
        assert_eq!(flags["client-cert-auth"], "true");
        assert_eq!(flags["peer-client-cert-auth"], "true");
        assert!(
            flags["trusted-ca-file"].ends_with("etcd/ca.crt"),
            "{flags:?}"
        );
        assert!(flags["peer-trusted-ca-file"].ends_with("etcd/ca.crt"));
        for self_signed in ["auto-tls", "peer-auto-tls"] {
            assert!(!flags.contains_key(self_signed), "--{self_signed} set");
        }
    }
}

/// Every file under `dir` (recursively).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn every_private_key_init_writes_is_0600_and_owned_by_the_user_running_init() {
    let dir = tempfile::tempdir().unwrap();
    // Whoever created the temp dir runs init here (root under `kadm init`).
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    let layout = Layout::rooted(dir.path());
    let pki = Pki::at(layout.pki_dir());
    pki.ensure(&PkiSpec::new("cp-1", vec!["192.0.2.10".parse().unwrap()]))
        .unwrap();
    ensure_control_plane_kubeconfigs(&pki, &layout.etc_dir, "kadm", "https://192.0.2.10:6443")
        .unwrap();
    let mut keys = 0;
    for path in files(&layout.etc_dir) {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), me, "owner of {}", path.display());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // PEM keys and kubeconfigs' embedded `client-key-data`.
        if text.contains("PRIVATE KEY") || text.contains("client-key-data") {
            keys += 1;
            assert_eq!(
                meta.permissions().mode() & 0o777,
                0o600,
                "mode of {}",
                path.display()
            );
        }
    }
    // ca, etcd ca, 6 leaves, sa + admin/scheduler/controller-manager kubeconfigs.
    assert!(keys >= 12, "only {keys} key files found");
    for d in [pki.dir().to_path_buf(), pki.etcd_dir()] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "mode of {}", d.display());
    }
}
