//! Small filesystem helpers shared by the PKI and the kubeconfig writer.
//!
//! Keys and kubeconfigs are secrets and the cluster cannot start from a half-written one, so
//! every file goes through [`write_atomic`]: a crash leaves either the old state or the new file,
//! never a truncated key, and the file is never readable with a wider mode than intended.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Mode of private keys and kubeconfigs: only the owner may read them.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of certificates and public keys: public material, readable by anyone.
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;
/// Mode of directories holding keys, so file names and keys are hidden from other users.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;

/// Writes `contents` to `path` so that readers see the old file or the complete new one.
///
/// The temporary file lives in the same directory (rename is only atomic within a filesystem)
/// and is created with `mode` so its bytes are never exposed more widely, even for an instant;
/// the mode is then set exactly, because the process umask may have narrowed it. The data and
/// then the directory entry are fsynced so the rename survives a power loss.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source: std::io::Error::new(ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:016x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));

    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(Error::io("create", &tmp))?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(Error::io("set permissions of", &tmp))?;
        file.write_all(contents).map_err(Error::io("write", &tmp))?;
        file.sync_all().map_err(Error::io("sync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(Error::io("rename into place", path))
    })();
    if written.is_err() {
        // Best effort: a stray temp file is harmless, the original error is what matters.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Makes a completed rename durable; without it a power loss may forget the new entry.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync directory", dir))
}

/// Creates `dir` with mode 0700 if it does not exist yet; parents get the default mode.
///
/// An existing directory keeps its mode: the operator may have chosen it on purpose, and
/// bootstrap only decides for directories it creates.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if exists(dir)? {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(Error::io("create directory", parent))?;
    }
    match DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => {}
        // Lost a race with another creator: fine, the directory is there.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::io("create directory", dir)(e)),
    }
    // The umask may have narrowed the mode; make it exactly 0700.
    fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR_MODE))
        .map_err(Error::io("set permissions of", dir))
}

/// Whether `path` exists, distinguishing "absent" from "cannot tell" (e.g. permission denied),
/// which must not be mistaken for absent or we would generate over an existing file.
pub(crate) fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(Error::io("check", path))
}

/// Reads a text file, naming it in the error.
pub(crate) fn read_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(Error::io("read", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_atomic_sets_mode_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        write_atomic(&path, b"one", PRIVATE_FILE_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(mode_of(&path), 0o600);

        write_atomic(&path, b"two", PUBLIC_FILE_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode_of(&path), 0o644);

        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret.key")]);
    }

    #[test]
    fn write_atomic_into_missing_dir_fails_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("x.key");
        let err = write_atomic(&path, b"x", PRIVATE_FILE_MODE).unwrap_err();
        assert!(err.to_string().starts_with("create "), "{err}");
    }

    #[test]
    fn ensure_private_dir_creates_0700_and_keeps_existing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a").join("etcd");
        ensure_private_dir(&sub).unwrap();
        assert_eq!(mode_of(&sub), 0o700);

        fs::set_permissions(&sub, Permissions::from_mode(0o750)).unwrap();
        ensure_private_dir(&sub).unwrap();
        assert_eq!(mode_of(&sub), 0o750);
    }
}
