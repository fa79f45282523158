use std::collections::BTreeMap;
use std::io::Read;

use super::*;
use crate::oci::{ImageConfig, Index, Manifest};

fn sample(dir: &Path) -> ImageBuilder {
    let host = dir.join("tool");
    std::fs::write(&host, b"#!/bin/sh\necho tool\n").unwrap();
    ImageBuilder::new("localhost/kadm-test/sample:1")
        .file(&host, "/usr/bin/tool", 0o755)
        .bytes("/etc/motd", "hello\n", 0o600)
        .symlink("/bin/t", "../usr/bin/tool")
        .dir("/tmp", 0o1777)
        .env("PATH", "/usr/bin:/bin")
        .entrypoint(["/usr/bin/tool"])
        .cmd(["--flag"])
        .working_dir("/tmp")
}

/// (path, entry type, mode, mtime, uid, gid, link target, content) of every layer entry.
type LayerEntry = (
    String,
    tar::EntryType,
    u32,
    u64,
    u64,
    u64,
    Option<String>,
    Vec<u8>,
);

fn layer_entries(gz: &[u8]) -> Vec<LayerEntry> {
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut archive = tar::Archive::new(&tar_bytes[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned()),
                content,
            )
        })
        .collect()
}

#[test]
fn same_inputs_give_the_same_digests_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = sample(dir.path()).build().unwrap();
    let b = sample(dir.path()).build().unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_eq!(a.archive_bytes().unwrap(), b.archive_bytes().unwrap());
    // Entry order in the builder does not matter either: the layer is sorted by path.
    let host = dir.path().join("tool");
    let reordered = ImageBuilder::new("localhost/kadm-test/sample:1")
        .dir("/tmp", 0o1777)
        .symlink("/bin/t", "../usr/bin/tool")
        .bytes("/etc/motd", "hello\n", 0o600)
        .file(&host, "/usr/bin/tool", 0o755)
        .env("PATH", "/usr/bin:/bin")
        .entrypoint(["/usr/bin/tool"])
        .cmd(["--flag"])
        .working_dir("/tmp")
        .build()
        .unwrap();
    assert_eq!(reordered.manifest_digest, a.manifest_digest);
}

#[test]
fn a_changed_mode_content_or_file_list_changes_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let build = |mode: u32, content: &str, extra: bool| {
        let mut b =
            ImageBuilder::new("localhost/kadm-test/sample:1").bytes("/etc/motd", content, mode);
        if extra {
            b = b.bytes("/etc/extra", "x", 0o644);
        }
        b.build().unwrap().manifest_digest
    };
    let base = build(0o644, "hello", false);
    assert_ne!(base, build(0o600, "hello", false), "mode");
    assert_ne!(base, build(0o644, "hellO", false), "content");
    assert_ne!(base, build(0o644, "hello", true), "file list");
    // Host files are read at build time.
    let host = dir.path().join("f");
    std::fs::write(&host, "one").unwrap();
    let from_host = || {
        ImageBuilder::new("localhost/kadm-test/sample:1")
            .file(&host, "/f", 0o644)
            .build()
            .unwrap()
            .manifest_digest
    };
    let first = from_host();
    std::fs::write(&host, "two").unwrap();
    assert_ne!(first, from_host());
}

