//! `kadm reset`: undo `kadm init` on this host.

use anyhow::Context;

use super::{HostFlags, confirm, user_kubeconfig};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  kadm reset\n  kadm reset --yes")]
pub struct Args {
    #[command(flatten)]
    host: HostFlags,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let layout = a.host.layout();
    if a.host.prefix.is_none() && !nix_is_root() {
        anyhow::bail!("kadm reset must run as root; re-run it with sudo");
    }
    if !a.yes
        && !confirm(&format!(
            "this stops kadm's components and deletes {}, {} and {}; continue?",
            layout.etc_dir.display(),
            layout.state_dir.display(),
            layout.log_dir.display()
        ))
    {
        anyhow::bail!("reset not confirmed; nothing was changed (use --yes to skip the question)");
    }
    let kubeconfig = if a.host.prefix.is_none() {
        user_kubeconfig()
    } else {
        None
    };
    let report = kadm_bootstrap::reset::reset(&layout, a.host.use_systemd(), kubeconfig.as_deref())
        .context("kadm reset failed")?;
    for s in &report.stopped {
        println!("stopped {s}");
    }
    for r in &report.removed {
        println!("removed {}", r.display());
    }
    for (p, why) in &report.kept {
        println!("kept {} ({why})", p.display());
    }
    if report.stopped.is_empty() && report.removed.is_empty() {
        println!("nothing to reset: kadm has no state on this host");
    }
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
