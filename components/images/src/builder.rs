//! Builds a single-layer OCI image from a list of files and writes it as an image-layout
//! tarball.
//!
//! Determinism is the point: every tar header has the same mtime ([`MTIME`]), owner 0:0
//! and no user/group names, entries are written in path order with their parent
//! directories, and gzip runs with a fixed level and header. The same inputs therefore give
//! byte-identical archives and the same manifest digest on every machine with the same
//! host files, which is what makes `kadm init` re-runs and test fixtures idempotent.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::oci::{self, Descriptor, ImageConfig, Index, Manifest, RootFs, RunConfig};

/// The mtime of every file in every layer and archive kadm writes (the Unix epoch, as
/// reproducible-build tools use with `SOURCE_DATE_EPOCH=0`).
pub const MTIME: u64 = 0;

/// The `created` timestamp in image configs, matching [`MTIME`].
const CREATED: &str = "1970-01-01T00:00:00Z";

/// gzip level for layers: fixed so the compressed bytes (and digest) never drift.
const GZIP_LEVEL: u32 = 6;

/// One thing to put into the image's filesystem. Paths are absolute image paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file copied from the host (its content is read at build time; host
    /// symlinks are followed, so the image gets the file, not the link).
    File {
        path: String,
        mode: u32,
        source: PathBuf,
    },
    /// A regular file with the given content.
    Bytes {
        path: String,
        mode: u32,
        contents: Vec<u8>,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::File { path, .. }
            | Entry::Bytes { path, .. }
            | Entry::Dir { path, .. }
            | Entry::Symlink { path, .. } => path,
        }
    }
}

/// Collects an image's files and run configuration; [`ImageBuilder::build`] makes the
/// image.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    name: String,
    entries: Vec<Entry>,
    run: RunConfig,
}

impl ImageBuilder {
    /// `name` is the full reference containerd will list, e.g. `localhost/kadm/pause:0.1.0`.
    pub fn new(name: impl Into<String>) -> ImageBuilder {
        ImageBuilder {
            name: name.into(),
            entries: Vec::new(),
            run: RunConfig::default(),
        }
    }

