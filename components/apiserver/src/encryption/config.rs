//! The `--encryption-provider-config` file: Kubernetes' `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`, or the legacy `kind: EncryptionConfig`, `apiVersion: v1`),
//! parsed and validated with Kubernetes' rules and messages, so a file that works for
//! kube-apiserver works here and a broken one is refused at start with every problem named.
//!
//! ```yaml
//! apiVersion: apiserver.config.k8s.io/v1
//! kind: EncryptionConfiguration
//! resources:
//!   - resources: [secrets]
//!     providers:
//!       - aescbc: {keys: [{name: key1, secret: <32 random bytes, base64>}]}
//!       - identity: {}
//! ```

use base64::Engine;
use serde::Deserialize;

use super::{aescbc, aesgcm, secretbox};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub rules: Vec<Rule>,
}

/// One `resources[]` entry: the resources it covers and its providers, first one writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub resources: Vec<GroupResource>,
    pub providers: Vec<ProviderSpec>,
}

/// `secrets` (core), `deployments.apps`, `*.apps`, `*.` (every core resource), `*.*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    /// Kubernetes' `schema.ParseGroupResource`: the resource is everything before the first
    /// dot, the group everything after it.
    pub fn parse(s: &str) -> GroupResource {
        match s.split_once('.') {
            Some((resource, group)) => GroupResource {
                group: group.into(),
                resource: resource.into(),
            },
            None => GroupResource {
                group: String::new(),
                resource: s.into(),
            },
        }
    }

    pub fn any_in_group(group: &str) -> GroupResource {
        GroupResource {
            group: group.into(),
            resource: "*".into(),
        }
    }

    pub fn any() -> GroupResource {
        GroupResource {
            group: "*".into(),
            resource: "*".into(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    /// As written in the file (`secrets`, `*.apps`, `*.`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() && self.resource != "*" {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSpec {
    Identity,
    Keyed { kind: KeyedKind, keys: Vec<KeySpec> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedKind {
    AesCbc,
    AesGcm,
    Secretbox,
}

impl KeyedKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyedKind::AesCbc => aescbc::PROVIDER,
            KeyedKind::AesGcm => aesgcm::PROVIDER,
            KeyedKind::Secretbox => secretbox::PROVIDER,
        }
    }

    fn key_sizes(self) -> &'static [usize] {
        match self {
            KeyedKind::AesCbc => aescbc::KEY_SIZES,
            KeyedKind::AesGcm => aesgcm::KEY_SIZES,
            KeyedKind::Secretbox => secretbox::KEY_SIZES,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub name: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for KeySpec {
    /// Never prints the key material (configs end up in logs and test output).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySpec")
            .field("name", &self.name)
            .field("secret", &"REDACTED")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<serde_yaml::Mapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

/// The providers a `providers[]` item may name.
const PROVIDER_NAMES: &str = "aescbc, aesgcm, secretbox, identity";

/// Parses and validates the file's text; `Err` lists every problem, each starting with the
/// field path Kubernetes would name (`resources[0].providers[1].aescbc.keys[0].secret`).
pub fn parse(text: &str) -> Result<Config, Vec<String>> {
    let raw: RawFile = serde_yaml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let known = [
        ("apiserver.config.k8s.io/v1", "EncryptionConfiguration"),
        ("v1", "EncryptionConfig"),
    ];
    if !known.contains(&(raw.api_version.as_str(), raw.kind.as_str())) {
        problems.push(format!(
            "apiVersion {:?} kind {:?} is not an encryption configuration; use apiVersion: apiserver.config.k8s.io/v1 and kind: EncryptionConfiguration",
            raw.api_version, raw.kind
        ));
    }
    if raw.resources.is_empty() {
        problems.push("resources: Required value: at least one resources is required".into());
    }
    let mut rules = Vec::new();
    for (i, rule) in raw.resources.iter().enumerate() {
        let path = format!("resources[{i}]");
        if rule.resources.is_empty() {
            problems.push(format!(
                "{path}.resources: Required value: at least one {path}.resources is required"
            ));
        }
        validate_resource_overlap(&rule.resources, &format!("{path}.resources"), &mut problems);
        validate_resource_names(&rule.resources, &format!("{path}.resources"), &mut problems);
        if rule.providers.is_empty() {
            problems.push(format!(
                "{path}.providers: Required value: at least one {path}.providers is required"
            ));
        }
        let mut providers = Vec::new();
        for (j, p) in rule.providers.iter().enumerate() {
            if let Some(spec) = provider(p, &format!("{path}.providers[{j}]"), &mut problems) {
                providers.push(spec);
            }
        }
        rules.push(Rule {
            resources: rule
                .resources
                .iter()
                .map(|r| GroupResource::parse(r))
                .collect(),
            providers,
        });
    }
    validate_masking(&rules, &mut problems);
    if problems.is_empty() {
        Ok(Config { rules })
    } else {
        Err(problems)
    }
}

fn provider(
    entry: &serde_yaml::Mapping,
    path: &str,
    problems: &mut Vec<String>,
) -> Option<ProviderSpec> {
    let names: Vec<String> = entry
        .keys()
        .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_string))
        .collect();
    let (name, value) = match entry.iter().next() {
        Some((_, v)) if entry.len() == 1 => (names[0].as_str(), v),
        Some(_) => {
            problems.push(format!(
                "{path}: Invalid value: more than one provider specified in a single element ({}), should split into different list elements",
                names.join(", ")
            ));
            return None;
        }
        None => {
            problems.push(format!(
                "{path}: Invalid value: provider does not contain any of the expected providers: {PROVIDER_NAMES}"
            ));
            return None;
        }
    };
    let kind = match name {
        "identity" => {
            let empty = value.is_null() || value.as_mapping().is_some_and(|m| m.is_empty());
            if !empty {
                problems.push(format!(
                    "{path}.identity: Invalid value: identity takes no settings; write `identity: {{}}`"
                ));
            }
            return Some(ProviderSpec::Identity);
        }
        "aescbc" => KeyedKind::AesCbc,
        "aesgcm" => KeyedKind::AesGcm,
        "secretbox" => KeyedKind::Secretbox,
        "kms" => {
            problems.push(format!(
                "{path}.kms: Unsupported value: kadm has no KMS plugin support; use {PROVIDER_NAMES}"
            ));
            return None;
        }
        other => {
            problems.push(format!(
                "{path}: Unsupported value: unknown provider {other:?}; use one of {PROVIDER_NAMES}"
            ));
            return None;
        }
    };
    let path = format!("{path}.{name}");
    let raw: RawKeys = match serde_yaml::from_value(value.clone()) {
        Ok(k) => k,
        Err(e) => {
            problems.push(format!("{path}: {e}"));
            return None;
        }
    };
    let keys_path = format!("{path}.keys");
    if raw.keys.is_empty() {
        problems.push(format!(
            "{keys_path}: Required value: at least one keys is required"
        ));
        return None;
    }
    let mut keys = Vec::new();
    let mut ok = true;
    for (k, key) in raw.keys.iter().enumerate() {
        let kp = format!("{keys_path}[{k}]");
        if key.name.is_empty() {
            problems.push(format!(
                "{kp}.name: Required value: name is a mandatory field for a key"
            ));
            ok = false;
        } else if key.name.contains(':') {
            // The name ends at the first ':' of the stored prefix.
            problems.push(format!(
                "{kp}.name: Invalid value: {:?}: key names must not contain ':'",
                key.name
            ));
            ok = false;
        } else if raw.keys[..k].iter().any(|o| o.name == key.name) {
            problems.push(format!(
                "{kp}.name: Duplicate value: {:?}: key names must be unique within a provider (a value names the key it was written with)",
                key.name
            ));
            ok = false;
        }
        if key.secret.is_empty() {
            problems.push(format!(
                "{kp}.secret: Required value: secret is a mandatory field for a key"
            ));
            ok = false;
            continue;
        }
        let secret = match base64::engine::general_purpose::STANDARD.decode(key.secret.trim()) {
            Ok(s) => s,
            Err(_) => {
                problems.push(format!(
                    "{kp}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded; generate one with `head -c 32 /dev/urandom | base64`"
                ));
                ok = false;
                continue;
            }
        };
        let sizes = kind.key_sizes();
        if !sizes.contains(&secret.len()) {
            problems.push(format!(
                "{kp}.secret: Invalid value: \"REDACTED\": secret is not of the expected length, got {}, expected one of {sizes:?}; generate one with `head -c 32 /dev/urandom | base64`",
                secret.len()
            ));
            ok = false;
            continue;
        }
        keys.push(KeySpec {
            name: key.name.clone(),
            secret,
        });
    }
    ok.then_some(ProviderSpec::Keyed { kind, keys })
}

/// Duplicates and wildcards overlapping names within one list (Kubernetes' rules).
fn validate_resource_overlap(resources: &[String], path: &str, problems: &mut Vec<String>) {
    let parsed: Vec<GroupResource> = resources.iter().map(|r| GroupResource::parse(r)).collect();
    let mut duplicate = false;
    let mut overlap = false;
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if a == b {
                duplicate = true;
            } else if *a == GroupResource::any()
                || (a.group == b.group && (a.resource == "*" || b.resource == "*"))
            {
                overlap = true;
            }
        }
    }
    if duplicate {
        problems.push(format!(
            "{path}: Invalid value: {resources:?}: the same resource cannot be specified multiple times"
        ));
    }
    if overlap {
        problems.push(format!(
            "{path}: Invalid value: {resources:?}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked"
        ));
    }
}

