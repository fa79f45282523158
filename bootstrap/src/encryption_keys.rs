//! The key file of encryption at rest: `kadm init` writes `<etc>/encryption-config.yaml`
//! (Kubernetes' `EncryptionConfiguration`: Secrets encrypted with one AES-CBC key, the
//! `identity` fallback for values written before), and `kadm secrets rotate-key` rotates it.
//!
//! # Rotation
//!
//! ```text
//!  keys [k1]  ──add k2 first, keep k1──►  [k2, k1]  ──restart apiserver──►  k2 writes, k1 reads
//!       ──rewrite every Secret (GET + PUT)──►  all under k2  ──drop k1──►  [k2]  ──restart──►  done
//! ```
//!
//! The old key leaves the file only after every Secret was rewritten, so a rotation that
//! stops anywhere (a crash, a conflict storm, an apiserver that does not come back) leaves a
//! file that reads everything. Running the command again finds more than one key and
//! finishes that rotation instead of starting another.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use rand::RngCore;
use serde_yaml::Value;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::pki::fsutil;
use crate::supervisor;

/// The apiserver component, as the supervisor names it.
const APISERVER: &str = "kadm-apiserver";
/// The field manager of the rewrites (shown in `managedFields` if a rewrite changes a field).
const FIELD_MANAGER: &str = "kadm-rotate-key";
/// Attempts per Secret when others write it meanwhile (409 Conflict).
const CONFLICT_ATTEMPTS: usize = 8;
/// Secrets per list page.
const PAGE: u32 = 250;

const HEADER: &str = "\
# Encryption at rest for kadm-apiserver (--encryption-provider-config), in Kubernetes'
# EncryptionConfiguration format. The first key of the first provider encrypts what is
# written; every key listed decrypts. Rotate with `kadm secrets rotate-key`.
# Without this file every Secret in etcd is unreadable: back it up with etcd's backups.
";

/// 32 random bytes, base64: an AES-256 (or secretbox) key.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The file `kadm init` writes: Secrets under one new aescbc key, plaintext still readable.
pub fn initial_config(secret: &str) -> String {
    format!(
        "{HEADER}apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      - secrets\n    providers:\n      - aescbc:\n          keys:\n            - name: key1\n              secret: {secret}\n      - identity: {{}}\n"
    )
}

/// Writes the initial file (0600) unless one exists; an existing file is kept, because
/// its keys are the only way to read the Secrets already in etcd. Returns whether it wrote.
pub fn ensure_config(path: &Path) -> Result<bool> {
    if fsutil::exists(path)? {
        // A file the apiserver cannot use would only fail later, at its start.
        KeyFile::load(path)?;
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fsutil::ensure_private_dir(dir)?;
    }
    fsutil::write_atomic(path, initial_config(&generate_secret()).as_bytes(), 0o600)?;
    Ok(true)
}

/// One key of the Secrets provider.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    name: String,
    secret: String,
}

/// The config file with the place of the Secrets' write provider found in it; everything
/// else in the file is kept as it is.
struct KeyFile {
    doc: Value,
    rule: usize,
    provider: String,
}

