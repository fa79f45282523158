//! Encryption at rest (`--encryption-provider-config`): values of the configured resources
//! are encrypted before they reach etcd and decrypted when read, as kube-apiserver does.
//!
//! A stored value names how it was written: `k8s:enc:<provider>:v1:<key>:` followed by
//! the provider's bytes (unprefixed plaintext for `identity`). Writes use the first
//! provider's first key; reads pick the provider and key by that prefix, so a config may
//! keep old keys (and `identity`) after the write key to read what was written before.
//! A value read with anything but the write key is *stale*: the storage layer then
//! rewrites it on the next update even when the object is unchanged, which is how
//! `kubectl get secrets -A -o json | kubectl replace -f -` re-encrypts everything after a
//! rotation.
//!
//! Lookup is by etcd prefix (`/registry/secrets/`), resolved once at start from the
//! resource registry, so uncovered resources pay one failed prefix scan and nothing else.

mod aescbc;
mod aesgcm;
pub mod config;
mod identity;
mod secretbox;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::aescbc::AesCbc;
use self::aesgcm::AesGcmKey;
use self::config::{Config, GroupResource, KeyedKind, ProviderSpec};
use self::secretbox::Secretbox;

/// Encryption failures: a config that cannot be used, or a stored value none of the
/// configured providers can read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read encryption provider config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid encryption provider config {path}:\n  {}\nfix the file (format: https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/) and start again",
        .problems.join("\n  ")
    )]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// Kubernetes says "unable to transform key"; kadm adds what to do about it.
    #[error("unable to transform key {key:?}: {reason}")]
    Transform { key: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One provider of a resource's list.
enum Provider {
    Identity,
    Keyed(Keyed),
}

/// An encrypting provider: its prefix and its keys, first one writes.
struct Keyed {
    kind: KeyedKind,
    /// `k8s:enc:<provider>:v1:`
    prefix: String,
    keys: Vec<NamedKey>,
}

struct NamedKey {
    name: String,
    /// `k8s:enc:<provider>:v1:<name>:`, what every value written with this key starts with.
    full_prefix: Vec<u8>,
    cipher: Cipher,
}

enum Cipher {
    AesCbc(Box<AesCbc>),
    AesGcm(AesGcmKey),
    Secretbox(Secretbox),
}

impl Cipher {
    fn new(kind: KeyedKind, secret: &[u8]) -> Option<Cipher> {
        Some(match kind {
            KeyedKind::AesCbc => Cipher::AesCbc(Box::new(AesCbc::new(secret)?)),
            KeyedKind::AesGcm => Cipher::AesGcm(AesGcmKey::new(secret)?),
            KeyedKind::Secretbox => Cipher::Secretbox(Secretbox::new(secret)?),
        })
    }

    /// `aad` is the etcd key; only AES-GCM binds it, as in Kubernetes.
    fn seal(&self, plain: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        match self {
            Cipher::AesCbc(c) => {
                c.seal(plain, out);
                Ok(())
            }
            Cipher::AesGcm(c) => c.seal(plain, aad, out),
            Cipher::Secretbox(c) => c.seal(plain, out),
        }
    }

    fn open(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, &'static str> {
        match self {
            Cipher::AesCbc(c) => c.open(data),
            Cipher::AesGcm(c) => c.open(data, aad),
            Cipher::Secretbox(c) => c.open(data),
        }
    }

    /// Bytes a value grows by, beyond the prefix (IV or nonce, tag, padding).
    fn overhead(&self) -> usize {
        match self {
            Cipher::AesCbc(_) => 32,
            Cipher::AesGcm(_) => 28,
            Cipher::Secretbox(_) => 40,
        }
    }
}

/// The providers of one resource (one etcd prefix), in the config's order.
pub struct ResourceTransformer {
    providers: Vec<Arc<Provider>>,
}

/// A value read from etcd: its plaintext and whether it was written with anything but the
/// current write key (then an update must write it even when the object is unchanged).
#[derive(Debug)]
pub struct Decrypted<'a> {
    pub data: Cow<'a, [u8]>,
    pub stale: bool,
}

