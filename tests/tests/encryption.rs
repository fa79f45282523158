//! Secrets encrypted at rest (`--encryption-provider-config`), checked where it matters: the
//! bytes in etcd (read with etcdctl), and what clients read back through the API — after
//! enabling encryption on existing data, after a key rotation, and with a key missing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kadm_e2e::{Options, TestCluster};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use futures::{StreamExt, TryStreamExt};

/// 32 bytes each, base64.
const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const KEY3: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";
/// What the tests store; never expected in etcd once encrypted (nor its base64).
const PLAINTEXT: &str = "hunter2-correct-horse";

fn config(providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
    )
}

fn aescbc(keys: &[(&str, &str)]) -> String {
    let mut s = String::from("      - aescbc:\n          keys:\n");
    for (name, secret) in keys {
        s.push_str(&format!(
            "            - name: {name}\n              secret: {secret}\n"
        ));
    }
    s
}

const IDENTITY: &str = "      - identity: {}\n";

/// A cluster whose apiserver reads its encryption config from a file the test rewrites
/// between restarts.
async fn cluster(initial: &str) -> anyhow::Result<(TestCluster, tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("encryption-config.yaml");
    std::fs::write(&path, initial)?;
    let cluster = TestCluster::start_with(Options {
        apiserver_args: vec![format!("--encryption-provider-config={}", path.display())],
        ..Default::default()
    })
    .await?;
    Ok((cluster, dir, path))
}

async fn reconfigure(cluster: &mut TestCluster, path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)?;
    cluster.restart_apiserver().await
}

/// The raw etcd value of a key.
async fn etcd_value(cluster: &TestCluster, key: &str) -> anyhow::Result<Vec<u8>> {
    let out = cluster.etcdctl(&["get", key, "--print-value-only"]).await?;
    anyhow::ensure!(
        out.status.success(),
        "etcdctl get {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v = out.stdout;
    // etcdctl ends the value with a newline of its own.
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    anyhow::ensure!(!v.is_empty(), "{key} is not in etcd");
    Ok(v)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The stored value is ciphertext of `prefix` (`k8s:enc:aescbc:v1:key1:`) without the
/// plaintext in any form.
async fn assert_encrypted(cluster: &TestCluster, name: &str, prefix: &str) -> anyhow::Result<()> {
    let key = format!("/registry/secrets/default/{name}");
    let raw = etcd_value(cluster, &key).await?;
    anyhow::ensure!(
        raw.starts_with(prefix.as_bytes()),
        "{key} should start with {prefix:?}, starts with {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(40)])
    );
    anyhow::ensure!(!contains(&raw, PLAINTEXT), "{key} holds the plaintext");
    anyhow::ensure!(
        !contains(&raw, &b64(PLAINTEXT)),
        "{key} holds the base64 plaintext"
    );
    anyhow::ensure!(!contains(&raw, "\"kind\""), "{key} holds readable JSON");
    Ok(())
}

fn b64(s: &str) -> String {
    // Standard base64 without a dependency: Secret data as the API returns it.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (c as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn secret_value(api: &Api<Secret>, name: &str) -> anyhow::Result<String> {
    let s = api.get(name).await?;
    let data = s.data.unwrap_or_default();
    let v = data
        .get("password")
        .ok_or_else(|| anyhow::anyhow!("secret {name} has no password"))?;
    Ok(String::from_utf8(v.0.clone())?)
}

fn rv(s: &Secret) -> String {
    s.metadata.resource_version.clone().unwrap_or_default()
}

fn secret(name: &str) -> anyhow::Result<Secret> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": {"password": b64(PLAINTEXT)},
    }))?)
}

/// `kubectl get secrets -o json | kubectl replace -f -`: Kubernetes' documented way to
/// rewrite every secret with the current write key.
async fn replace_all_secrets(cluster: &TestCluster) -> anyhow::Result<()> {
    let out = cluster
        .kubectl_ok(None, &["get", "secrets", "-n", "default", "-o", "json"])
        .await?;
    let file = cluster.dir().join("secrets.json");
    std::fs::write(&file, &out.stdout)?;
    cluster
        .kubectl_ok(None, &["replace", "-f", &file.display().to_string()])
        .await?;
    Ok(())
}

