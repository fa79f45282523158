//! Tests of the PKI as a whole: files, modes, idempotence, and that what we sign verifies with
//! independent verifiers (x509-parser, rustls/webpki, openssl when installed).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;
use crate::kubeconfig;

fn spec() -> PkiSpec {
    let mut spec = PkiSpec::new(
        "cp-1",
        vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
    );
    spec.extra_sans = vec!["api.example.com".into(), "198.51.100.7".into()];
    spec
}

fn fresh() -> (tempfile::TempDir, Pki, EnsureReport) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::at(dir.path().join("pki"));
    let report = pki.ensure(&spec()).unwrap();
    (dir, pki, report)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn der_of(path: &Path) -> Vec<u8> {
    ca::pem_to_der(&fs::read_to_string(path).unwrap(), "test").unwrap()
}

/// Every file `ensure` is responsible for, with its expected mode.
fn expected_files(pki: &Pki) -> Vec<(PathBuf, u32)> {
    let mut files = Vec::new();
    for (cert, key) in [
        (pki.ca_cert_path(), pki.ca_key_path()),
        (pki.etcd_ca_cert_path(), pki.etcd_ca_key_path()),
        (pki.apiserver_cert_path(), pki.apiserver_key_path()),
        (
            pki.apiserver_kubelet_client_cert_path(),
            pki.apiserver_kubelet_client_key_path(),
        ),
        (
            pki.apiserver_etcd_client_cert_path(),
            pki.apiserver_etcd_client_key_path(),
        ),
        (pki.etcd_server_cert_path(), pki.etcd_server_key_path()),
        (pki.etcd_peer_cert_path(), pki.etcd_peer_key_path()),
        (
            pki.etcd_healthcheck_client_cert_path(),
            pki.etcd_healthcheck_client_key_path(),
        ),
        (pki.sa_pub_path(), pki.sa_key_path()),
    ] {
        files.push((cert, 0o644));
        files.push((key, 0o600));
    }
    files
}

#[test]
fn ensure_creates_every_file_with_modes() {
    let (_dir, pki, report) = fresh();
    assert!(report.kept.is_empty(), "{report:?}");
    let expected = expected_files(&pki);
    assert_eq!(report.created.len(), expected.len(), "{report:?}");
    for (path, want) in &expected {
        assert!(
            report.created.contains(path),
            "{} not reported",
            path.display()
        );
        assert_eq!(mode(path), *want, "mode of {}", path.display());
    }
    assert_eq!(mode(pki.dir()), 0o700);
    assert_eq!(mode(&pki.etcd_dir()), 0o700);

    // Nothing else (no temp files) in the directories.
    let mut on_disk: Vec<PathBuf> = Vec::new();
    for d in [pki.dir().to_path_buf(), pki.etcd_dir()] {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                on_disk.push(p);
            }
        }
    }
    on_disk.sort();
    let mut want: Vec<PathBuf> = expected.into_iter().map(|(p, _)| p).collect();
    want.sort();
    assert_eq!(on_disk, want);

    // The sa pair is a PKCS#8 key and its SPKI public key.
    let sa_key = fs::read_to_string(pki.sa_key_path()).unwrap();
    let sa_pub = fs::read_to_string(pki.sa_pub_path()).unwrap();
    assert!(sa_key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----"));
    assert!(public_key_matches(
        &sa_pub,
        &KeyPair::from_pem(&sa_key).unwrap()
    ));
}