impl ResourceTransformer {
    /// What to store for `plain` at `key`.
    pub fn to_storage(&self, key: &str, plain: Vec<u8>) -> Result<Vec<u8>> {
        let Some(first) = self.providers.first() else {
            return Ok(plain);
        };
        let keyed = match first.as_ref() {
            Provider::Identity => return Ok(plain),
            Provider::Keyed(k) => k,
        };
        // Validation guarantees at least one key per provider.
        let Some(write) = keyed.keys.first() else {
            return Ok(plain);
        };
        let mut out =
            Vec::with_capacity(write.full_prefix.len() + plain.len() + write.cipher.overhead());
        out.extend_from_slice(&write.full_prefix);
        write
            .cipher
            .seal(&plain, key.as_bytes(), &mut out)
            .map_err(|reason| Error::Transform {
                key: key.to_string(),
                reason: format!("{} key {:?}: {reason}", keyed.kind.name(), write.name),
            })?;
        Ok(out)
    }

    /// The plaintext of a stored value, tried with the providers whose prefix it carries.
    pub fn from_storage<'a>(&self, key: &str, data: &'a [u8]) -> Result<Decrypted<'a>> {
        let fail = |reason: String| Error::Transform {
            key: key.to_string(),
            reason,
        };
        let mut refused: Vec<String> = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            match p.as_ref() {
                Provider::Identity => match identity::read(data) {
                    Ok(plain) => {
                        return Ok(Decrypted {
                            data: Cow::Borrowed(plain),
                            stale: i != 0,
                        });
                    }
                    Err(why) => refused.push(format!("identity: {why}")),
                },
                Provider::Keyed(k) => {
                    let Some(rest) = data.strip_prefix(k.prefix.as_bytes()) else {
                        continue;
                    };
                    for (j, named) in k.keys.iter().enumerate() {
                        let Some(sealed) = rest
                            .strip_prefix(named.name.as_bytes())
                            .and_then(|r| r.strip_prefix(b":"))
                        else {
                            continue;
                        };
                        // As in Kubernetes, the key a value names decides: a failure here is
                        // the answer, not a reason to try other keys.
                        return match named.cipher.open(sealed, key.as_bytes()) {
                            Ok(plain) => Ok(Decrypted {
                                data: Cow::Owned(plain),
                                stale: i != 0 || j != 0,
                            }),
                            Err(why) => Err(fail(format!(
                                "{} key {:?} cannot decrypt it ({why}); the value was written with another key of that name, or was altered; put the key it was written with back into the encryption provider config, or delete the key from etcd",
                                k.kind.name(),
                                named.name
                            ))),
                        };
                    }
                    // k8s:enc:<provider>:v1:<key>: — name the key the value asks for.
                    let wanted = rest
                        .split(|b| *b == b':')
                        .next()
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default();
                    return Err(fail(format!(
                        "no matching key was found for the provided {} transformer: the value was written with key {wanted:?}, which the encryption provider config does not have; add that key back",
                        k.kind.name()
                    )));
                }
            }
        }
        if data.starts_with(identity::ENCRYPTED_MARKER) {
            let provider = data
                .split(|b| *b == b':')
                .nth(2)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return Err(fail(format!(
                "no matching prefix found: the value is encrypted with provider {provider:?}, which the encryption provider config does not list for this resource; add it (with the key) as a later provider"
            )));
        }
        refused.push(
            "the value is not encrypted and the resource's providers have no identity; add `- identity: {}` as the last provider to read values written before encryption was enabled".into(),
        );
        Err(fail(format!(
            "no matching prefix found: {}",
            refused.join("; ")
        )))
    }

    /// The name of what writes: `aescbc key "key1"`, or `identity`.
    pub fn describe_writer(&self) -> String {
        match self.providers.first().map(|p| p.as_ref()) {
            Some(Provider::Keyed(k)) => match k.keys.first() {
                Some(key) => format!("{} key {:?}", k.kind.name(), key.name),
                None => k.kind.name().to_string(),
            },
            _ => "identity".into(),
        }
    }
}