impl KeyFile {
    fn load(path: &Path) -> Result<KeyFile> {
        let bad = |reason: String| Error::parse(path.display().to_string(), reason);
        let text = fsutil::read_string(path)?;
        let doc: Value = serde_yaml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let rules = doc
            .get("resources")
            .and_then(Value::as_sequence)
            .ok_or_else(|| bad("no resources list; it is not an EncryptionConfiguration".into()))?;
        let rule = rules
            .iter()
            .position(|r| {
                r.get("resources")
                    .and_then(Value::as_sequence)
                    .is_some_and(|rs| rs.iter().any(|x| x.as_str() == Some("secrets")))
            })
            .ok_or_else(|| {
                bad(
                    "no rule lists `secrets`; encryption at rest is not configured for Secrets"
                        .into(),
                )
            })?;
        let names: Vec<&str> = rules[rule]
            .get("resources")
            .and_then(Value::as_sequence)
            .map(|rs| rs.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if names != ["secrets"] {
            return Err(bad(format!(
                "the rule for secrets also covers {}; rotate-key rewrites only Secrets, so rotate that rule by hand (https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/#rotating-a-decryption-key)",
                names
                    .iter()
                    .filter(|n| **n != "secrets")
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let first = rules[rule]
            .get("providers")
            .and_then(Value::as_sequence)
            .and_then(|p| p.first())
            .and_then(Value::as_mapping)
            .ok_or_else(|| bad("the rule for secrets has no providers".into()))?;
        let provider = first
            .keys()
            .next()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !matches!(provider.as_str(), "aescbc" | "aesgcm" | "secretbox") {
            return Err(bad(format!(
                "the first provider for secrets is {provider:?}, so Secrets are not encrypted and there is no key to rotate; put an aescbc provider first"
            )));
        }
        let file = KeyFile {
            doc,
            rule,
            provider,
        };
        if file.keys().is_empty() {
            return Err(bad(format!("the {} provider has no keys", file.provider)));
        }
        Ok(file)
    }

    fn keys_value(&self) -> Option<&Value> {
        self.doc
            .get("resources")?
            .get(self.rule)?
            .get("providers")?
            .get(0)?
            .get(&self.provider)?
            .get("keys")
    }

    fn keys(&self) -> Vec<Key> {
        self.keys_value()
            .and_then(Value::as_sequence)
            .map(|ks| {
                ks.iter()
                    .filter_map(|k| {
                        Some(Key {
                            name: k.get("name")?.as_str()?.to_string(),
                            secret: k.get("secret")?.as_str()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_keys(&mut self, keys: &[Key]) {
        let seq: Vec<Value> = keys
            .iter()
            .map(|k| {
                let mut m = serde_yaml::Mapping::new();
                m.insert("name".into(), k.name.clone().into());
                m.insert("secret".into(), k.secret.clone().into());
                Value::Mapping(m)
            })
            .collect();
        if let Some(slot) = self
            .doc
            .get_mut("resources")
            .and_then(|r| r.get_mut(self.rule))
            .and_then(|r| r.get_mut("providers"))
            .and_then(|p| p.get_mut(0))
            .and_then(|p| p.get_mut(&self.provider))
            .and_then(Value::as_mapping_mut)
        {
            slot.insert("keys".into(), Value::Sequence(seq));
        }
    }

    /// Written atomically (0600): the apiserver never reads half a key list.
    fn save(&self, path: &Path) -> Result<()> {
        let yaml = serde_yaml::to_string(&self.doc).map_err(|source| Error::Yaml {
            action: "encode encryption config",
            source,
        })?;
        fsutil::write_atomic(path, format!("{HEADER}{yaml}").as_bytes(), 0o600)
    }
}

/// `key<N>` with N one past the highest number among the existing `key<N>` names.
fn next_key_name(keys: &[Key]) -> String {
    let n = keys
        .iter()
        .filter_map(|k| k.name.strip_prefix("key")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("key{}", n + 1)
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// The key that writes now.
    pub key: String,
    pub provider: String,
    /// Keys removed once every Secret was rewritten.
    pub dropped: Vec<String>,
    pub rewritten: usize,
    /// An earlier, unfinished rotation was completed instead of starting a new one.
    pub resumed: bool,
}

/// How long to wait for the apiserver after each restart.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    pub ready_timeout: Duration,
}

/// Rotates the Secrets' key of `layout`'s control plane (see the module documentation);
/// `say` receives one line per step.
pub async fn rotate_key(
    layout: &Layout,
    opts: &RotateOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<RotateReport> {
    let path = layout.encryption_config();
    if !fsutil::exists(&path)? {
        return Err(Error::parse(
            path.display().to_string(),
            "missing: this host runs without encryption at rest (initialized by an older kadm?); encryption cannot be rotated before it is enabled",
        ));
    }
    check_apiserver_reads(layout, &path)?;
    let mut file = KeyFile::load(&path)?;
    let keys = file.keys();
    let resumed = keys.len() > 1;
    let write_key = if resumed {
        say(&format!(
            "{}: {} key {} already writes and {} still read: finishing that rotation",
            path.display(),
            file.provider,
            keys[0].name,
            names(&keys[1..])
        ));
        keys[0].clone()
    } else {
        let new = Key {
            name: next_key_name(&keys),
            secret: generate_secret(),
        };
        let mut all = vec![new.clone()];
        all.extend(keys.iter().cloned());
        file.set_keys(&all);
        file.save(&path)?;
        say(&format!(
            "added {} key {} to {} as the write key ({} kept for reading)",
            file.provider,
            new.name,
            path.display(),
            names(&keys)
        ));
        new
    };
    restart_apiserver(layout, opts, say).await?;

    let rewritten = rewrite_secrets(layout).await.map_err(|e| match e {
        Error::Api { action, reason } => Error::Api {
            action,
            reason: format!(
                "{reason}; the old keys stay in {} so every Secret still reads: re-run `kadm secrets rotate-key` to finish",
                path.display()
            ),
        },
        other => other,
    })?;
    say(&format!(
        "rewrote {rewritten} secrets with {} key {}",
        file.provider, write_key.name
    ));

    let file_now = KeyFile::load(&path)?;
    let current = file_now.keys();
    let dropped: Vec<Key> = current
        .iter()
        .filter(|k| k.name != write_key.name)
        .cloned()
        .collect();
    let mut file = file_now;
    if !dropped.is_empty() {
        file.set_keys(std::slice::from_ref(&write_key));
        file.save(&path)?;
        say(&format!(
            "removed the old keys {} from {}",
            names(&dropped),
            path.display()
        ));
        restart_apiserver(layout, opts, say).await?;
    }
    Ok(RotateReport {
        key: write_key.name,
        provider: file.provider,
        dropped: dropped.into_iter().map(|k| k.name).collect(),
        rewritten,
        resumed,
    })
}

fn names(keys: &[Key]) -> String {
    keys.iter()
        .map(|k| k.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The supervisor must start the apiserver with this file, or a rotation changes nothing.
fn check_apiserver_reads(layout: &Layout, path: &Path) -> Result<()> {
    let sup = supervisor::SupervisorConfig::load(&layout.supervisor_config())?;
    let flag = format!("--encryption-provider-config={}", path.display());
    let reads = sup
        .components
        .iter()
        .any(|c| c.name == APISERVER && c.args.contains(&flag));
    if !reads {
        return Err(Error::parse(
            layout.supervisor_config().display().to_string(),
            format!(
                "{APISERVER} does not run with {flag}; add it to the component's args (then restart the supervisor) before rotating"
            ),
        ));
    }
    Ok(())
}

async fn restart_apiserver(
    layout: &Layout,
    opts: &RotateOptions,
    say: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let old = supervisor::restart_component(&layout.run_dir, APISERVER)?;
    let new =
        supervisor::wait_restarted(&layout.run_dir, APISERVER, old, opts.ready_timeout).await?;
    // Ready in the supervisor's eyes is its /readyz probe; check it once more from here, as
    // the rewrite that follows depends on it.
    let deadline = std::time::Instant::now() + opts.ready_timeout;
    while !crate::init::apiserver_ready(layout).await {
        if std::time::Instant::now() > deadline {
            return Err(Error::NotReady {
                what: format!("{APISERVER} after its restart"),
                after: opts.ready_timeout,
                logs: layout.log_dir.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say(&format!("restarted {APISERVER} (pid {old} → {new}), ready"));
    Ok(())
}

/// GET and PUT every Secret, so each is stored with the current write key. A Secret
/// deleted meanwhile is skipped; one written meanwhile is read again and retried.
async fn rewrite_secrets(layout: &Layout) -> Result<usize> {
    let admin = layout.admin_conf();
    let client = kadm_base::process::client_from_kubeconfig(&admin)
        .await
        .map_err(|e| Error::Api {
            action: format!("connect with {}", admin.display()),
            reason: e.to_string(),
        })?;
    let all: Api<Secret> = Api::all(client.clone());
    let mut targets: Vec<(String, String)> = Vec::new();
    let mut continue_token: Option<String> = None;
    // Bounded: one page per PAGE secrets; a million secrets is 4000 pages.
    for _ in 0..100_000 {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &continue_token {
            lp = lp.continue_token(t);
        }
        let page = all.list_metadata(&lp).await.map_err(|e| Error::Api {
            action: "list secrets".into(),
            reason: e.to_string(),
        })?;
        for s in &page.items {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                targets.push((ns.clone(), name.clone()));
            }
        }
        continue_token = page.metadata.continue_.filter(|t| !t.is_empty());
        if continue_token.is_none() {
            break;
        }
    }
    let mut rewritten = 0;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    for (ns, name) in &targets {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = match api.get_opt(name).await {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Api {
                        action: format!("read secret {ns}/{name}"),
                        reason: e.to_string(),
                    });
                }
            };
            match api.replace(name, &pp, &current).await {
                Ok(_) => {
                    rewritten += 1;
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => break,
                Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_ATTEMPTS => {
                    tracing::debug!(namespace = %ns, name = %name, attempt, "secret changed meanwhile; retrying");
                }
                Err(e) => {
                    return Err(Error::Api {
                        action: format!("rewrite secret {ns}/{name}"),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn init_writes_one_private_aescbc_key_and_keeps_an_existing_file() {
        let dir = tmp();
        let path = dir.path().join("etc/kadm/encryption-config.yaml");
        assert!(ensure_config(&path).expect("write"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("kind: EncryptionConfiguration"), "{text}");
        assert!(text.contains("- identity: {}"), "{text}");
        let file = KeyFile::load(&path).expect("load");
        assert_eq!(file.provider, "aescbc");
        let keys = file.keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name, "key1");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&keys[0].secret)
            .expect("base64");
        assert_eq!(raw.len(), 32);
        // Re-running keeps the file byte for byte.
        assert!(!ensure_config(&path).expect("keep"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
    }

    #[test]
    fn two_generated_keys_differ() {
        assert_ne!(generate_secret(), generate_secret());
    }

    #[test]
    fn key_list_edits_keep_the_rest_of_the_file() {
        let dir = tmp();
        let path = dir.path().join("enc.yaml");
        std::fs::write(
            &path,
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [events]\n  providers: [{identity: {}}]\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - {name: key7, secret: a2V5Nw==}\n      - {name: old, secret: b2xk}\n  - identity: {}\n",
        )
        .expect("write");
        let mut file = KeyFile::load(&path).expect("load");
        assert_eq!(file.rule, 1);
        assert_eq!(file.provider, "aesgcm");
        assert_eq!(next_key_name(&file.keys()), "key8");
        file.set_keys(&[Key {
            name: "key8".into(),
            secret: "bmV3".into(),
        }]);
        file.save(&path).expect("save");
        let back = KeyFile::load(&path).expect("reload");
        assert_eq!(
            back.keys(),
            vec![Key {
                name: "key8".into(),
                secret: "bmV3".into()
            }]
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("events") && text.contains("identity"),
            "{text}"
        );
    }

    #[test]
    fn files_rotate_key_cannot_handle_are_refused_with_the_reason() {
        let dir = tmp();
        let path = dir.path().join("enc.yaml");
        for (body, want) in [
            (
                "resources:\n- resources: [configmaps]\n  providers: [{identity: {}}]\n",
                "no rule lists `secrets`",
            ),
            (
                "resources:\n- resources: [secrets]\n  providers: [{identity: {}}, {aescbc: {keys: [{name: k, secret: x}]}}]\n",
                "Secrets are not encrypted",
            ),
            (
                "resources:\n- resources: [secrets, configmaps]\n  providers: [{aescbc: {keys: [{name: k, secret: x}]}}]\n",
                "also covers configmaps",
            ),
            (
                "resources:\n- resources: [secrets]\n  providers: [{aescbc: {keys: []}}]\n",
                "has no keys",
            ),
            ("kind: Pod\n", "no resources list"),
        ] {
            std::fs::write(&path, body).expect("write");
            let err = KeyFile::load(&path).err().expect(body).to_string();
            assert!(err.contains(want), "{body}: {err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
        }
    }

    #[test]
    fn key_names_count_up() {
        let k = |n: &str| Key {
            name: n.into(),
            secret: String::new(),
        };
        assert_eq!(next_key_name(&[k("key1")]), "key2");
        assert_eq!(
            next_key_name(&[k("key2"), k("key10"), k("custom")]),
            "key11"
        );
        assert_eq!(next_key_name(&[k("custom")]), "key1");
    }
}
