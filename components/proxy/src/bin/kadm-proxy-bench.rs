//! `kadm-proxy-bench [SERVICES] [ENDPOINTS]`: times a full proxy sync (default 1,000 × 10)
//! against real nftables in a throw-away network namespace. Needs root.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let services = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let per = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    match kadm_proxy::bench::run(services, per) {
        Ok(r) => {
            let target = std::time::Duration::from_secs(1);
            println!(
                "kadm-proxy full sync: {} services x {} endpoints, {} KiB of rules",
                r.services,
                r.endpoints_per_service,
                r.bytes / 1024
            );
            println!(
                "  first sync (generate + nft -f): {:>8.1} ms",
                r.first_sync.as_secs_f64() * 1e3
            );
            println!(
                "  changed sync (every service -1 endpoint): {:>8.1} ms  (target <= 1000 ms: {})",
                r.changed_sync.as_secs_f64() * 1e3,
                if r.changed_sync <= target {
                    "met"
                } else {
                    "missed"
                }
            );
            println!(
                "  of which snapshot + generation: {:>8.1} ms",
                r.generate_only.as_secs_f64() * 1e3
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
