//! The node's CNI network config: one conflist for containerd (bridge with host-local IPAM
//! on the node's pod CIDR, then portmap for hostPorts), written atomically into the CNI
//! config dir once the Node has `spec.podCIDR`. containerd notices the file and reports
//! `NetworkReady`.
//!
//! No `loopback` entry: containerd's CRI plugin brings up `lo` in every pod itself (its
//! built-in loopback network); the loopback plugin in this chain would be run on `eth0`.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::{Error, Result};

/// The network's name, as pods' sandboxes record it.
pub const NETWORK_NAME: &str = "kadm";
/// The file name; containerd loads the first conflist in lexical order.
pub const CONFLIST_NAME: &str = "10-kadm.conflist";

/// Per-host settings of the network.
#[derive(Debug, Clone)]
pub struct CniSettings {
    pub conf_dir: PathBuf,
    pub bridge: String,
    /// host-local's allocation store (`None`: the plugins' default).
    pub ipam_data_dir: Option<PathBuf>,
}

/// The conflist for `pod_cidrs` (one per IP family).
pub fn conflist(settings: &CniSettings, pod_cidrs: &[String]) -> serde_json::Value {
    let ranges: Vec<serde_json::Value> =
        pod_cidrs.iter().map(|c| json!([{ "subnet": c }])).collect();
    let routes: Vec<serde_json::Value> = pod_cidrs
        .iter()
        .map(|c| {
            if c.contains(':') {
                json!({"dst": "::/0"})
            } else {
                json!({"dst": "0.0.0.0/0"})
            }
        })
        .collect();
    let mut ipam = json!({
        "type": "host-local",
        "ranges": ranges,
        "routes": routes,
    });
    if let Some(d) = &settings.ipam_data_dir {
        ipam["dataDir"] = json!(d.display().to_string());
    }
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": settings.bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": ipam,
            },
            {
                "type": "portmap",
                "capabilities": {"portMappings": true},
            }
        ]
    })
}

/// The conflist's path.
pub fn conflist_path(settings: &CniSettings) -> PathBuf {
    settings.conf_dir.join(CONFLIST_NAME)
}

/// Writes the conflist unless it already says the same; returns whether it wrote. The
/// file is written beside and renamed, so containerd never reads half a file.
pub fn write(settings: &CniSettings, pod_cidrs: &[String]) -> Result<bool> {
    let path = conflist_path(settings);
    let mut content =
        serde_json::to_string_pretty(&conflist(settings, pod_cidrs)).map_err(|source| {
            Error::Json {
                what: "cni conflist",
                source,
            }
        })?;
    content.push('\n');
    if std::fs::read_to_string(&path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(&settings.conf_dir).map_err(io("create", &settings.conf_dir))?;
    // A dot file: containerd only loads *.conf, *.conflist and *.json.
    let tmp = settings.conf_dir.join(format!(".{CONFLIST_NAME}.tmp"));
    std::fs::write(&tmp, content).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
    tracing::info!(path = %path.display(), pod_cidrs = ?pod_cidrs, "wrote the CNI config");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_is_bridge_host_local_and_portmap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = CniSettings {
            conf_dir: dir.path().join("net.d"),
            bridge: "kadm0".into(),
            ipam_data_dir: None,
        };
        assert!(write(&s, &["10.244.1.0/24".into()]).expect("write"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(conflist_path(&s)).expect("read"))
                .expect("json");
        assert_eq!(v["name"], "kadm");
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "kadm0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert!(bridge["ipam"].get("dataDir").is_none());
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
        // Same content: no rewrite; a new CIDR: rewritten, no temp file left.
        assert!(!write(&s, &["10.244.1.0/24".into()]).expect("same"));
        assert!(write(&s, &["10.244.2.0/24".into()]).expect("changed"));
        let names: Vec<String> = std::fs::read_dir(&s.conf_dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [CONFLIST_NAME]);
    }
}
