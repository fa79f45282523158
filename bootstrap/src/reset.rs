//! `kadm reset`: stop what kadm started on this host and remove what it wrote,
//! so the host is as it was before `kadm init`. Safe to run twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::supervisor;

/// What reset did, for the operator's summary.
#[derive(Debug, Default)]
pub struct ResetReport {
    pub stopped: Vec<String>,
    pub removed: Vec<PathBuf>,
    pub kept: Vec<(PathBuf, String)>,
}

fn remove(path: &Path, report: &mut ResetReport) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(Error::io("remove", path))?;
    } else {
        std::fs::remove_file(path).map_err(Error::io("remove", path))?;
    }
    report.removed.push(path.to_path_buf());
    Ok(())
}

/// Stops the supervisor (and with it every component) and removes kadm's files.
/// `user_kubeconfig` is removed only if it is byte-identical to the admin.conf kadm wrote.
pub fn reset(
    layout: &Layout,
    use_systemd: bool,
    user_kubeconfig: Option<&Path>,
) -> Result<ResetReport> {
    let mut report = ResetReport::default();
    if use_systemd && layout.systemd_unit().exists() {
        let _ = std::process::Command::new("systemctl")
            .args(["disable", "--now", "kadm-supervisor.service"])
            .status();
        report
            .stopped
            .push("systemd unit kadm-supervisor.service".into());
        remove(&layout.systemd_unit(), &mut report)?;
        let _ = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status();
    }
    if supervisor::stop_running(&layout.run_dir, Duration::from_secs(60))? {
        report
            .stopped
            .push("kadm supervisor and its components".into());
    }
    if let Some(kc) = user_kubeconfig {
        match (std::fs::read(kc), std::fs::read(layout.admin_conf())) {
            (Ok(a), Ok(b)) if a == b => remove(kc, &mut report)?,
            (Ok(_), _) => report.kept.push((
                kc.to_path_buf(),
                "it is not the admin.conf kadm wrote".into(),
            )),
            _ => {}
        }
    }
    let installed: Vec<PathBuf> = std::fs::read(layout.install_record())
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .unwrap_or_default()
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&layout.bin_dir))
        .collect();
    for bin in &installed {
        // The running `kadm` may be one of them: unlinking a running binary is fine on Linux.
        remove(bin, &mut report)?;
    }
    for dir in [
        &layout.etc_dir,
        &layout.state_dir,
        &layout.run_dir,
        &layout.log_dir,
    ] {
        remove(dir, &mut report)?;
    }
    Ok(report)
}
