use std::io::Write;

use super::*;
use crate::builder::ImageBuilder;

fn image() -> crate::OciImage {
    ImageBuilder::new("localhost/kadm-test/tiny:1")
        .bytes("/hello", "hello\n", 0o644)
        .cmd(["/hello"])
        .build()
        .unwrap()
}

/// Rewrites an OCI archive, letting `edit` change or drop entries.
fn rewrite(bytes: &[u8], edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(bytes);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        if let Some(content) = edit(&path, content) {
            let mut h = e.header().clone();
            h.set_size(content.len() as u64);
            out.append_data(&mut h, &path, &content[..]).unwrap();
        }
    }
    out.into_inner().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn reason(path: &Path) -> String {
    inspect(path).unwrap_err().to_string()
}

#[test]
fn a_built_archive_and_its_gzip_form_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = image().archive_bytes().unwrap();
    let plain = inspect(&write(dir.path(), "a.tar", &bytes)).unwrap();
    assert_eq!(
        plain,
        ArchiveInfo {
            format: ArchiveFormat::Oci,
            gzip: false,
            names: vec!["localhost/kadm-test/tiny:1".into()],
            images: 1,
        }
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    let info = inspect(&write(dir.path(), "a.tar.gz", &gz)).unwrap();
    assert!(info.gzip);
    assert_eq!(info.names, plain.names);
}

#[test]
fn truncated_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = image().archive_bytes().unwrap();
    // Cut inside the last blob's content.
    let p = write(dir.path(), "cut.tar", &bytes[..bytes.len() - 1500]);
    let msg = reason(&p);
    assert!(
        msg.contains("the archive is truncated: blobs/sha256/"),
        "{msg}"
    );
    // Cut inside a header: no tar entry can be read there.
    let p = write(dir.path(), "cut2.tar", &bytes[..700]);
    let msg = reason(&p);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn garbage_and_empty_files_are_not_tar() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "g.tar", &[0x42u8; 4096]);
    assert!(
        reason(&garbage).contains("not a readable tar archive"),
        "{}",
        reason(&garbage)
    );
    let empty = write(dir.path(), "e.tar", b"");
    assert!(
        reason(&empty).contains("empty archive"),
        "{}",
        reason(&empty)
    );
}

#[test]
fn corrupt_blob_content_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let layer_hex = img.layer_digest.trim_start_matches("sha256:").to_string();
    let bytes = rewrite(&img.archive_bytes().unwrap(), |path, mut content| {
        if path.ends_with(&layer_hex) {
            content[20] ^= 0xff;
        }
        Some(content)
    });
    let msg = reason(&write(dir.path(), "c.tar", &bytes));
    assert!(
        msg.contains(&format!("blob blobs/sha256/{layer_hex} is corrupt")),
        "{msg}"
    );
}

#[test]
fn missing_layer_or_manifest_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let img = image();
    let layer_hex = img.layer_digest.trim_start_matches("sha256:").to_string();
    let no_layer = rewrite(&img.archive_bytes().unwrap(), |path, c| {
        (!path.ends_with(&layer_hex)).then_some(c)
    });
    let msg = reason(&write(dir.path(), "l.tar", &no_layer));
    assert!(
        msg.contains(&format!("refers to blob {}", img.layer_digest)),
        "{msg}"
    );

    let manifest_hex = img
        .manifest_digest
        .trim_start_matches("sha256:")
        .to_string();
    let no_manifest = rewrite(&img.archive_bytes().unwrap(), |path, c| {
        (!path.ends_with(&manifest_hex)).then_some(c)
    });
    let msg = reason(&write(dir.path(), "m.tar", &no_manifest));
    assert!(msg.contains("index.json refers to"), "{msg}");
}

#[test]
fn archive_without_image_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "notes.txt", &b"abc"[..]).unwrap();
    let p = write(dir.path(), "n.tar", &b.into_inner().unwrap());
    assert!(reason(&p).contains("no index.json (OCI image layout) or manifest.json"));
}

#[test]
fn docker_save_archive_is_accepted_and_checked() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_hex = hex::encode(sha2::Sha256::digest(config));
    let build = |config_bytes: &[u8], with_layer: bool| {
        let manifest = format!(
            r#"[{{"Config":"{config_hex}.json","RepoTags":["example.test/app:2"],"Layers":["abc/layer.tar"]}}]"#
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("manifest.json".into(), manifest.into_bytes()),
            (format!("{config_hex}.json"), config_bytes.to_vec()),
        ];
        if with_layer {
            files.push(("abc/layer.tar".into(), vec![0u8; 1024]));
        }
        for (name, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, &name, &content[..]).unwrap();
        }
        b.into_inner().unwrap()
    };
    let ok = inspect(&write(dir.path(), "d.tar", &build(config, true))).unwrap();
    assert_eq!(ok.format, ArchiveFormat::Docker);
    assert_eq!(ok.names, vec!["example.test/app:2".to_string()]);

    let msg = reason(&write(dir.path(), "d2.tar", &build(config, false)));
    assert!(msg.contains("refers to abc/layer.tar"), "{msg}");
    let msg = reason(&write(dir.path(), "d3.tar", &build(b"{}", true)));
    assert!(msg.contains("is corrupt"), "{msg}");
}
