//! Checks an image archive before kadm hands it to containerd.
//!
//! `ctr images import` half-imports a broken archive and reports it in Go's words; kadm
//! reads the archive once first — it must be a tar (plain or gzip'd) holding either an OCI
//! image layout (`index.json` + `blobs/`) or a `docker save` archive (`manifest.json`) —
//! checks that every blob's content matches its digest and that what the top-level
//! documents refer to is there, and says precisely what is wrong. Nothing is imported from
//! an archive that fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::error::{Error, Result};
use crate::oci::{self, DockerArchiveEntry, Index, Manifest};

/// Entries an archive may have before kadm refuses it (a real image has a few hundred).
const MAX_ENTRIES: usize = 100_000;
/// Blobs up to this size are kept in memory while reading, to check manifests against.
const SMALL_BLOB: u64 = 4 << 20;
/// `index.json` / `manifest.json` larger than this are not image metadata.
const MAX_METADATA: u64 = 16 << 20;

/// Which of the two archive layouts containerd imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`).
    Oci,
    /// `docker save` (`manifest.json`, `<id>.json`, `<id>/layer.tar`).
    Docker,
}

/// What [`inspect`] found in a valid archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub format: ArchiveFormat,
    /// Whether the tar is gzip-compressed (containerd 1.6 imports only plain tar, so the
    /// importer decompresses first).
    pub gzip: bool,
    /// Image names the archive carries (OCI name annotations, Docker `RepoTags`); empty
    /// when the archive names none.
    pub names: Vec<String>,
    /// The number of images (index entries or `manifest.json` entries).
    pub images: usize,
}

/// Opens `path` as a tar stream, decompressing it when it starts with gzip's magic bytes.
pub fn open(path: &Path) -> Result<(Box<dyn Read>, bool)> {
    let mut file = File::open(path).map_err(|e| Error::Io {
        action: "open",
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let reader = BufReader::new(head.chain(file));
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok((Box::new(flate2::read::GzDecoder::new(reader)), true))
    } else {
        Ok((Box::new(reader), false))
    }
}

/// Reads the whole archive and checks it is an importable image archive.
pub fn inspect(path: &Path) -> Result<ArchiveInfo> {
    let (reader, gzip) = open(path)?;
    let contents = read_entries(path, reader)?;
    let (format, names, images) = if let Some(index) = contents.metadata.get("index.json") {
        let (names, images) = check_oci(path, index, &contents)?;
        (ArchiveFormat::Oci, names, images)
    } else if let Some(manifest) = contents.metadata.get("manifest.json") {
        let (names, images) = check_docker(path, manifest, &contents)?;
        (ArchiveFormat::Docker, names, images)
    } else {
        return Err(bad(
            path,
            "no index.json (OCI image layout) or manifest.json (docker save) in the archive; \
             pass an image archive such as `docker save` or `skopeo copy … oci-archive:` writes",
        ));
    };
    Ok(ArchiveInfo {
        format,
        gzip,
        names,
        images,
    })
}

/// What one pass over the tar collected.
#[derive(Default)]
struct Contents {
    /// Every regular file: its normalized path and sha256 (hex).
    files: BTreeMap<String, String>,
    /// `index.json` and `manifest.json`.
    metadata: BTreeMap<String, Vec<u8>>,
    /// Small blobs by `sha256:<hex>`, to follow manifests.
    small_blobs: BTreeMap<String, Vec<u8>>,
}

fn read_entries(path: &Path, reader: Box<dyn Read>) -> Result<Contents> {
    let not_tar = |e: std::io::Error| {
        bad(
            path,
            &format!(
                "not a readable tar archive ({e}); the file is truncated or not an image \
                 archive — pass the tarball `docker save` or an OCI exporter wrote"
            ),
        )
    };
    let mut archive = tar::Archive::new(reader);
    let mut contents = Contents::default();
    let mut count = 0usize;
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(bad(
                path,
                &format!("more than {MAX_ENTRIES} entries; this is not an image archive"),
            ));
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(not_tar)?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./").to_string();
        let size = entry.header().size().map_err(not_tar)?;
        let keep = (name == "index.json" || name == "manifest.json")
            || (name.starts_with("blobs/") && size <= SMALL_BLOB);
        if (name == "index.json" || name == "manifest.json") && size > MAX_METADATA {
            return Err(bad(
                path,
                &format!("{name} is {size} bytes; not image metadata"),
            ));
        }
        let mut hasher = sha2::Sha256::new();
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(not_tar)?;
            if n == 0 {
                break;
            }
            read += n as u64;
            hasher.update(&buf[..n]);
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        if read < size {
            return Err(bad(
                path,
                &format!(
                    "the archive is truncated: {name} ends after {read} of its {size} bytes; \
                     copy or export the archive again"
                ),
            ));
        }
        let hex = hex::encode(hasher.finalize());
        if let Some(rest) = name.strip_prefix("blobs/sha256/") {
            if rest != hex {
                return Err(bad(
                    path,
                    &format!(
                        "blob {name} is corrupt: its content hashes to sha256:{hex}; \
                         export the image again"
                    ),
                ));
            }
            if keep {
                contents.small_blobs.insert(format!("sha256:{hex}"), kept);
            }
        } else if name == "index.json" || name == "manifest.json" {
            contents.metadata.insert(name.clone(), kept);
        }
        contents.files.insert(name, hex);
    }
    if count == 0 {
        return Err(bad(
            path,
            "empty archive (no tar entries); pass the tarball `docker save` or an OCI exporter wrote",
        ));
    }
    Ok(contents)
}

