//! Checks run before `kadm init` touches anything, each with the fix an operator
//! can apply. All checks run and all failures are reported at once.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub check: &'static str,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}; {}", self.check, self.problem, self.fix)
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub require_root: bool,
    /// Ports that must be free (skipped on a resumed init whose components already run).
    pub ports: Vec<u16>,
    /// Executables that must exist.
    pub binaries: Vec<PathBuf>,
    pub node_name: String,
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs every check; an empty list means go.
pub fn run(p: &Preflight) -> Vec<Failure> {
    let mut failures = Vec::new();
    if p.require_root && !nix::unistd::geteuid().is_root() {
        failures.push(Failure {
            check: "root",
            problem: "kadm init must run as root (it writes /etc/kadm and starts system services)"
                .into(),
            fix: "re-run it with sudo or as root".into(),
        });
    }
    for port in &p.ports {
        let addr = SocketAddr::from(([0, 0, 0, 0], *port));
        if TcpListener::bind(addr).is_err() {
            failures.push(Failure {
                check: "ports",
                problem: format!("port {port} is already in use"),
                fix: format!(
                    "find the process with `ss -ltnp 'sport = :{port}'` and stop it (a previous cluster? run `kadm reset`)"
                ),
            });
        }
    }
    for b in &p.binaries {
        if !is_executable(b) {
            failures.push(Failure {
                check: "binaries",
                problem: format!("{} is missing or not executable", b.display()),
                fix: if b.starts_with("/usr/bin") {
                    "install the Debian packages with `make up` (or `apt-get install etcd-server`)".into()
                } else {
                    "build kadm with `make build` or point --binaries-dir at the directory holding kadm's binaries".into()
                },
            });
        }
    }
    let earliest = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc));
    if earliest.is_ok_and(|e| chrono::Utc::now() < e) {
        failures.push(Failure {
            check: "clock",
            problem: format!("the system clock says {}, which is before this kadm was built", chrono::Utc::now()),
            fix: "set the clock (e.g. with systemd-timesyncd or chrony): certificates issued now would be invalid later".into(),
        });
    }
    if !kadm_name_ok(&p.node_name) {
        failures.push(Failure {
            check: "hostname",
            problem: format!(
                "the node name {:?} is not a valid DNS subdomain",
                p.node_name
            ),
            fix: "pass --node-name with a lowercase name made of letters, digits, '-' and '.'"
                .into(),
        });
    }
    failures
}

fn kadm_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_failure_with_a_fix() {
        let busy = TcpListener::bind("0.0.0.0:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let f = run(&Preflight {
            require_root: false,
            ports: vec![port],
            binaries: vec![PathBuf::from("/nonexistent/kadm-apiserver")],
            node_name: "Bad_Name".into(),
        });
        let checks: Vec<&str> = f.iter().map(|f| f.check).collect();
        assert_eq!(checks, vec!["ports", "binaries", "hostname"]);
        assert!(f[0].problem.contains(&port.to_string()));
        assert!(f.iter().all(|f| !f.fix.is_empty()));
    }

    #[test]
    fn passes_when_all_is_well() {
        let f = run(&Preflight {
            require_root: false,
            ports: vec![],
            binaries: vec![PathBuf::from("/bin/sh")],
            node_name: "node-1.example".into(),
        });
        assert!(f.is_empty(), "{f:?}");
    }
}
