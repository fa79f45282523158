//! Removing a pod's cgroup once its containers are gone (cgroupfs driver): runc creates
//! `<parent>/<container>` in every hierarchy and removes only the container's own level,
//! so the kubelet removes the pod level, as Kubernetes' pod container manager does.

use std::path::{Path, PathBuf};

/// The cgroup filesystem root.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pod cgroup's directories that exist, in every mounted hierarchy (v1 controllers,
/// the v2 unified tree).
pub fn pod_cgroup_dirs(root: &Path, parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    if rel.is_empty() {
        return Vec::new();
    }
    let mut dirs = Vec::new();
    let unified = root.join(rel);
    if unified.is_dir() {
        dirs.push(unified);
    }
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            // Symlinks (cpu → cpu,cpuacct) name a hierarchy twice.
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let d = e.path().join(rel);
            if d.is_dir() {
                dirs.push(d);
            }
        }
    }
    dirs
}

/// Removes the (empty) pod cgroup; a busy or missing one is left alone.
pub fn remove_pod_cgroup(parent: &str) {
    for d in pod_cgroup_dirs(Path::new(CGROUP_ROOT), parent) {
        match std::fs::remove_dir(&d) {
            Ok(()) => tracing::debug!(cgroup = %d.display(), "removed the pod cgroup"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!(cgroup = %d.display(), error = %e, "pod cgroup not removed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cgroups_are_found_in_every_hierarchy_once() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        for h in ["cpu,cpuacct", "memory", "pids"] {
            std::fs::create_dir_all(r.join(h).join("kubepods/besteffort/podu1")).expect("mkdir");
        }
        std::os::unix::fs::symlink(r.join("cpu,cpuacct"), r.join("cpu")).expect("symlink");
        let found = pod_cgroup_dirs(r, "/kubepods/besteffort/podu1");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(pod_cgroup_dirs(r, "/").is_empty());
        assert!(pod_cgroup_dirs(r, "/kubepods/besteffort/podu2").is_empty());
    }
}
