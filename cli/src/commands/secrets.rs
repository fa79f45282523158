//! `kadm secrets rotate-key`: a new key for Secrets at rest, every Secret rewritten with it,
//! the old key removed (the steps live in `kadm_bootstrap::encryption_keys`).

use std::time::Duration;

use anyhow::Context;
use kadm_bootstrap::encryption_keys::{self, RotateOptions};

use super::HostFlags;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Encrypt every Secret with a new key and remove the old one.
    #[command(
        after_help = "Adds a new key first in the encryption config (the old key still decrypts), restarts the apiserver, rewrites every Secret through the API, then removes the old key and restarts again. If it stops midway, run it again: it finishes the rotation it started."
    )]
    RotateKey {
        #[command(flatten)]
        host: HostFlags,
        /// How long to wait for the apiserver after each restart.
        #[arg(long, default_value_t = 120)]
        ready_timeout_seconds: u64,
    },
}

pub fn run(c: Command) -> anyhow::Result<()> {
    let Command::RotateKey {
        host,
        ready_timeout_seconds,
    } = c;
    let layout = host.layout();
    let opts = RotateOptions {
        ready_timeout: Duration::from_secs(ready_timeout_seconds),
    };
    let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let say = |line: &str| println!("{line}");
    let report = rt
        .block_on(encryption_keys::rotate_key(&layout, &opts, &say))
        .context("kadm secrets rotate-key failed")?;
    println!(
        "secrets are encrypted with {} key {}{}",
        report.provider,
        report.key,
        if report.dropped.is_empty() {
            String::new()
        } else {
            format!("; removed {}", report.dropped.join(", "))
        }
    );
    Ok(())
}
