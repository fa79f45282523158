//! One tracing setup for all binaries.
//!
//! `KADM_LOG` (or `RUST_LOG`) takes an `EnvFilter` directive; `KADM_LOG_FORMAT=json`
//! switches to JSON lines for log shippers. Logs go to stderr: the host supervisor
//! redirects each component's stderr to `/var/log/kadm/<component>.log`.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber; calling it twice is harmless (the second call is ignored)
/// so tests can call it freely.
pub fn init_logging(default_level: &str) {
    let filter = std::env::var("KADM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let json = std::env::var("KADM_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_target(true).try_init()
    };
}