#[test]
fn second_ensure_keeps_files_byte_identical() {
    let (_dir, pki, first) = fresh();
    let snapshot: BTreeMap<PathBuf, Vec<u8>> = first
        .created
        .iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    let second = pki.ensure(&spec()).unwrap();
    assert!(second.created.is_empty(), "{second:?}");
    let mut kept = second.kept.clone();
    kept.sort();
    let mut created = first.created.clone();
    created.sort();
    assert_eq!(kept, created);
    for (path, bytes) in &snapshot {
        assert_eq!(
            &fs::read(path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
}

#[test]
fn ensure_recreates_missing_leaf_and_derives_sa_pub() {
    let (_dir, pki, _) = fresh();
    let ca_before = fs::read(pki.ca_cert_path()).unwrap();
    let sa_key_before = fs::read(pki.sa_key_path()).unwrap();
    fs::remove_file(pki.apiserver_cert_path()).unwrap(); // as a crash after the key write
    fs::remove_file(pki.sa_pub_path()).unwrap();
    let report = pki.ensure(&spec()).unwrap();
    assert!(report.created.contains(&pki.apiserver_cert_path()));
    assert!(report.created.contains(&pki.apiserver_key_path()));
    assert!(report.created.contains(&pki.sa_pub_path()));
    assert!(report.kept.contains(&pki.sa_key_path()));
    assert_eq!(fs::read(pki.ca_cert_path()).unwrap(), ca_before);
    assert_eq!(fs::read(pki.sa_key_path()).unwrap(), sa_key_before);
    // And the result is consistent again.
    assert!(pki.ensure(&spec()).unwrap().created.is_empty());
}

#[test]
fn ensure_refuses_leaf_missing_a_new_san() {
    let (_dir, pki, _) = fresh();
    let mut changed = spec();
    changed.host_ips.push("203.0.113.5".parse().unwrap());
    let err = pki.ensure(&changed).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Existing { .. }), "{msg}");
    assert!(msg.contains("apiserver.crt"), "{msg}");
    assert!(msg.contains("IP:203.0.113.5"), "{msg}");
    assert!(msg.contains("delete it and"), "{msg}");
}

#[test]
fn ensure_refuses_cert_without_key_and_foreign_leaf() {
    let (dir, pki, _) = fresh();
    // A CA certificate without its key: never replaced silently.
    let ca_key = fs::read(pki.ca_key_path()).unwrap();
    fs::remove_file(pki.ca_key_path()).unwrap();
    let err = pki.ensure(&spec()).unwrap_err();
    assert!(err.to_string().contains("ca.key is missing"), "{err}");
    fs::write(pki.ca_key_path(), ca_key).unwrap();

    // A leaf signed by another CA.
    let other = Pki::at(dir.path().join("other"));
    other.ensure(&spec()).unwrap();
    fs::copy(other.apiserver_cert_path(), pki.apiserver_cert_path()).unwrap();
    fs::copy(other.apiserver_key_path(), pki.apiserver_key_path()).unwrap();
    let err = pki.ensure(&spec()).unwrap_err();
    assert!(err.to_string().contains("is not signed by the ca"), "{err}");

    // A leaf whose key belongs to another certificate.
    fs::copy(other.apiserver_key_path(), pki.etcd_server_key_path()).unwrap();
    fs::remove_file(pki.apiserver_cert_path()).unwrap();
    fs::remove_file(pki.apiserver_key_path()).unwrap();
    let err = pki.ensure(&spec()).unwrap_err();
    assert!(err.to_string().contains("does not match its key"), "{err}");
}

#[test]
fn ensure_validates_input_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::at(dir.path().join("pki"));
    let mut bad = spec();
    bad.extra_sans.push("not a name".into());
    assert!(matches!(
        pki.ensure(&bad).unwrap_err(),
        Error::InvalidSan { .. }
    ));
    bad = spec();
    bad.service_cidr = "10.96.0.0".into();
    assert!(matches!(
        pki.ensure(&bad).unwrap_err(),
        Error::InvalidCidr { .. }
    ));
    assert!(!pki.dir().exists(), "nothing may be written for bad input");
}

#[test]
fn apiserver_cert_has_sans_issuer_and_validity() {
    let (_dir, pki, _) = fresh();
    let der = der_of(&pki.apiserver_cert_path());
    let cert = ca::parse_der(&der, "apiserver").unwrap();
    assert_eq!(cert.subject().to_string(), "CN=kube-apiserver");
    assert_eq!(cert.issuer().to_string(), "CN=kubernetes");
    assert!(!cert.is_ca());

    let sans = cert_sans(&cert);
    for want in [
        "10.96.0.1",
        "127.0.0.1",
        "192.0.2.10",
        "2001:db8::10",
        "198.51.100.7",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "cp-1",
        "api.example.com",
    ] {
        assert!(
            sans.contains(&San::parse(want).unwrap()),
            "missing {want}: {sans:?}"
        );
    }
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);

    let days = |c: &x509_parser::certificate::X509Certificate<'_>| {
        let v = c.validity();
        (v.not_after.timestamp() - v.not_before.timestamp()) / 86400
    };
    assert_eq!(days(&cert), 365);
    let ca_der = der_of(&pki.ca_cert_path());
    let ca_cert = ca::parse_der(&ca_der, "ca").unwrap();
    assert_eq!(days(&ca_cert), 3650);
    assert!(ca_cert.is_ca());
    assert_eq!(ca_cert.subject().to_string(), "CN=kubernetes");
    let ku = ca_cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
}