/// `sha256:<hex>` → `blobs/sha256/<hex>`.
fn blob_path(digest: &str) -> Option<String> {
    let (alg, hex) = digest.split_once(':')?;
    if alg.is_empty() || hex.is_empty() || hex.contains('/') || alg.contains('/') {
        return None;
    }
    Some(format!("blobs/{alg}/{hex}"))
}

fn check_oci(path: &Path, index_json: &[u8], contents: &Contents) -> Result<(Vec<String>, usize)> {
    let index: Index = serde_json::from_slice(index_json)
        .map_err(|e| bad(path, &format!("index.json is not an OCI image index: {e}")))?;
    if index.manifests.is_empty() {
        return Err(bad(path, "index.json lists no images"));
    }
    let mut names = BTreeSet::new();
    for desc in &index.manifests {
        let blob = blob_path(&desc.digest).ok_or_else(|| {
            bad(
                path,
                &format!("index.json has an invalid digest {:?}", desc.digest),
            )
        })?;
        if !contents.files.contains_key(&blob) {
            return Err(bad(
                path,
                &format!(
                    "index.json refers to {} but the archive has no {blob}",
                    desc.digest
                ),
            ));
        }
        if let Some(name) = desc
            .annotations
            .get(oci::ANNOTATION_CONTAINERD_NAME)
            .or_else(|| desc.annotations.get(oci::ANNOTATION_REF_NAME))
        {
            names.insert(name.clone());
        }
        let is_manifest = desc.media_type == oci::MEDIA_TYPE_MANIFEST
            || desc.media_type == oci::MEDIA_TYPE_DOCKER_MANIFEST;
        if let (true, Some(bytes)) = (is_manifest, contents.small_blobs.get(&desc.digest)) {
            let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| {
                bad(
                    path,
                    &format!("manifest {} is not an image manifest: {e}", desc.digest),
                )
            })?;
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                let ok = blob_path(&d.digest).is_some_and(|p| contents.files.contains_key(&p));
                if !ok {
                    return Err(bad(
                        path,
                        &format!(
                            "manifest {} refers to blob {} which the archive does not have",
                            desc.digest, d.digest
                        ),
                    ));
                }
            }
        }
    }
    Ok((names.into_iter().collect(), index.manifests.len()))
}

fn check_docker(
    path: &Path,
    manifest_json: &[u8],
    contents: &Contents,
) -> Result<(Vec<String>, usize)> {
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(manifest_json).map_err(|e| {
        bad(
            path,
            &format!("manifest.json is not a docker save manifest: {e}"),
        )
    })?;
    if entries.is_empty() {
        return Err(bad(path, "manifest.json lists no images"));
    }
    let mut names = BTreeSet::new();
    for entry in &entries {
        for file in std::iter::once(&entry.config).chain(&entry.layers) {
            let file = file.trim_start_matches("./");
            let Some(hash) = contents.files.get(file) else {
                return Err(bad(
                    path,
                    &format!("manifest.json refers to {file} which the archive does not have"),
                ));
            };
            // `docker save` names the config after its digest: check it where it does.
            if let Some(expected) = file
                .strip_suffix(".json")
                .map(|f| f.rsplit('/').next().unwrap_or(f))
                && expected.len() == 64
                && expected.chars().all(|c| c.is_ascii_hexdigit())
                && expected != hash
            {
                return Err(bad(
                    path,
                    &format!("{file} is corrupt: its content hashes to sha256:{hash}"),
                ));
            }
        }
        names.extend(entry.repo_tags.iter().flatten().cloned());
    }
    Ok((names.into_iter().collect(), entries.len()))
}

fn bad(path: &Path, reason: &str) -> Error {
    Error::InvalidArchive {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