    pub fn file(mut self, source: impl Into<PathBuf>, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::File {
            path: path.into(),
            mode,
            source: source.into(),
        });
        self
    }

    pub fn bytes(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.entries.push(Entry::Bytes {
            path: path.into(),
            mode,
            contents: contents.into(),
        });
        self
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.run.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.run.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Adds `KEY=value` to the default environment (order kept).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.run.env.push(format!("{key}={value}"));
        self
    }

    pub fn working_dir(mut self, dir: &str) -> Self {
        self.run.working_dir = Some(dir.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.run.labels.insert(key.into(), value.into());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the host files and assembles layer, config, manifest and index in memory.
    pub fn build(&self) -> Result<OciImage> {
        let tag = validate_name(&self.name)?;
        let layer_tar = self.layer_tar()?;
        let diff_id = oci::sha256_digest(&layer_tar);
        let layer_gz = gzip(&layer_tar)?;

        let config = ImageConfig {
            created: Some(CREATED.into()),
            architecture: oci::host_architecture().into(),
            os: "linux".into(),
            config: self.run.clone(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id.clone()],
            },
            history: vec![oci::History {
                created: Some(CREATED.into()),
                created_by: Some(format!("kadm {} image builder", env!("CARGO_PKG_VERSION"))),
            }],
        };
        let config_json = to_json(&config)?;
        let config_desc = descriptor(oci::MEDIA_TYPE_CONFIG, &config_json);
        let layer_desc = descriptor(oci::MEDIA_TYPE_LAYER_GZIP, &layer_gz);

        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_MANIFEST.into()),
            config: config_desc.clone(),
            layers: vec![layer_desc.clone()],
        };
        let manifest_json = to_json(&manifest)?;
        let mut manifest_desc = descriptor(oci::MEDIA_TYPE_MANIFEST, &manifest_json);
        manifest_desc.platform = Some(oci::Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
        });
        manifest_desc
            .annotations
            .insert(oci::ANNOTATION_CONTAINERD_NAME.into(), self.name.clone());
        manifest_desc
            .annotations
            .insert(oci::ANNOTATION_REF_NAME.into(), tag.into());

        let index = Index {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_INDEX.into()),
            manifests: vec![manifest_desc.clone()],
        };
        let index_json = to_json(&index)?;

        Ok(OciImage {
            name: self.name.clone(),
            manifest_digest: manifest_desc.digest.clone(),
            config_digest: config_desc.digest.clone(),
            layer_digest: layer_desc.digest.clone(),
            diff_id,
            index_json,
            manifest_json,
            config_json,
            layer_gz,
        })
    }

    /// The uncompressed layer: entries in path order, parents first, all metadata fixed.
    fn layer_tar(&self) -> Result<Vec<u8>> {
        let mut by_path: BTreeMap<String, &Entry> = BTreeMap::new();
        for entry in &self.entries {
            let path = normalize(&self.name, entry.path())?;
            if by_path.insert(path.clone(), entry).is_some() {
                return Err(invalid(&self.name, format!("/{path} is listed twice")));
            }
        }
        // Parent directories that were not listed are implied, as `mkdir -p` would make them.
        let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
        for path in by_path.keys() {
            for ancestor in Path::new(path).ancestors().skip(1) {
                let a = ancestor.to_string_lossy();
                if a.is_empty() {
                    break;
                }
                match by_path.get(a.as_ref()) {
                    Some(Entry::Dir { .. }) | None => {}
                    Some(_) => {
                        return Err(invalid(
                            &self.name,
                            format!("/{a} is a file or link but /{path} is below it"),
                        ));
                    }
                }
                dirs.entry(a.into_owned()).or_insert(0o755);
            }
        }
        for (path, entry) in &by_path {
            if let Entry::Dir { mode, .. } = entry {
                dirs.insert(path.clone(), *mode);
            }
        }

        // One ordered walk over directories and the other entries together.
        let mut all: BTreeMap<&str, Option<&Entry>> = BTreeMap::new();
        for path in dirs.keys() {
            all.insert(path, None);
        }
        for (path, entry) in &by_path {
            if !matches!(entry, Entry::Dir { .. }) {
                all.insert(path, Some(entry));
            }
        }

        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in all {
            match entry {
                None => append_dir(&mut tar, &format!("{path}/"), dirs[path])?,
                Some(Entry::File { mode, source, .. }) => {
                    let contents = std::fs::read(source).map_err(|e| Error::Io {
                        action: "read",
                        path: source.clone(),
                        source: e,
                    })?;
                    append_file(&mut tar, path, *mode, &contents)?;
                }
                Some(Entry::Bytes { mode, contents, .. }) => {
                    append_file(&mut tar, path, *mode, contents)?;
                }
                Some(Entry::Symlink { target, .. }) => append_symlink(&mut tar, path, target)?,
                Some(Entry::Dir { .. }) => unreachable!("directories are walked from `dirs`"),
            }
        }
        tar.into_inner().map_err(|e| Error::Encode {
            what: "layer tar",
            source: e,
        })
    }
}

/// A built image: every blob in memory, ready to be written as an archive or pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage {
    pub name: String,
    /// `sha256:…` of the manifest: the image's identity (`name@digest`).
    pub manifest_digest: String,
    pub config_digest: String,
    /// Digest of the compressed layer blob.
    pub layer_digest: String,
    /// Digest of the uncompressed layer (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub index_json: Vec<u8>,
    pub manifest_json: Vec<u8>,
    pub config_json: Vec<u8>,
    pub layer_gz: Vec<u8>,
}

impl OciImage {
    /// Blobs as (digest, bytes), in the order a registry push needs them: layer, config,
    /// then the manifest that refers to both.
    pub fn blobs(&self) -> [(&str, &[u8]); 3] {
        [
            (&self.layer_digest, &self.layer_gz),
            (&self.config_digest, &self.config_json),
            (&self.manifest_digest, &self.manifest_json),
        ]
    }