#[test]
fn cluster_domain_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::at(dir.path());
    let mut spec = spec();
    spec.cluster_domain = "corp.internal".into();
    spec.service_cidr = "172.30.0.0/16".into();
    pki.ensure(&spec).unwrap();
    let der = der_of(&pki.apiserver_cert_path());
    let sans = cert_sans(&ca::parse_der(&der, "apiserver").unwrap());
    assert!(sans.contains(&San::dns("kubernetes.default.svc.corp.internal").unwrap()));
    assert!(sans.contains(&San::Ip("172.30.0.1".parse().unwrap())));
    assert!(!sans.contains(&San::dns("kubernetes.default.svc.cluster.local").unwrap()));
}

#[test]
fn etcd_and_client_certs_have_right_subjects_and_signers() {
    let (_dir, pki, _) = fresh();
    let check = |path: PathBuf, subject: &str, issuer: &str, server: bool, client: bool| {
        let der = der_of(&path);
        let cert = ca::parse_der(&der, "leaf").unwrap();
        assert_eq!(cert.subject().to_string(), subject, "{}", path.display());
        assert_eq!(cert.issuer().to_string(), issuer, "{}", path.display());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert_eq!(
            (eku.server_auth, eku.client_auth),
            (server, client),
            "{}",
            path.display()
        );
        cert_sans(&cert)
    };
    let etcd_sans = check(
        pki.etcd_server_cert_path(),
        "CN=cp-1",
        "CN=etcd-ca",
        true,
        true,
    );
    for want in ["192.0.2.10", "127.0.0.1", "::1", "localhost", "cp-1"] {
        assert!(
            etcd_sans.contains(&San::parse(want).unwrap()),
            "etcd server lacks {want}"
        );
    }
    assert!(!etcd_sans.contains(&San::parse("kubernetes").unwrap()));
    check(
        pki.etcd_peer_cert_path(),
        "CN=cp-1",
        "CN=etcd-ca",
        true,
        true,
    );
    check(
        pki.etcd_healthcheck_client_cert_path(),
        "CN=kube-etcd-healthcheck-client",
        "CN=etcd-ca",
        false,
        true,
    );
    check(
        pki.apiserver_etcd_client_cert_path(),
        "CN=kube-apiserver-etcd-client",
        "CN=etcd-ca",
        false,
        true,
    );
    check(
        pki.apiserver_kubelet_client_cert_path(),
        "O=system:masters, CN=kube-apiserver-kubelet-client",
        "CN=kubernetes",
        false,
        true,
    );
    let etcd_ca_der = der_of(&pki.etcd_ca_cert_path());
    let etcd_ca = ca::parse_der(&etcd_ca_der, "etcd ca").unwrap();
    assert!(etcd_ca.is_ca());
}

/// Signature check with x509-parser: fails if leaves were signed by the wrong key or if the
/// two CAs were mixed up.
#[test]
fn leaves_verify_against_their_ca_signature() {
    let (_dir, pki, _) = fresh();
    let ca_der = der_of(&pki.ca_cert_path());
    let etcd_ca_der = der_of(&pki.etcd_ca_cert_path());
    let ca_cert = ca::parse_der(&ca_der, "ca").unwrap();
    let etcd_ca_cert = ca::parse_der(&etcd_ca_der, "etcd ca").unwrap();

    let api_der = der_of(&pki.apiserver_cert_path());
    let api = ca::parse_der(&api_der, "apiserver").unwrap();
    api.verify_signature(Some(ca_cert.public_key())).unwrap();
    assert!(
        api.verify_signature(Some(etcd_ca_cert.public_key()))
            .is_err()
    );

    let etcd_der = der_of(&pki.etcd_server_cert_path());
    let etcd = ca::parse_der(&etcd_der, "etcd server").unwrap();
    etcd.verify_signature(Some(etcd_ca_cert.public_key()))
        .unwrap();
    assert!(etcd.verify_signature(Some(ca_cert.public_key())).is_err());

    ca_cert.verify_signature(None).unwrap(); // self-signed
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_path: &Path) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der_of(ca_path))).unwrap();
    Arc::new(roots)
}