/// Every configured resource's providers, by etcd prefix.
pub struct Transformers {
    /// `(/registry/<etcd prefix>/, providers)`; short, scanned per storage call.
    by_prefix: Vec<(String, Arc<ResourceTransformer>)>,
}

impl Transformers {
    /// Reads, validates and builds `path`; every problem is reported at once.
    pub fn load(path: &Path) -> Result<Transformers> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |problems| Error::Invalid {
            path: path.to_path_buf(),
            problems,
        };
        let cfg = config::parse(&text).map_err(invalid)?;
        let t = Transformers::build(&cfg, kadm_apimachinery::registry::all()).map_err(invalid)?;
        let unknown = unknown_resources(&cfg, kadm_apimachinery::registry::all());
        if !unknown.is_empty() {
            // Kubernetes accepts resources it does not (yet) serve, e.g. custom resources.
            tracing::warn!(file = %path.display(), resources = %unknown.join(","), "encryption provider config names resources kadm does not serve; they are not encrypted");
        }
        let covered: Vec<String> = t
            .by_prefix
            .iter()
            .map(|(prefix, r)| format!("{prefix} ({})", r.describe_writer()))
            .collect();
        tracing::info!(file = %path.display(), resources = %covered.join(", "), "encryption at rest configured");
        Ok(t)
    }

    /// The transformers of every served resource a rule covers: an exact `resource.group`
    /// first, then `*.group`, then `*.*`, as Kubernetes looks them up.
    fn build(
        cfg: &Config,
        registry: &[kadm_apimachinery::ResourceInfo],
    ) -> Result<Transformers, Vec<String>> {
        let mut problems = Vec::new();
        let mut chains: Vec<(GroupResource, Vec<Arc<Provider>>)> = Vec::new();
        for (i, rule) in cfg.rules.iter().enumerate() {
            let mut providers = Vec::new();
            for (j, spec) in rule.providers.iter().enumerate() {
                match spec {
                    ProviderSpec::Identity => providers.push(Arc::new(Provider::Identity)),
                    ProviderSpec::Keyed { kind, keys } => {
                        let mut built = Vec::new();
                        for (k, key) in keys.iter().enumerate() {
                            match Cipher::new(*kind, &key.secret) {
                                Some(cipher) => built.push(NamedKey {
                                    full_prefix: format!(
                                        "k8s:enc:{}:v1:{}:",
                                        kind.name(),
                                        key.name
                                    )
                                    .into_bytes(),
                                    name: key.name.clone(),
                                    cipher,
                                }),
                                None => problems.push(format!(
                                    "resources[{i}].providers[{j}].{}.keys[{k}].secret: the key cannot be used",
                                    kind.name()
                                )),
                            }
                        }
                        providers.push(Arc::new(Provider::Keyed(Keyed {
                            kind: *kind,
                            prefix: format!("k8s:enc:{}:v1:", kind.name()),
                            keys: built,
                        })));
                    }
                }
            }
            for gr in &rule.resources {
                // A resource in several rules reads with every rule's providers, in order
                // (Kubernetes appends them).
                match chains.iter_mut().find(|(g, _)| g == gr) {
                    Some((_, chain)) => chain.extend(providers.iter().cloned()),
                    None => chains.push((gr.clone(), providers.clone())),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let lookup =
            |gr: &GroupResource| chains.iter().find(|(g, _)| g == gr).map(|(_, c)| c.clone());
        let mut by_prefix: Vec<(String, Arc<ResourceTransformer>)> = Vec::new();
        for r in registry {
            // events.k8s.io events live under core events' prefix and follow its rule.
            if r.group == "events.k8s.io" {
                continue;
            }
            let prefix = format!("/registry/{}/", r.etcd_prefix);
            if by_prefix.iter().any(|(p, _)| *p == prefix) {
                continue;
            }
            let exact = GroupResource {
                group: r.group.into(),
                resource: r.plural.into(),
            };
            let chain = lookup(&exact)
                .or_else(|| lookup(&GroupResource::any_in_group(r.group)))
                .or_else(|| lookup(&GroupResource::any()));
            if let Some(providers) = chain {
                by_prefix.push((prefix, Arc::new(ResourceTransformer { providers })));
            }
        }
        Ok(Transformers { by_prefix })
    }

    /// The providers for an etcd key, if its resource is configured.
    pub fn for_key(&self, key: &str) -> Option<&ResourceTransformer> {
        self.by_prefix
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
            .map(|(_, t)| t.as_ref())
    }

    /// The providers for a whole etcd prefix (`/registry/secrets/`), for the watch cache.
    pub fn for_prefix(&self, prefix: &str) -> Option<Arc<ResourceTransformer>> {
        self.by_prefix
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, t)| t.clone())
    }
}