#[test]
fn documents_are_valid_oci_json_with_the_right_media_types() {
    let dir = tempfile::tempdir().unwrap();
    let image = sample(dir.path()).build().unwrap();

    let index: Index = serde_json::from_slice(&image.index_json).unwrap();
    assert_eq!(index.schema_version, 2);
    assert_eq!(index.media_type.as_deref(), Some(oci::MEDIA_TYPE_INDEX));
    assert_eq!(index.manifests.len(), 1);
    let desc = &index.manifests[0];
    assert_eq!(desc.media_type, oci::MEDIA_TYPE_MANIFEST);
    assert_eq!(desc.digest, image.manifest_digest);
    assert_eq!(desc.digest, oci::sha256_digest(&image.manifest_json));
    assert_eq!(desc.size, image.manifest_json.len() as u64);
    assert_eq!(
        desc.annotations[oci::ANNOTATION_CONTAINERD_NAME],
        "localhost/kadm-test/sample:1"
    );
    assert_eq!(desc.annotations[oci::ANNOTATION_REF_NAME], "1");

    let manifest: Manifest = serde_json::from_slice(&image.manifest_json).unwrap();
    assert_eq!(manifest.schema_version, 2);
    assert_eq!(
        manifest.media_type.as_deref(),
        Some(oci::MEDIA_TYPE_MANIFEST)
    );
    assert_eq!(manifest.config.media_type, oci::MEDIA_TYPE_CONFIG);
    assert_eq!(
        manifest.config.digest,
        oci::sha256_digest(&image.config_json)
    );
    assert_eq!(manifest.config.size, image.config_json.len() as u64);
    assert_eq!(manifest.layers.len(), 1);
    assert_eq!(manifest.layers[0].media_type, oci::MEDIA_TYPE_LAYER_GZIP);
    assert_eq!(
        manifest.layers[0].digest,
        oci::sha256_digest(&image.layer_gz)
    );
    assert_eq!(manifest.layers[0].size, image.layer_gz.len() as u64);

    let config: ImageConfig = serde_json::from_slice(&image.config_json).unwrap();
    assert_eq!(config.os, "linux");
    assert_eq!(config.architecture, oci::host_architecture());
    assert_eq!(
        config.config.entrypoint,
        Some(vec!["/usr/bin/tool".to_string()])
    );
    assert_eq!(config.config.cmd, Some(vec!["--flag".to_string()]));
    assert_eq!(config.config.env, vec!["PATH=/usr/bin:/bin".to_string()]);
    assert_eq!(config.config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(config.rootfs.kind, "layers");
    // diff_ids are the digests of the *uncompressed* layer.
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&image.layer_gz[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(config.rootfs.diff_ids, vec![oci::sha256_digest(&tar_bytes)]);
    assert_eq!(image.diff_id, config.rootfs.diff_ids[0]);

    // The raw config uses the spec's capitalized keys.
    let raw: serde_json::Value = serde_json::from_slice(&image.config_json).unwrap();
    for key in ["Entrypoint", "Cmd", "Env", "WorkingDir"] {
        assert!(
            raw["config"].get(key).is_some(),
            "config.{key} missing: {raw}"
        );
    }
    assert!(raw["rootfs"].get("diff_ids").is_some());
}

#[test]
fn layer_holds_files_modes_symlinks_and_parents_with_fixed_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let image = sample(dir.path()).build().unwrap();
    let entries = layer_entries(&image.layer_gz);
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "bin/",
            "bin/t",
            "etc/",
            "etc/motd",
            "tmp/",
            "usr/",
            "usr/bin/",
            "usr/bin/tool"
        ]
    );
    let by_path: BTreeMap<&str, &LayerEntry> = entries.iter().map(|e| (e.0.as_str(), e)).collect();
    let tool = by_path["usr/bin/tool"];
    assert_eq!(tool.1, tar::EntryType::Regular);
    assert_eq!(tool.2, 0o755);
    assert_eq!(tool.7, b"#!/bin/sh\necho tool\n");
    let motd = by_path["etc/motd"];
    assert_eq!((motd.2, motd.7.as_slice()), (0o600, &b"hello\n"[..]));
    let link = by_path["bin/t"];
    assert_eq!(link.1, tar::EntryType::Symlink);
    assert_eq!(link.6.as_deref(), Some("../usr/bin/tool"));
    assert_eq!(by_path["tmp/"].2, 0o1777);
    assert_eq!(by_path["usr/bin/"].1, tar::EntryType::Directory);
    assert_eq!(by_path["usr/bin/"].2, 0o755, "implied parents are 0755");
    for e in &entries {
        assert_eq!((e.3, e.4, e.5), (MTIME, 0, 0), "{} metadata", e.0);
    }
}

#[test]
fn archive_is_an_oci_image_layout() {
    let dir = tempfile::tempdir().unwrap();
    let image = sample(dir.path()).build().unwrap();
    let bytes = image.archive_bytes().unwrap();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut files = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        files.insert(e.path().unwrap().to_string_lossy().into_owned(), content);
    }
    assert_eq!(files["oci-layout"], oci::OCI_LAYOUT.as_bytes());
    assert_eq!(files["index.json"], image.index_json);
    for (digest, blob) in image.blobs() {
        let path = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
        assert_eq!(files[&path], blob, "{path}");
    }
    let path = dir.path().join("image.tar");
    image.write_to(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let info = crate::archive::inspect(&path).unwrap();
    assert_eq!(info.format, crate::ArchiveFormat::Oci);
    assert_eq!(info.names, vec!["localhost/kadm-test/sample:1".to_string()]);
}

#[test]
fn bad_definitions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let relative = ImageBuilder::new("x/y:1").bytes("etc/a", "", 0o644).build();
    assert!(
        relative
            .unwrap_err()
            .to_string()
            .contains("not an absolute image path")
    );
    let dotdot = ImageBuilder::new("x/y:1")
        .bytes("/a/../b", "", 0o644)
        .build();
    assert!(
        dotdot
            .unwrap_err()
            .to_string()
            .contains("not a clean absolute path")
    );
    let twice = ImageBuilder::new("x/y:1")
        .bytes("/a", "", 0o644)
        .symlink("/a", "b")
        .build();
    assert!(twice.unwrap_err().to_string().contains("listed twice"));
    let under_file = ImageBuilder::new("x/y:1")
        .bytes("/a", "", 0o644)
        .bytes("/a/b", "", 0o644)
        .build();
    assert!(under_file.unwrap_err().to_string().contains("is below it"));
    let untagged = ImageBuilder::new("localhost:5000/y").build();
    assert!(untagged.unwrap_err().to_string().contains("no tag"));
    let missing = ImageBuilder::new("x/y:1")
        .file(dir.path().join("nope"), "/a", 0o644)
        .build();
    assert!(missing.unwrap_err().to_string().contains("nope"));
}

#[test]
fn tag_is_the_part_after_the_last_colon_of_the_last_component() {
    assert_eq!(split_tag("localhost:5000/kadm/pause:3.9"), Some("3.9"));
    assert_eq!(split_tag("localhost:5000/kadm/pause"), None);
    assert_eq!(split_tag("busybox:1"), Some("1"));
}