/// Full path validation as a TLS client would do it (webpki via rustls): chain, validity,
/// EKU and the name the client dialled.
#[test]
fn apiserver_cert_passes_webpki_server_verification() {
    use rustls::client::danger::ServerCertVerifier;
    let (dir, pki, _) = fresh();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(&pki.ca_cert_path()),
        provider(),
    )
    .build()
    .unwrap();
    let leaf = CertificateDer::from(der_of(&pki.apiserver_cert_path()));
    for name in [
        "kubernetes.default.svc.cluster.local",
        "kubernetes",
        "localhost",
        "10.96.0.1",
        "127.0.0.1",
        "192.0.2.10",
        "api.example.com",
    ] {
        let server_name = ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let wrong = ServerName::try_from("evil.example.com").unwrap();
    assert!(
        verifier
            .verify_server_cert(&leaf, &[], &wrong, &[], UnixTime::now())
            .is_err()
    );

    // The same certificate must not verify under another cluster's CA.
    let other = Pki::at(dir.path().join("other"));
    other.ensure(&spec()).unwrap();
    let foreign = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots(&other.ca_cert_path()),
        provider(),
    )
    .build()
    .unwrap();
    let name = ServerName::try_from("kubernetes").unwrap();
    assert!(
        foreign
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .is_err()
    );
}

/// Client certificates verify as TLS clients would be verified by etcd and the apiserver.
#[test]
fn client_certs_pass_webpki_client_verification() {
    let (_dir, pki, _) = fresh();
    let etcd_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&pki.etcd_ca_cert_path()),
        provider(),
    )
    .build()
    .unwrap();
    for path in [
        pki.apiserver_etcd_client_cert_path(),
        pki.etcd_healthcheck_client_cert_path(),
        pki.etcd_peer_cert_path(),
    ] {
        let leaf = CertificateDer::from(der_of(&path));
        etcd_verifier
            .verify_client_cert(&leaf, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let api_verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(&pki.ca_cert_path()),
        provider(),
    )
    .build()
    .unwrap();
    let (cert_pem, _) = pki
        .issue_client_cert("kubernetes-admin", &["system:masters"], LEAF_VALIDITY)
        .unwrap();
    let leaf = CertificateDer::from(ca::pem_to_der(&cert_pem, "admin").unwrap());
    api_verifier
        .verify_client_cert(&leaf, &[], UnixTime::now())
        .unwrap();
    // An etcd client certificate is no good for the apiserver.
    let etcd_leaf = CertificateDer::from(der_of(&pki.apiserver_etcd_client_cert_path()));
    assert!(
        api_verifier
            .verify_client_cert(&etcd_leaf, &[], UnixTime::now())
            .is_err()
    );
}

fn openssl() -> Option<Command> {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => Some(Command::new("openssl")),
        _ => {
            eprintln!("note: openssl not found, skipping the openssl cross-check");
            None
        }
    }
}