#[tokio::test]
async fn secrets_are_ciphertext_in_etcd_and_plaintext_through_the_api() -> anyhow::Result<()> {
    let (cluster, _dir, _path) =
        cluster(&config(&format!("{}{IDENTITY}", aescbc(&[("key1", KEY1)])))).await?;
    cluster
        .kubectl_ok(
            None,
            &[
                "create",
                "secret",
                "generic",
                "s1",
                "-n",
                "default",
                &format!("--from-literal=password={PLAINTEXT}"),
            ],
        )
        .await?;
    assert_encrypted(&cluster, "s1", "k8s:enc:aescbc:v1:key1:").await?;

    // Read back through the API: GET (etcd), kubectl's view, and a list (the watch cache,
    // fed by the etcd watch stream that carries the ciphertext).
    let api: Api<Secret> = Api::namespaced(cluster.kube_client().await?, "default");
    assert_eq!(secret_value(&api, "s1").await?, PLAINTEXT);
    let out = cluster
        .kubectl_ok(
            None,
            &[
                "get",
                "secret",
                "s1",
                "-n",
                "default",
                "-o",
                "jsonpath={.data.password}",
            ],
        )
        .await?;
    assert_eq!(String::from_utf8(out.stdout)?, b64(PLAINTEXT));
    let listed = api.list(&Default::default()).await?;
    let s1 = listed
        .items
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("s1"))
        .ok_or_else(|| anyhow::anyhow!("s1 missing from the list"))?;
    assert_eq!(
        s1.data
            .as_ref()
            .and_then(|d| d.get("password"))
            .map(|b| b.0.clone()),
        Some(PLAINTEXT.as_bytes().to_vec())
    );

    // A watch delivers decrypted objects.
    let mut watch = api
        .watch(
            &WatchParams::default(),
            &listed.metadata.resource_version.clone().unwrap_or_default(),
        )
        .await?
        .boxed();
    api.create(&PostParams::default(), &secret("s2")?).await?;
    let ev = tokio::time::timeout(Duration::from_secs(10), watch.try_next())
        .await??
        .ok_or_else(|| anyhow::anyhow!("watch ended"))?;
    match ev {
        WatchEvent::Added(s) => {
            assert_eq!(s.metadata.name.as_deref(), Some("s2"));
            assert_eq!(
                s.data.and_then(|d| d.get("password").map(|b| b.0.clone())),
                Some(PLAINTEXT.as_bytes().to_vec())
            );
        }
        other => anyhow::bail!("unexpected watch event {other:?}"),
    }
    assert_encrypted(&cluster, "s2", "k8s:enc:aescbc:v1:key1:").await?;

    // Resources the config does not name stay plain JSON.
    cluster
        .kubectl_ok(
            None,
            &[
                "create",
                "configmap",
                "c1",
                "-n",
                "default",
                &format!("--from-literal=k={PLAINTEXT}"),
            ],
        )
        .await?;
    let cm = etcd_value(&cluster, "/registry/configmaps/default/c1").await?;
    assert!(cm.starts_with(b"{"), "{}", String::from_utf8_lossy(&cm));
    assert!(contains(&cm, PLAINTEXT));

    // An update that changes nothing writes nothing: the value is current.
    let current = api.get("s1").await?;
    let again = api.replace("s1", &PostParams::default(), &current).await?;
    assert_eq!(
        rv(&again),
        rv(&current),
        "a no-op update of a current value wrote"
    );
    Ok(())
}

