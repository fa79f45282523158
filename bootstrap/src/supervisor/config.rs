//! The supervisor's YAML configuration.
//!
//! The file is written by the installer and read once at start; the supervisor never rewrites
//! it, so everything that changes at run time lives in the state file instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, Result};

/// Where the installer puts the configuration on a host.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kadm/supervisor.yaml";

fn default_log_dir() -> PathBuf {
    PathBuf::from("/var/log/kadm")
}

fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/kadm")
}

fn default_readiness_timeout() -> u64 {
    60
}

fn default_stop_timeout() -> u64 {
    10
}

/// The whole supervisor configuration (`/etc/kadm/supervisor.yaml`).
///
/// Unknown fields are rejected: a misspelt `readinesTimeoutSeconds` silently falling back to
/// the default would be much harder to find than a refusal to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SupervisorConfig {
    /// Directory for `<name>.log`, one file per component.
    #[serde(default = "default_log_dir")]
    pub log_dir: PathBuf,
    /// Directory for `supervisor.pid` and `supervisor.json`; a tmpfs on real hosts, so a
    /// reboot never leaves a stale pid behind.
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
    /// Started in this order, stopped in the reverse order.
    pub components: Vec<ComponentConfig>,
}

/// One supervised program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentConfig {
    /// Used for the log file name and in the state file, so it must be a plain file name.
    pub name: String,
    /// Absolute path preferred: the supervisor's own `PATH` may be minimal under systemd.
    pub command: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    /// Added to the supervisor's environment, which the component otherwise inherits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Without a probe the component counts as ready as soon as it has been spawned.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_yaml::with::singleton_map"
    )]
    pub readiness: Option<Readiness>,
    /// After this long without passing the probe the supervisor complains loudly, and keeps
    /// waiting: a slow etcd on a loaded host is better than a host with no control plane.
    #[serde(default = "default_readiness_timeout")]
    pub readiness_timeout_seconds: u64,
    /// Grace period between SIGTERM and SIGKILL when the supervisor stops.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_seconds: u64,
}

/// How to tell that a component is serving.
///
/// Written as a single-key map, e.g. `{tcp: "127.0.0.1:2379"}`, rather than serde_yaml's
/// default `!tcp` tag: the map form is what people write and what other tools emit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Readiness {
    /// `host:port` accepts a TCP connection.
    Tcp(String),
    /// An HTTPS GET returns status 200.
    Https(HttpsProbe),
    /// The command (argv, no shell) exits 0.
    Exec(Vec<String>),
}

/// An HTTPS readiness check against a server whose certificate chains to `caFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpsProbe {
    /// `https://host[:port][/path]`.
    pub url: String,
    pub ca_file: PathBuf,
    /// Client certificate, for servers that refuse anonymous clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