#[test]
fn openssl_verifies_the_chain() {
    let Some(_) = openssl() else { return };
    let (_dir, pki, _) = fresh();
    let verify = |ca: PathBuf, leaf: PathBuf, purpose: &str| {
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-purpose")
            .arg(purpose)
            .arg("-CAfile")
            .arg(&ca)
            .arg(&leaf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl verify {}: {}{}",
            leaf.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    verify(pki.ca_cert_path(), pki.apiserver_cert_path(), "sslserver");
    verify(
        pki.ca_cert_path(),
        pki.apiserver_kubelet_client_cert_path(),
        "sslclient",
    );
    verify(
        pki.etcd_ca_cert_path(),
        pki.etcd_server_cert_path(),
        "sslserver",
    );
    verify(
        pki.etcd_ca_cert_path(),
        pki.etcd_peer_cert_path(),
        "sslclient",
    );
    verify(
        pki.etcd_ca_cert_path(),
        pki.etcd_healthcheck_client_cert_path(),
        "sslclient",
    );
    verify(
        pki.etcd_ca_cert_path(),
        pki.apiserver_etcd_client_cert_path(),
        "sslclient",
    );

    // openssl must also reject the wrong CA, or the check above proves nothing.
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(pki.etcd_ca_cert_path())
        .arg(pki.apiserver_cert_path())
        .output()
        .unwrap();
    assert!(!out.status.success());

    // openssl reads our PKCS#8 keys and they match their certificates.
    let pubkey = |args: &[&str], path: PathBuf| {
        let out = Command::new("openssl")
            .args(args)
            .arg("-in")
            .arg(&path)
            .arg("-pubout")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let from_cert = {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(pki.apiserver_cert_path())
            .output()
            .unwrap();
        out.stdout
    };
    assert_eq!(pubkey(&["pkey"], pki.apiserver_key_path()), from_cert);
    assert_eq!(
        pubkey(&["pkey"], pki.sa_key_path()),
        fs::read(pki.sa_pub_path()).unwrap()
    );
}

#[test]
fn ca_cert_hash_matches_openssl_pipeline() {
    let (_dir, pki, _) = fresh();
    let pem = fs::read_to_string(pki.ca_cert_path()).unwrap();
    let hash = ca_cert_hash(&pem).unwrap();
    assert!(hash.starts_with("sha256:"));
    assert_eq!(hash.len(), "sha256:".len() + 64);
    // Stable for the same CA.
    assert_eq!(ca_cert_hash(&pem).unwrap(), hash);
    assert!(ca_cert_hash("not pem").is_err());

    if openssl().is_none() {
        return;
    }
    let script = format!(
        "openssl x509 -pubkey -noout -in '{}' | openssl pkey -pubin -outform der | sha256sum",
        pki.ca_cert_path().display()
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hex = stdout.split_whitespace().next().unwrap();
    assert_eq!(hash, format!("sha256:{hex}"));
}

#[test]
fn issue_client_cert_uses_cluster_ca() {
    let (_dir, pki, _) = fresh();
    let (cert_pem, key_pem) = pki
        .issue_client_cert("system:kube-scheduler", &[], Duration::from_secs(3600))
        .unwrap();
    let der = ca::pem_to_der(&cert_pem, "client").unwrap();
    let cert = ca::parse_der(&der, "client").unwrap();
    assert_eq!(cert.subject().to_string(), "CN=system:kube-scheduler");
    assert_eq!(cert.issuer().to_string(), "CN=kubernetes");
    assert!(ca::key_matches(
        &cert,
        &KeyPair::from_pem(&key_pem).unwrap()
    ));
    assert!(pki.load_ca().unwrap().signed(&cert));
    let v = cert.validity();
    let secs = v.not_after.timestamp() - v.not_before.timestamp();
    assert_eq!(secs, 3600 + ca::CLOCK_SKEW.as_secs() as i64);
}

#[test]
fn inventory_lists_certs_and_kubeconfig_client_certs() {
    let (dir, pki, _) = fresh();
    let paths = kubeconfig::ensure_control_plane_kubeconfigs(
        &pki,
        dir.path(),
        "kadm",
        "https://192.0.2.10:6443",
    )
    .unwrap();
    let mut kubeconfigs = paths.clone();
    kubeconfigs.push(dir.path().join("kubelet.conf")); // absent: skipped
    let inv = pki.inventory(&kubeconfigs).unwrap();
    let by_name: BTreeMap<&str, &CertInfo> = inv.iter().map(|c| (c.name.as_str(), c)).collect();
    let names: Vec<&str> = by_name.keys().copied().collect();
    assert_eq!(
        names,
        [
            "admin.conf",
            "apiserver",
            "apiserver-etcd-client",
            "apiserver-kubelet-client",
            "ca",
            "controller-manager.conf",
            "etcd-ca",
            "etcd-healthcheck-client",
            "etcd-peer",
            "etcd-server",
            "scheduler.conf",
        ]
    );
    let admin = by_name["admin.conf"];
    assert_eq!(admin.subject, "kubernetes-admin");
    assert_eq!(admin.issuer, "kubernetes");
    assert!(!admin.is_ca);
    assert_eq!(admin.path, paths[0]);
    let ca = by_name["ca"];
    assert!(ca.is_ca);
    assert_eq!(
        (ca.subject.as_str(), ca.issuer.as_str()),
        ("kubernetes", "kubernetes")
    );
    assert_eq!(by_name["etcd-server"].issuer, "etcd-ca");
    assert_eq!(by_name["scheduler.conf"].subject, "system:kube-scheduler");

    let now = chrono::Utc::now();
    let left = by_name["apiserver"].residual(now);
    assert!(left > chrono::Duration::days(364) && left <= chrono::Duration::days(365));
    let ca_left = ca.residual(now);
    assert!(ca_left > chrono::Duration::days(3649));
    assert!(ca.residual(now + chrono::Duration::days(4000)) < chrono::Duration::zero());
}