fn validate_resource_names(resources: &[String], path: &str, problems: &mut Vec<String>) {
    for (j, res) in resources.iter().enumerate() {
        let p = format!("{path}[{j}]");
        let gr = GroupResource::parse(res);
        let why = if res.to_lowercase() != *res {
            "resource name should not contain capital letters"
        } else if res == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if matches!(
            res.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if gr.group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
        } else if gr.group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if gr.group == "*" && gr.resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else {
            continue;
        };
        problems.push(format!("{p}: Invalid value: {res:?}: {why}"));
    }
}

/// A later rule naming a resource an earlier wildcard already covers would never apply.
fn validate_masking(rules: &[Rule], problems: &mut Vec<String>) {
    let mut seen: Vec<&GroupResource> = Vec::new();
    for rule in rules {
        for gr in &rule.resources {
            for wildcard in [GroupResource::any_in_group(&gr.group), GroupResource::any()] {
                if seen.contains(&&wildcard) {
                    problems.push(format!(
                        "resource {:?} is masked by earlier rule {:?}; list it before the wildcard",
                        gr.to_string(),
                        wildcard.to_string()
                    ));
                    break;
                }
            }
        }
        seen.extend(rule.resources.iter());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const K16: &str = "MDEyMzQ1Njc4OWFiY2RlZg=="; // 16 bytes

    fn file(body: &str) -> String {
        format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n{body}")
    }

    fn problems(text: &str) -> String {
        parse(text).expect_err("should be invalid").join("\n")
    }

    #[test]
    fn parses_every_provider_in_order() {
        let cfg = parse(&file(&format!(
            "resources:\n- resources: [secrets, configmaps]\n  providers:\n  - aescbc: {{keys: [{{name: key2, secret: {K32}}}, {{name: key1, secret: {K16}}}]}}\n  - aesgcm: {{keys: [{{name: g, secret: {K16}}}]}}\n  - secretbox: {{keys: [{{name: s, secret: {K32}}}]}}\n  - identity: {{}}\n"
        )))
        .expect("valid");
        assert_eq!(cfg.rules.len(), 1);
        let rule = &cfg.rules[0];
        assert_eq!(
            rule.resources,
            vec![
                GroupResource::parse("secrets"),
                GroupResource::parse("configmaps")
            ]
        );
        assert_eq!(rule.providers.len(), 4);
        match &rule.providers[0] {
            ProviderSpec::Keyed { kind, keys } => {
                assert_eq!(*kind, KeyedKind::AesCbc);
                assert_eq!(keys[0].name, "key2");
                assert_eq!(keys[0].secret, b"0123456789abcdef0123456789abcdef");
                assert_eq!(keys[1].secret.len(), 16);
            }
            p => panic!("unexpected {p:?}"),
        }
        assert_eq!(rule.providers[3], ProviderSpec::Identity);
    }

    #[test]
    fn accepts_the_legacy_kind() {
        let cfg = parse(&format!(
            "kind: EncryptionConfig\napiVersion: v1\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      - name: key1\n        secret: {K32}\n"
        ))
        .expect("valid");
        assert_eq!(cfg.rules[0].resources[0].resource, "secrets");
    }

    #[test]
    fn refuses_other_kinds() {
        let p = problems("apiVersion: v1\nkind: ConfigMap\nresources: []\n");
        assert!(p.contains("is not an encryption configuration"), "{p}");
        assert!(p.contains("at least one resources is required"), "{p}");
    }

    #[test]
    fn bad_base64_and_wrong_key_sizes_are_named() {
        let p = problems(&file(&format!(
            "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {{keys: [{{name: a, secret: 'not base64!'}}, {{name: b, secret: {K32}}}]}}\n  - secretbox: {{keys: [{{name: c, secret: {K16}}}]}}\n  - aesgcm: {{keys: [{{name: d, secret: MTIz}}]}}\n"
        )));
        assert!(
            p.contains("resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"),
            "{p}"
        );
        assert!(
            p.contains("resources[0].providers[1].secretbox.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 16, expected one of [32]"),
            "{p}"
        );
        assert!(
            p.contains("providers[2].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 3, expected one of [16, 24, 32]"),
            "{p}"
        );
        assert!(!p.contains(K32), "key material must never be printed: {p}");
    }

    #[test]
    fn unknown_kms_and_double_providers_are_refused() {
        let p = problems(&file(
            "resources:\n- resources: [secrets]\n  providers:\n  - rot13: {}\n  - kms: {name: x}\n  - {identity: {}, aescbc: {keys: []}}\n  - {}\n",
        ));
        assert!(
            p.contains("providers[0]: Unsupported value: unknown provider \"rot13\"; use one of aescbc, aesgcm, secretbox, identity"),
            "{p}"
        );
        assert!(p.contains("providers[1].kms: Unsupported value"), "{p}");
        assert!(
            p.contains("providers[2]: Invalid value: more than one provider"),
            "{p}"
        );
        assert!(
            p.contains("providers[3]: Invalid value: provider does not contain any of the expected providers"),
            "{p}"
        );
    }

    #[test]
    fn keys_need_names_secrets_and_unique_names() {
        let p = problems(&file(&format!(
            "resources:\n- resources: [secrets]\n  providers:\n  - aescbc: {{keys: []}}\n  - aesgcm: {{keys: [{{secret: {K16}}}, {{name: k}}, {{name: x, secret: {K16}}}, {{name: x, secret: {K16}}}, {{name: 'a:b', secret: {K16}}}]}}\n"
        )));
        assert!(
            p.contains("aescbc.keys: Required value: at least one keys is required"),
            "{p}"
        );
        assert!(
            p.contains("keys[0].name: Required value: name is a mandatory field for a key"),
            "{p}"
        );
        assert!(
            p.contains("keys[1].secret: Required value: secret is a mandatory field"),
            "{p}"
        );
        assert!(p.contains("keys[3].name: Duplicate value: \"x\""), "{p}");
        assert!(p.contains("keys[4].name: Invalid value: \"a:b\""), "{p}");
    }

    #[test]
    fn duplicate_overlapping_and_masked_resources_are_refused() {
        let p = problems(&file(
            "resources:\n- resources: [secrets, secrets]\n  providers: [{identity: {}}]\n- resources: ['*.', configmaps]\n  providers: [{identity: {}}]\n",
        ));
        assert!(
            p.contains("resources[0].resources: Invalid value: [\"secrets\", \"secrets\"]: the same resource cannot be specified multiple times"),
            "{p}"
        );
        assert!(p.contains("resources[1].resources: Invalid value: [\"*.\", \"configmaps\"]: using overlapping resources"), "{p}");
        let p = problems(&file(
            "resources:\n- resources: ['*.apps']\n  providers: [{identity: {}}]\n- resources: [deployments.apps]\n  providers: [{identity: {}}]\n",
        ));
        assert!(
            p.contains("resource \"deployments.apps\" is masked by earlier rule \"*.apps\""),
            "{p}"
        );
    }

    #[test]
    fn resource_names_follow_kubernetes_rules() {
        let p = problems(&file(
            "resources:\n- resources: [Secrets, '*', events.events.k8s.io, deployments.extensions, 'secrets.*', serviceipallocations]\n  providers: [{identity: {}}]\n",
        ));
        for want in [
            "resources[0].resources[0]: Invalid value: \"Secrets\": resource name should not contain capital letters",
            "resources[0].resources[1]: Invalid value: \"*\": use '*.'",
            "resources[0].resources[2]: Invalid value: \"events.events.k8s.io\": '*.events.k8s.io' objects",
            "resources[0].resources[3]: Invalid value: \"deployments.extensions\": 'extensions' group",
            "resources[0].resources[4]: Invalid value: \"secrets.*\": encrypting the same resource across groups",
            "resources[0].resources[5]: Invalid value: \"serviceipallocations\": resources which do not have REST",
        ] {
            assert!(p.contains(want), "missing {want:?} in\n{p}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_yaml_are_refused() {
        let p = problems(&file(
            "resources:\n- resources: [secrets]\n  provider: []\n",
        ));
        assert!(p.contains("unknown field `provider`"), "{p}");
        let p = problems(&file(
            "resources:\n- resources: [secrets]\n  providers:\n  - identity: {extra: 1}\n",
        ));
        assert!(p.contains("identity takes no settings"), "{p}");
    }

    #[test]
    fn group_resources_parse_and_print_as_written() {
        for s in ["secrets", "*.", "*.*", "*.apps", "deployments.apps"] {
            assert_eq!(GroupResource::parse(s).to_string(), s);
        }
        assert_eq!(GroupResource::parse("*."), GroupResource::any_in_group(""));
    }
}
