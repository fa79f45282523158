//! Installing kadm's own binaries onto the host, verified by sha256, and
//! recording what was installed so reset removes exactly that.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The binaries a control-plane host runs (besides etcd, which comes from the distribution).
pub const CONTROL_PLANE_BINARIES: &[&str] = &[
    "kadm",
    "kadm-apiserver",
    "kadm-controller-manager",
    "kadm-scheduler",
];

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(Error::io("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(Error::io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What happened to one binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    Copied { path: PathBuf, sha256: String },
    AlreadyCurrent { path: PathBuf, sha256: String },
}

impl Installed {
    pub fn path(&self) -> &Path {
        match self {
            Installed::Copied { path, .. } | Installed::AlreadyCurrent { path, .. } => path,
        }
    }
}

/// Copies `names` from `from` into `to` when their content differs; the copy is
/// written to a temp file, checked against the source hash, and renamed into place,
/// so a running binary is never overwritten in place.
pub fn install(names: &[&str], from: &Path, to: &Path) -> Result<Vec<Installed>> {
    std::fs::create_dir_all(to).map_err(Error::io("create", to))?;
    let mut out = Vec::new();
    for name in names {
        let src = from.join(name);
        let dst = to.join(name);
        let want = sha256_file(&src)?;
        if dst.exists() && sha256_file(&dst)? == want {
            out.push(Installed::AlreadyCurrent {
                path: dst,
                sha256: want,
            });
            continue;
        }
        let tmp = to.join(format!(".{name}.kadm-tmp"));
        std::fs::copy(&src, &tmp).map_err(Error::io("copy to", &tmp))?;
        let got = sha256_file(&tmp)?;
        if got != want {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::Parse {
                what: format!("copy of {}", src.display()),
                reason: format!(
                    "sha256 {got} does not match the source {want}; check the disk and retry"
                ),
            });
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io("chmod", &tmp))?;
        std::fs::rename(&tmp, &dst).map_err(Error::io("rename into", &dst))?;
        out.push(Installed::Copied {
            path: dst,
            sha256: want,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_copies_once_and_verifies() {
        let d = tempfile::tempdir().expect("tmp");
        let from = d.path().join("from");
        let to = d.path().join("to");
        std::fs::create_dir_all(&from).expect("mkdir");
        std::fs::write(from.join("a"), b"#!/bin/sh\necho a\n").expect("write");
        let first = install(&["a"], &from, &to).expect("install");
        assert!(matches!(first[0], Installed::Copied { .. }));
        let second = install(&["a"], &from, &to).expect("again");
        assert!(matches!(second[0], Installed::AlreadyCurrent { .. }));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(to.join("a"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o755);
        assert!(install(&["missing"], &from, &to).is_err());
    }
}