impl SupervisorConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
        Self::from_yaml(&text).map_err(|e| match e {
            Error::ConfigParse { source, .. } => Error::ConfigParse {
                path: path.to_path_buf(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: Self = serde_yaml::from_str(text).map_err(|source| Error::ConfigParse {
            path: PathBuf::from("<string>"),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Catches mistakes that would otherwise surface only after some components had started.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Err(Error::InvalidConfig(reason));
        if self.components.is_empty() {
            return invalid("no components configured".to_string());
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.components {
            let name_ok = !c.name.is_empty()
                && c.name != "."
                && c.name != ".."
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'));
            if !name_ok {
                return invalid(format!(
                    "component name {:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                    c.name
                ));
            }
            if !seen.insert(c.name.as_str()) {
                return invalid(format!("component name {:?} appears twice", c.name));
            }
            if c.command.as_os_str().is_empty() {
                return invalid(format!("component {:?} has an empty command", c.name));
            }
            if c.readiness_timeout_seconds == 0 {
                return invalid(format!(
                    "component {:?}: readinessTimeoutSeconds must be at least 1",
                    c.name
                ));
            }
            match &c.readiness {
                Some(Readiness::Exec(argv)) if argv.is_empty() => {
                    return invalid(format!(
                        "component {:?}: exec readiness needs a command",
                        c.name
                    ));
                }
                Some(Readiness::Https(h)) => {
                    if h.cert_file.is_some() != h.key_file.is_some() {
                        return invalid(format!(
                            "component {:?}: https readiness needs both certFile and keyFile, or neither",
                            c.name
                        ));
                    }
                    super::probe::parse_https_url(&h.url).map_err(|reason| {
                        Error::InvalidConfig(format!("component {:?}: {reason}", c.name))
                    })?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl ComponentConfig {
    pub fn readiness_timeout(&self) -> Duration {
        Duration::from_secs(self.readiness_timeout_seconds)
    }

    pub fn stop_timeout(&self) -> Duration {
        Duration::from_secs(self.stop_timeout_seconds)
    }

    /// `<logDir>/<name>.log`.
    pub fn log_file(&self, log_dir: &Path) -> PathBuf {
        log_dir.join(format!("{}.log", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
logDir: /var/log/kadm
runDir: /run/kadm            # pid file + state file
components:
  - name: etcd
    command: /usr/bin/etcd
    args: [--name, h1, --data-dir, /var/lib/kadm/etcd]
    env: {ETCD_UNSUPPORTED_ARCH: ""}
    readiness: {tcp: "127.0.0.1:2379"}
    readinessTimeoutSeconds: 60
  - name: kadm-apiserver
    command: /usr/local/bin/kadm-apiserver
    readiness:
      https:
        url: https://127.0.0.1:6443/readyz
        caFile: /etc/kadm/pki/ca.crt
        certFile: /etc/kadm/pki/apiserver-probe.crt
        keyFile: /etc/kadm/pki/apiserver-probe.key
  - name: check
    command: /bin/true
    readiness: {exec: ["test", "-f", "/tmp/x"]}
    stopTimeoutSeconds: 3
"#;

    #[test]
    fn parses_the_documented_example() {
        let c = SupervisorConfig::from_yaml(EXAMPLE).expect("parse");
        assert_eq!(c.log_dir, PathBuf::from("/var/log/kadm"));
        assert_eq!(c.run_dir, PathBuf::from("/run/kadm"));
        assert_eq!(c.components.len(), 3);
        let etcd = &c.components[0];
        assert_eq!(etcd.name, "etcd");
        assert_eq!(etcd.args[0], "--name");
        assert_eq!(
            etcd.env.get("ETCD_UNSUPPORTED_ARCH").map(String::as_str),
            Some("")
        );
        assert_eq!(
            etcd.readiness,
            Some(Readiness::Tcp("127.0.0.1:2379".into()))
        );
        assert_eq!(etcd.readiness_timeout(), Duration::from_secs(60));
        assert_eq!(etcd.stop_timeout(), Duration::from_secs(10));
        match &c.components[1].readiness {
            Some(Readiness::Https(h)) => {
                assert_eq!(h.url, "https://127.0.0.1:6443/readyz");
                assert_eq!(h.ca_file, PathBuf::from("/etc/kadm/pki/ca.crt"));
                assert!(h.cert_file.is_some() && h.key_file.is_some());
            }
            other => panic!("unexpected readiness {other:?}"),
        }
        assert!(c.components[1].args.is_empty());
        assert_eq!(
            c.components[2].readiness,
            Some(Readiness::Exec(vec![
                "test".into(),
                "-f".into(),
                "/tmp/x".into()
            ]))
        );
        assert_eq!(c.components[2].stop_timeout(), Duration::from_secs(3));
        assert_eq!(
            etcd.log_file(&c.log_dir),
            PathBuf::from("/var/log/kadm/etcd.log")
        );
    }

    #[test]
    fn defaults_apply_when_fields_are_missing() {
        let c = SupervisorConfig::from_yaml("components: [{name: a, command: /bin/true}]")
            .expect("parse");
        assert_eq!(c.log_dir, PathBuf::from("/var/log/kadm"));
        assert_eq!(c.run_dir, PathBuf::from("/run/kadm"));
        assert_eq!(c.components[0].readiness, None);
        assert_eq!(c.components[0].readiness_timeout_seconds, 60);
    }

    #[test]
    fn round_trips_through_yaml() {
        let c = SupervisorConfig::from_yaml(EXAMPLE).expect("parse");
        let text = serde_yaml::to_string(&c).expect("serialize");
        assert_eq!(SupervisorConfig::from_yaml(&text).expect("reparse"), c);
    }

    #[test]
    fn rejects_mistakes() {
        let cases = [
            ("components: []", "no components"),
            (
                "components: [{name: a, command: /x}, {name: a, command: /y}]",
                "appears twice",
            ),
            (
                "components: [{name: ../a, command: /x}]",
                "must be non-empty",
            ),
            ("components: [{name: a, command: ''}]", "empty command"),
            (
                "components: [{name: a, command: /x, readinessTimeoutSeconds: 0}]",
                "at least 1",
            ),
            (
                "components: [{name: a, command: /x, readiness: {exec: []}}]",
                "needs a command",
            ),
            (
                "components: [{name: a, command: /x, readiness: {https: {url: 'http://h/', caFile: /c}}}]",
                "https://",
            ),
            (
                "components: [{name: a, command: /x, readiness: {https: {url: 'https://h/', caFile: /c, certFile: /d}}}]",
                "both certFile and keyFile",
            ),
        ];
        for (yaml, want) in cases {
            let err = SupervisorConfig::from_yaml(yaml)
                .expect_err(yaml)
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn rejects_unknown_fields_and_probe_kinds() {
        for yaml in [
            "components: [{name: a, command: /x, readinesTimeoutSeconds: 5}]",
            "components: [{name: a, command: /x, readiness: {grpc: x}}]",
            "logdir: /x\ncomponents: [{name: a, command: /x}]",
        ] {
            let err = SupervisorConfig::from_yaml(yaml).expect_err(yaml);
            assert!(matches!(err, Error::ConfigParse { .. }), "{yaml}: {err}");
        }
    }
}
