//! kadm: provision and run Kubernetes clusters from one command line.

mod commands;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kadm", version = kadm_base::VERSION, about = "Provision and run Kubernetes clusters", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Initialize a control plane on this host.
    Init(commands::init::Args),
    /// Stop everything kadm started on this host and remove its state.
    Reset(commands::reset::Args),
    /// Inspect the cluster's certificates.
    #[command(subcommand)]
    Certs(commands::certs::Command),
    /// Manage how Secrets are encrypted at rest.
    #[command(subcommand)]
    Secrets(commands::secrets::Command),
    /// Load container images into a node's containerd (air-gapped clusters).
    #[command(subcommand)]
    Image(commands::image::Command),
    /// Run the host supervisor (started for you by `kadm init`).
    #[command(subcommand, hide = true)]
    Supervisor(commands::supervisor::Command),
    /// Print kadm's version and the Kubernetes version it serves.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(a) => commands::init::run(a),
        Command::Reset(a) => commands::reset::run(a),
        Command::Certs(c) => commands::certs::run(c),
        Command::Image(c) => commands::image::run(c),
        Command::Secrets(c) => commands::secrets::run(c),
        Command::Supervisor(c) => commands::supervisor::run(c),
        Command::Version => {
            println!(
                "kadm {} (Kubernetes {})",
                kadm_base::VERSION,
                kadm_base::git_version()
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