#[tokio::test]
async fn enabling_and_rotating_keys_keeps_every_secret_readable() -> anyhow::Result<()> {
    // Encryption off (identity writes): what a cluster has before encryption is enabled.
    let (mut cluster, _dir, path) = cluster(&config(IDENTITY)).await?;
    let api = |c: kube::Client| -> Api<Secret> { Api::namespaced(c, "default") };
    let secrets = api(cluster.kube_client().await?);
    secrets
        .create(&PostParams::default(), &secret("old")?)
        .await?;
    let raw = etcd_value(&cluster, "/registry/secrets/default/old").await?;
    assert!(raw.starts_with(b"{") && contains(&raw, &b64(PLAINTEXT)));

    // Enable aescbc with the identity fallback: the old secret still reads.
    reconfigure(
        &mut cluster,
        &path,
        &config(&format!("{}{IDENTITY}", aescbc(&[("key1", KEY1)]))),
    )
    .await?;
    let secrets = api(cluster.kube_client().await?);
    assert_eq!(secret_value(&secrets, "old").await?, PLAINTEXT);
    assert!(
        etcd_value(&cluster, "/registry/secrets/default/old")
            .await?
            .starts_with(b"{")
    );
    // Rewriting it, unchanged, encrypts it: a stale value is written even by a no-op update.
    let before = secrets.get("old").await?;
    let after = secrets
        .replace("old", &PostParams::default(), &before)
        .await?;
    assert_ne!(rv(&after), rv(&before), "a stale value must be rewritten");
    assert_encrypted(&cluster, "old", "k8s:enc:aescbc:v1:key1:").await?;
    secrets
        .create(&PostParams::default(), &secret("new1")?)
        .await?;
    assert_encrypted(&cluster, "new1", "k8s:enc:aescbc:v1:key1:").await?;

    // Rotate: key2 writes, key1 still reads.
    reconfigure(
        &mut cluster,
        &path,
        &config(&format!(
            "{}{IDENTITY}",
            aescbc(&[("key2", KEY2), ("key1", KEY1)])
        )),
    )
    .await?;
    let secrets = api(cluster.kube_client().await?);
    for name in ["old", "new1"] {
        assert_eq!(secret_value(&secrets, name).await?, PLAINTEXT);
        assert_encrypted(&cluster, name, "k8s:enc:aescbc:v1:key1:").await?;
    }
    replace_all_secrets(&cluster).await?;
    for name in ["old", "new1"] {
        assert_encrypted(&cluster, name, "k8s:enc:aescbc:v1:key2:").await?;
    }

    // Drop key1: everything was rewritten, so everything still reads (and lists).
    reconfigure(&mut cluster, &path, &config(&aescbc(&[("key2", KEY2)]))).await?;
    let secrets = api(cluster.kube_client().await?);
    for name in ["old", "new1"] {
        assert_eq!(secret_value(&secrets, name).await?, PLAINTEXT);
    }
    assert_eq!(secrets.list(&Default::default()).await?.items.len(), 2);

    // A config without the key the values were written with: a clear 500 naming the key,
    // and the server keeps serving everything else.
    reconfigure(&mut cluster, &path, &config(&aescbc(&[("key3", KEY3)]))).await?;
    let secrets = api(cluster.kube_client().await?);
    match secrets.get("old").await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 500, "{s:?}");
            assert!(
                s.message
                    .contains("unable to transform key \"/registry/secrets/default/old\"")
                    && s.message.contains("key \"key2\""),
                "{}",
                s.message
            );
        }
        other => anyhow::bail!("expected a 500, got {other:?}"),
    }
    cluster
        .kubectl_ok(None, &["get", "configmaps", "-n", "default"])
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_bad_config_stops_the_apiserver_with_the_file_and_the_fix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("enc.yaml");
    std::fs::write(
        &path,
        config(
            "      - aescbc:\n          keys:\n            - name: key1\n              secret: c2hvcnQ=\n      - rot13: {}\n",
        ),
    )?;
    let bin = kadm_e2e::cluster::apiserver_binary()?;
    let missing = dir.path().join("missing");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(bin)
            .arg(format!("--encryption-provider-config={}", path.display()))
            .arg(format!("--tls-cert-file={}", missing.display()))
            .arg(format!("--tls-private-key-file={}", missing.display()))
            .arg(format!("--client-ca-file={}", missing.display()))
            .arg("--secure-port=0")
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "invalid encryption provider config {}",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5"),
        "{err}"
    );
    assert!(
        err.contains("resources[0].providers[1]: Unsupported value: unknown provider \"rot13\""),
        "{err}"
    );
    Ok(())
}
