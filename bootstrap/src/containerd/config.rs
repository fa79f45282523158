//! Rendering containerd's `config.toml` and the registry `hosts.toml` files.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::Layout;

const TEMPLATE: &str = include_str!("../../../templates/containerd-config.toml");

/// Everything kadm decides in containerd's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    /// Persistent data (content store, snapshots). Must be a real filesystem, not overlay:
    /// the overlayfs snapshotter cannot stack on an overlay upper dir.
    pub root: PathBuf,
    /// Runtime state (sockets, pod netns mounts, runc state).
    pub state: PathBuf,
    /// The gRPC socket the kubelet (CRI) and `ctr` talk to.
    pub socket: PathBuf,
    /// containerd's managed `opt` directory.
    pub opt_dir: PathBuf,
    pub sandbox_image: String,
    /// runc's cgroup driver; must equal the kubelet's.
    pub systemd_cgroup: bool,
    /// Keep sandboxes' `oom_score_adj` at or above containerd's own. Needed where the host
    /// lacks CAP_SYS_RESOURCE (containers, lab hosts): containerd gives sandboxes -998,
    /// runc cannot write it, and every RunPodSandbox fails with "can't get final child's
    /// PID from pipe: EOF".
    pub restrict_oom_score_adj: bool,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    /// Directory of `<registry>/hosts.toml` files (`config_path`).
    pub registry_config_dir: PathBuf,
    /// Mirrors and insecure registries, written below `registry_config_dir`.
    pub registries: Vec<RegistryHost>,
}

/// How containerd reaches one registry: the endpoints to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryHost {
    /// The registry as image names spell it: `docker.io`, `localhost:5000`.
    pub registry: String,
    /// Endpoint URLs tried in order (`http://` for plain-HTTP local registries); empty means
    /// the registry itself over HTTPS.
    pub endpoints: Vec<String>,
    /// Accept any TLS certificate from the endpoints (self-signed lab registries).
    pub skip_verify: bool,
}

/// Whether runc must use the systemd cgroup driver: where systemd is PID 1 it owns the
/// cgroup tree (kubeadm's default driver there); elsewhere cgroupfs.
pub fn systemd_cgroup_driver() -> bool {
    crate::supervisor::systemd_is_pid1()
}

/// Whether this process lacks CAP_SYS_RESOURCE (bit 24 of `CapEff`), so lowering an
/// `oom_score_adj` below ours is refused (see [`ContainerdConfig::restrict_oom_score_adj`]).
pub fn lacks_cap_sys_resource() -> bool {
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    caps.is_some_and(|c| c & (1 << 24) == 0)
}