/// Named resources (not wildcards) that kadm does not serve.
fn unknown_resources(cfg: &Config, registry: &[kadm_apimachinery::ResourceInfo]) -> Vec<String> {
    let mut out = Vec::new();
    for rule in &cfg.rules {
        for gr in &rule.resources {
            if gr.resource == "*" {
                continue;
            }
            if !registry
                .iter()
                .any(|r| r.group == gr.group && r.plural == gr.resource)
            {
                out.push(gr.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
    const SECRET_KEY: &str = "/registry/secrets/default/s1";
    const PLAIN: &[u8] = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#;

    fn transformers(resources: &str) -> Transformers {
        let text = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n{resources}"
        );
        let cfg = config::parse(&text).expect("valid config");
        Transformers::build(&cfg, kadm_apimachinery::registry::all()).expect("build")
    }

    fn secrets(providers: &str) -> Transformers {
        transformers(&format!(
            "- resources: [secrets]\n  providers:\n{providers}"
        ))
    }

    fn roundtrip(t: &Transformers) -> Vec<u8> {
        let r = t.for_key(SECRET_KEY).expect("secrets are covered");
        let stored = r.to_storage(SECRET_KEY, PLAIN.to_vec()).expect("encrypt");
        let back = r.from_storage(SECRET_KEY, &stored).expect("decrypt");
        assert_eq!(back.data.as_ref(), PLAIN);
        assert!(!back.stale, "written with the write key, so not stale");
        stored
    }

    #[test]
    fn every_provider_writes_its_prefix_and_reads_back() {
        for (provider, prefix) in [
            ("aescbc", "k8s:enc:aescbc:v1:key1:"),
            ("aesgcm", "k8s:enc:aesgcm:v1:key1:"),
            ("secretbox", "k8s:enc:secretbox:v1:key1:"),
        ] {
            let t = secrets(&format!(
                "  - {provider}: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
            ));
            let stored = roundtrip(&t);
            assert!(stored.starts_with(prefix.as_bytes()), "{provider}");
            assert!(
                !stored.windows(8).any(|w| w == b"aHVudGVy"),
                "{provider} leaked the plaintext"
            );
        }
    }

    #[test]
    fn identity_first_stores_plaintext() {
        let t = secrets(&format!(
            "  - identity: {{}}\n  - aescbc: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
        ));
        assert_eq!(roundtrip(&t), PLAIN);
    }

    #[test]
    fn uncovered_resources_have_no_transformer() {
        let t = secrets(&format!(
            "  - aescbc: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
        ));
        assert!(t.for_key("/registry/configmaps/default/c").is_none());
        assert!(t.for_key("/registry/secrets/default/s").is_some());
        let prefixes: Vec<&str> = t.by_prefix.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(prefixes, vec!["/registry/secrets/"]);
    }

    #[test]
    fn wildcards_resolve_like_kubernetes() {
        let t = transformers(&format!(
            "- resources: [events]\n  providers: [{{identity: {{}}}}]\n- resources: ['*.apps']\n  providers: [{{aesgcm: {{keys: [{{name: a, secret: {K1}}}]}}}}]\n- resources: ['*.*']\n  providers: [{{secretbox: {{keys: [{{name: s, secret: {K1}}}]}}}}]\n"
        ));
        let writer = |key: &str| t.for_key(key).expect(key).describe_writer();
        assert_eq!(writer("/registry/events/default/e"), "identity");
        assert_eq!(
            writer("/registry/deployments/default/d"),
            "aesgcm key \"a\""
        );
        assert_eq!(writer("/registry/secrets/default/s"), "secretbox key \"s\"");
        assert_eq!(
            writer("/registry/services/specs/default/s"),
            "secretbox key \"s\""
        );
        assert_eq!(writer("/registry/minions/n1"), "secretbox key \"s\"");
    }

    #[test]
    fn old_keys_and_plaintext_read_as_stale() {
        let old = secrets(&format!(
            "  - aescbc: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
        ));
        let with_key1 = old
            .for_key(SECRET_KEY)
            .expect("covered")
            .to_storage(SECRET_KEY, PLAIN.to_vec())
            .expect("encrypt");
        let rotated = secrets(&format!(
            "  - aescbc: {{keys: [{{name: key2, secret: {K2}}}, {{name: key1, secret: {K1}}}]}}\n  - identity: {{}}\n"
        ));
        let r = rotated.for_key(SECRET_KEY).expect("covered");
        let read = r
            .from_storage(SECRET_KEY, &with_key1)
            .expect("old key still reads");
        assert_eq!(read.data.as_ref(), PLAIN);
        assert!(read.stale, "read with the second key");
        let plain = r
            .from_storage(SECRET_KEY, PLAIN)
            .expect("identity reads plaintext");
        assert!(plain.stale, "read with a later provider");
        let rewritten = r.to_storage(SECRET_KEY, PLAIN.to_vec()).expect("encrypt");
        assert!(rewritten.starts_with(b"k8s:enc:aescbc:v1:key2:"));
        assert!(!r.from_storage(SECRET_KEY, &rewritten).expect("read").stale);
    }

    #[test]
    fn identity_first_reads_encrypted_values_as_stale() {
        let enc = secrets(&format!(
            "  - aescbc: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
        ));
        let stored = enc
            .for_key(SECRET_KEY)
            .expect("covered")
            .to_storage(SECRET_KEY, PLAIN.to_vec())
            .expect("encrypt");
        let off = secrets(&format!(
            "  - identity: {{}}\n  - aescbc: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
        ));
        let read = off
            .for_key(SECRET_KEY)
            .expect("covered")
            .from_storage(SECRET_KEY, &stored)
            .expect("decrypt");
        assert_eq!(read.data.as_ref(), PLAIN);
        assert!(
            read.stale,
            "decrypting means it is not stored the way writes go now"
        );
    }

    #[test]
    fn unreadable_values_name_the_key_and_what_to_do() {
        let t1 = secrets(&format!(
            "  - aescbc: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
        ));
        let stored = roundtrip(&t1);
        // Same name, other material: the padding check (or the JSON after it) fails.
        let t2 = secrets(&format!(
            "  - aesgcm: {{keys: [{{name: key1, secret: {K2}}}]}}\n  - aescbc: {{keys: [{{name: key1, secret: {K2}}}]}}\n"
        ));
        match t2
            .for_key(SECRET_KEY)
            .expect("covered")
            .from_storage(SECRET_KEY, &stored)
        {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with("unable to transform key \"/registry/secrets/default/s1\": aescbc key \"key1\" cannot decrypt it"), "{msg}");
            }
            Ok(d) => assert_ne!(d.data.as_ref(), PLAIN),
        }
        // A key the config does not have.
        let t3 = secrets(&format!(
            "  - aescbc: {{keys: [{{name: key2, secret: {K2}}}]}}\n  - identity: {{}}\n"
        ));
        let msg = t3
            .for_key(SECRET_KEY)
            .expect("covered")
            .from_storage(SECRET_KEY, &stored)
            .expect_err("unknown key")
            .to_string();
        assert!(msg.contains("written with key \"key1\""), "{msg}");
        // A provider the config does not have.
        let t4 = secrets("  - identity: {}\n");
        let msg = t4
            .for_key(SECRET_KEY)
            .expect("covered")
            .from_storage(SECRET_KEY, &stored)
            .expect_err("unknown provider")
            .to_string();
        assert!(msg.contains("encrypted with provider \"aescbc\""), "{msg}");
        // Plaintext without an identity fallback.
        let msg = t1
            .for_key(SECRET_KEY)
            .expect("covered")
            .from_storage(SECRET_KEY, PLAIN)
            .expect_err("plaintext")
            .to_string();
        assert!(
            msg.contains("add `- identity: {}` as the last provider"),
            "{msg}"
        );
    }

    #[test]
    fn tampered_authenticated_values_are_refused() {
        for provider in ["aesgcm", "secretbox"] {
            let t = secrets(&format!(
                "  - {provider}: {{keys: [{{name: key1, secret: {K1}}}]}}\n"
            ));
            let mut stored = roundtrip(&t);
            let last = stored.len() - 1;
            stored[last] ^= 1;
            let msg = t
                .for_key(SECRET_KEY)
                .expect("covered")
                .from_storage(SECRET_KEY, &stored)
                .expect_err("tampered")
                .to_string();
            assert!(
                msg.contains("message authentication failed"),
                "{provider}: {msg}"
            );
        }
    }

    #[test]
    fn a_resource_in_two_rules_reads_with_both() {
        let t = transformers(&format!(
            "- resources: [secrets]\n  providers: [{{aescbc: {{keys: [{{name: key2, secret: {K2}}}]}}}}]\n- resources: [secrets, configmaps]\n  providers: [{{identity: {{}}}}]\n"
        ));
        let r = t.for_key(SECRET_KEY).expect("covered");
        assert!(
            r.from_storage(SECRET_KEY, PLAIN)
                .expect("identity appended")
                .stale
        );
        assert_eq!(
            t.for_key("/registry/configmaps/a/b")
                .expect("covered")
                .describe_writer(),
            "identity"
        );
    }

    #[test]
    fn unknown_resources_are_reported() {
        let cfg = config::parse(&format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secret, pandas.awesome.bears.example, deployments.apps]\n  providers: [{{aescbc: {{keys: [{{name: a, secret: {K1}}}]}}}}]\n"
        ))
        .expect("valid");
        assert_eq!(
            unknown_resources(&cfg, kadm_apimachinery::registry::all()),
            vec!["secret", "pandas.awesome.bears.example"]
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("kadm-enc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("enc.yaml");
        std::fs::write(
            &path,
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{aescbc: {keys: [{name: k, secret: c2hvcnQ=}]}}]\n",
        )
        .expect("write");
        let msg = Transformers::load(&path)
            .err()
            .expect("invalid")
            .to_string();
        assert!(
            msg.starts_with(&format!(
                "invalid encryption provider config {}:",
                path.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("got 5, expected one of [16, 24, 32]"), "{msg}");
        let missing = Transformers::load(&dir.join("nope.yaml"))
            .err()
            .expect("missing")
            .to_string();
        assert!(
            missing.starts_with("read encryption provider config"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
