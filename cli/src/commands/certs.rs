//! `kadm certs check-expiration`: every certificate of this control plane with its expiry.

use anyhow::Context;
use chrono::Utc;
use comfy_table::{Table, presets::NOTHING};
use kadm_bootstrap::kubeconfig;
use kadm_bootstrap::pki::{CertInfo, Pki};

use super::HostFlags;

/// Certificates closer than this to expiry are flagged.
const WARN_DAYS: i64 = 30;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List certificates with their expiry and the time left.
    CheckExpiration {
        #[command(flatten)]
        host: HostFlags,
    },
}

/// Residual time as kubeadm prints it: `364d`, `9y`, `23h`, or `<invalid>` once expired.
pub fn residual(d: chrono::Duration) -> String {
    if d.num_seconds() <= 0 {
        return "<invalid>".into();
    }
    let days = d.num_days();
    if days >= 365 * 2 {
        format!("{}y", days / 365)
    } else if days >= 1 {
        format!("{days}d")
    } else if d.num_hours() >= 1 {
        format!("{}h", d.num_hours())
    } else {
        format!("{}m", d.num_minutes().max(1))
    }
}

fn authority(c: &CertInfo) -> &'static str {
    match c.issuer.as_str() {
        s if s.contains("etcd-ca") => "etcd-ca",
        s if s.contains("kubernetes") => "ca",
        _ => "unknown",
    }
}

pub fn run(c: Command) -> anyhow::Result<()> {
    let Command::CheckExpiration { host } = c;
    let layout = host.layout();
    let pki = Pki::at(layout.pki_dir());
    if !pki.ca_cert_path().exists() {
        anyhow::bail!(
            "no cluster certificates in {}; run `kadm init` first",
            layout.pki_dir().display()
        );
    }
    let kubeconfigs: Vec<_> = [
        kubeconfig::ADMIN_CONF,
        kubeconfig::SCHEDULER_CONF,
        kubeconfig::CONTROLLER_MANAGER_CONF,
    ]
    .iter()
    .map(|f| layout.etc_dir.join(f))
    .collect();
    let certs = pki.inventory(&kubeconfigs).context("read certificates")?;
    let now = Utc::now();
    let fmt = |c: &CertInfo| c.not_after.format("%b %d, %Y %H:%M UTC").to_string();
    let mut leaves = Table::new();
    leaves.load_style(NOTHING);
    leaves.set_header([
        "CERTIFICATE",
        "EXPIRES",
        "RESIDUAL TIME",
        "CERTIFICATE AUTHORITY",
        "EXTERNALLY MANAGED",
    ]);
    let mut cas = Table::new();
    cas.load_style(NOTHING);
    cas.set_header([
        "CERTIFICATE AUTHORITY",
        "EXPIRES",
        "RESIDUAL TIME",
        "EXTERNALLY MANAGED",
    ]);
    let mut warnings = Vec::new();
    for c in &certs {
        let left = c.residual(now);
        if left.num_days() < WARN_DAYS {
            warnings.push(format!(
                "{} expires in {} ({})",
                c.name,
                residual(left),
                c.path.display()
            ));
        }
        if c.is_ca {
            cas.add_row([c.name.clone(), fmt(c), residual(left), "no".into()]);
        } else {
            leaves.add_row([
                c.name.clone(),
                fmt(c),
                residual(left),
                authority(c).into(),
                "no".into(),
            ]);
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{leaves}\n\n{cas}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("write to stdout");
    }
    for w in &warnings {
        eprintln!("warning: {w}; renew it before it expires");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_like_kubeadm() {
        assert_eq!(residual(chrono::Duration::days(364)), "364d");
        assert_eq!(residual(chrono::Duration::days(3650)), "10y");
        assert_eq!(residual(chrono::Duration::hours(5)), "5h");
        assert_eq!(residual(chrono::Duration::seconds(-1)), "<invalid>");
    }
}
