//! `kadm supervisor run`: the host supervisor's entry point (systemd unit or detached).

use std::path::PathBuf;

use anyhow::Context;
use kadm_bootstrap::supervisor::{self, SupervisorConfig};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Run the components listed in the config until stopped.
    Run {
        #[arg(long, default_value = supervisor::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
}

pub fn run(c: Command) -> anyhow::Result<()> {
    let Command::Run { config } = c;
    kadm_base::init_logging("info");
    let cfg =
        SupervisorConfig::load(&config).with_context(|| format!("load {}", config.display()))?;
    let rt = tokio::runtime::Runtime::new().context("start the async runtime")?;
    rt.block_on(supervisor::run(cfg))
        .context("supervisor failed")?;
    Ok(())
}