impl ContainerdConfig {
    /// The production configuration for a host with this layout.
    pub fn for_host(layout: &Layout) -> ContainerdConfig {
        ContainerdConfig {
            root: layout.containerd_root.clone(),
            state: layout.containerd_state.clone(),
            socket: layout.containerd_socket.clone(),
            opt_dir: PathBuf::from("/opt/containerd"),
            sandbox_image: kadm_images::pause_image_name(),
            systemd_cgroup: systemd_cgroup_driver(),
            restrict_oom_score_adj: lacks_cap_sys_resource(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cni_conf_dir: layout.cni_conf_dir.clone(),
            registry_config_dir: layout.containerd_registry_dir.clone(),
            registries: Vec::new(),
        }
    }

    /// containerd's `config.toml`.
    pub fn render(&self) -> String {
        let path = |p: &Path| toml_string(&p.to_string_lossy());
        TEMPLATE
            .replace("{{kadm_version}}", kadm_base::VERSION)
            .replace("{{root}}", &path(&self.root))
            .replace("{{state}}", &path(&self.state))
            .replace("{{socket}}", &path(&self.socket))
            .replace("{{opt_dir}}", &path(&self.opt_dir))
            .replace("{{sandbox_image}}", &toml_string(&self.sandbox_image))
            .replace(
                "{{systemd_cgroup}}",
                if self.systemd_cgroup { "true" } else { "false" },
            )
            .replace(
                "{{restrict_oom_score_adj}}",
                if self.restrict_oom_score_adj {
                    "true"
                } else {
                    "false"
                },
            )
            .replace("{{runc_root}}", &path(&self.state.join("runc")))
            .replace("{{cni_bin_dir}}", &path(&self.cni_bin_dir))
            .replace("{{cni_conf_dir}}", &path(&self.cni_conf_dir))
            .replace("{{registry_config_dir}}", &path(&self.registry_config_dir))
    }

    /// Writes `config.toml` to `path` and one `hosts.toml` per registry, creating the
    /// directories containerd needs to find. Returns whether the config file changed
    /// (containerd reads it only at start).
    pub fn write(&self, path: &Path) -> Result<bool> {
        for dir in [&self.cni_conf_dir, &self.registry_config_dir] {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        for host in &self.registries {
            let dir = self
                .registry_config_dir
                .join(host_dir_name(&host.registry)?);
            std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
            write_if_changed(&dir.join("hosts.toml"), &host.render())?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        write_if_changed(path, &self.render())
    }
}

impl RegistryHost {
    /// A plain-HTTP registry on this host (tests, air-gapped clusters): `localhost:5000`.
    pub fn insecure_http(registry: &str) -> RegistryHost {
        RegistryHost {
            registry: registry.into(),
            endpoints: vec![format!("http://{registry}")],
            skip_verify: false,
        }
    }

    /// The `hosts.toml` (containerd's docs/hosts.md format).
    pub fn render(&self) -> String {
        let mut out = String::from("# written by kadm\n");
        let server = self
            .endpoints
            .last()
            .cloned()
            .unwrap_or_else(|| default_server(&self.registry));
        out.push_str(&format!("server = {}\n", toml_string(&server)));
        let endpoints = if self.endpoints.is_empty() {
            vec![server]
        } else {
            self.endpoints.clone()
        };
        for endpoint in endpoints {
            out.push_str(&format!("\n[host.{}]\n", toml_string(&endpoint)));
            out.push_str("  capabilities = [\"pull\", \"resolve\"]\n");
            if self.skip_verify {
                out.push_str("  skip_verify = true\n");
            }
        }
        out
    }
}

/// Docker Hub's API lives on another host than its name.
fn default_server(registry: &str) -> String {
    if registry == "docker.io" {
        "https://registry-1.docker.io".into()
    } else {
        format!("https://{registry}")
    }
}

/// The directory below `config_path` containerd looks up for a registry: its name, with a
/// port as is (`localhost:5000`). Rejects names that would escape the directory.
fn host_dir_name(registry: &str) -> Result<&str> {
    if registry.is_empty()
        || registry.contains('/')
        || registry == "."
        || registry == ".."
        || registry.contains(char::is_whitespace)
    {
        return Err(Error::parse(
            "registry name",
            format!("{registry:?} is not a registry host such as docker.io or localhost:5000"),
        ));
    }
    Ok(registry)
}

fn write_if_changed(path: &Path, content: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    std::fs::write(path, content).map_err(Error::io("write", path))?;
    Ok(true)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerdConfig {
        let layout = Layout::rooted(Path::new("/srv/host"));
        ContainerdConfig {
            systemd_cgroup: false,
            ..ContainerdConfig::for_host(&layout)
        }
    }

    #[test]
    fn config_points_cri_at_the_local_pause_image_and_kadm_dirs() {
        let text = sample().render();
        assert!(!text.contains("{{"), "unfilled placeholder in\n{text}");
        for line in [
            "root = \"/srv/host/var/lib/containerd\"",
            "state = \"/srv/host/run/containerd\"",
            "address = \"/srv/host/run/containerd/containerd.sock\"",
            &format!("sandbox_image = \"{}\"", kadm_images::pause_image_name()),
            "SystemdCgroup = false",
            "Root = \"/srv/host/run/containerd/runc\"",
            "bin_dir = \"/usr/lib/cni\"",
            "conf_dir = \"/srv/host/etc/kadm/cni/net.d\"",
            "config_path = \"/srv/host/etc/kadm/containerd/certs.d\"",
            "netns_mounts_under_state_dir = true",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn systemd_driver_is_rendered_when_chosen() {
        let text = ContainerdConfig {
            systemd_cgroup: true,
            ..sample()
        }
        .render();
        assert!(text.contains("SystemdCgroup = true"));
    }

    #[test]
    fn paths_are_toml_escaped() {
        let cfg = ContainerdConfig {
            root: PathBuf::from("/tmp/a \"b\"\\c"),
            ..sample()
        };
        assert!(cfg.render().contains(r#"root = "/tmp/a \"b\"\\c""#));
    }

    #[test]
    fn insecure_local_registry_gets_a_plain_http_host() {
        let text = RegistryHost::insecure_http("localhost:5000").render();
        assert!(
            text.contains("server = \"http://localhost:5000\""),
            "{text}"
        );
        assert!(text.contains("[host.\"http://localhost:5000\"]"), "{text}");
    }

    #[test]
    fn mirror_is_tried_before_the_upstream() {
        let host = RegistryHost {
            registry: "docker.io".into(),
            endpoints: vec!["http://10.0.0.1:5000".into()],
            skip_verify: true,
        };
        let text = host.render();
        assert!(text.contains("[host.\"http://10.0.0.1:5000\"]"), "{text}");
        assert!(text.contains("skip_verify = true"), "{text}");
    }

    #[test]
    fn write_creates_hosts_files_and_reports_changes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::rooted(dir.path());
        let cfg = ContainerdConfig {
            registries: vec![RegistryHost::insecure_http("localhost:5000")],
            ..ContainerdConfig::for_host(&layout)
        };
        let path = dir.path().join("etc/containerd/config.toml");
        assert!(cfg.write(&path).unwrap());
        assert!(
            !cfg.write(&path).unwrap(),
            "an unchanged config is not rewritten"
        );
        let hosts = layout
            .containerd_registry_dir
            .join("localhost:5000/hosts.toml");
        assert!(hosts.is_file());
        assert!(layout.cni_conf_dir.is_dir());
    }

    #[test]
    fn registry_names_cannot_escape_the_hosts_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ContainerdConfig {
            registries: vec![RegistryHost::insecure_http("../etc")],
            ..ContainerdConfig::for_host(&Layout::rooted(dir.path()))
        };
        assert!(cfg.write(&dir.path().join("config.toml")).is_err());
    }
}