    /// The tag part of the name (`pause:0.1.0` → `0.1.0`).
    pub fn tag(&self) -> &str {
        split_tag(&self.name).unwrap_or("latest")
    }

    /// Writes the OCI image-layout tarball (`oci-layout`, `index.json`, `blobs/sha256/…`).
    pub fn write_archive(&self, out: impl Write) -> Result<()> {
        let mut tar = tar::Builder::new(out);
        append_file(&mut tar, "oci-layout", 0o644, oci::OCI_LAYOUT.as_bytes())?;
        append_file(&mut tar, "index.json", 0o644, &self.index_json)?;
        append_dir(&mut tar, "blobs/", 0o755)?;
        append_dir(&mut tar, "blobs/sha256/", 0o755)?;
        let mut blobs: Vec<_> = self.blobs().to_vec();
        blobs.sort_by(|a, b| a.0.cmp(b.0));
        for (digest, bytes) in blobs {
            let hex = digest.trim_start_matches("sha256:");
            append_file(&mut tar, &format!("blobs/sha256/{hex}"), 0o644, bytes)?;
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| Error::Encode {
                what: "image archive",
                source: e,
            })
    }

    /// The archive as bytes.
    pub fn archive_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_archive(&mut out)?;
        Ok(out)
    }

    /// Writes the archive to `path` through a temporary file in the same directory and a
    /// rename, so a reader never sees half an archive.
    pub fn write_to(&self, path: &Path) -> Result<()> {
        let io = |action: &'static str, p: &Path| {
            let p = p.to_path_buf();
            move |e| Error::Io {
                action,
                path: p,
                source: e,
            }
        };
        let bytes = self.archive_bytes()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp.{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::Io {
                action: "rename into",
                path: path.to_path_buf(),
                source: e,
            }
        })
    }
}

/// The tag of a reference (`host:5000/repo:tag` → `tag`); a port is not a tag.
fn split_tag(name: &str) -> Option<&str> {
    let last = name.rsplit('/').next()?;
    last.rsplit_once(':').map(|(_, tag)| tag)
}

/// Checks the reference has a repository and a tag, returning the tag.
fn validate_name(name: &str) -> Result<&str> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('@') {
        return Err(invalid(
            name,
            "use a reference such as localhost/kadm/pause:0.1.0".into(),
        ));
    }
    match split_tag(name) {
        Some(tag) if !tag.is_empty() => Ok(tag),
        _ => Err(invalid(name, "it has no tag; add one, e.g. :1".into())),
    }
}

/// `/bin/sh` → `bin/sh`; rejects relative paths and `..`.
fn normalize(image: &str, path: &str) -> Result<String> {
    let Some(rel) = path.strip_prefix('/') else {
        return Err(invalid(
            image,
            format!("{path:?} is not an absolute image path"),
        ));
    };
    let rel = rel.trim_end_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(invalid(
            image,
            format!("{path:?} is not a clean absolute path"),
        ));
    }
    Ok(rel.to_string())
}

fn invalid(name: &str, reason: String) -> Error {
    Error::InvalidImage {
        name: name.to_string(),
        reason,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Encode {
        what: "json document",
        source: e.into(),
    })
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: oci::sha256_digest(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(MTIME as u32)
        .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    enc.write_all(bytes)
        .and_then(|()| enc.finish())
        .map_err(|e| Error::Encode {
            what: "gzip layer",
            source: e,
        })
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

fn encode_err(e: std::io::Error) -> Error {
    Error::Encode {
        what: "tar entry",
        source: e,
    }
}

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    data: &[u8],
) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    tar.append_data(&mut h, path, data).map_err(encode_err)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str, mode: u32) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, 0);
    tar.append_data(&mut h, path, std::io::empty())
        .map_err(encode_err)
}

fn append_symlink<W: Write>(tar: &mut tar::Builder<W>, path: &str, target: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Symlink, 0o777, 0);
    tar.append_link(&mut h, path, target).map_err(encode_err)
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
