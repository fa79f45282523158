//! Real containerd with kadm's images: the private fixture, the pause and busybox images
//! built from the host's busybox, `kadm image load`, and a local registry.

use std::path::Path;

use kadm_bootstrap::containerd::RegistryHost;
use kadm_e2e::containerd::{TestContainerd, mounts_below, shim_pids};

/// A container from the test image runs under runc and prints what it is told.
#[test]
fn test_image_runs_a_container_under_runc() -> anyhow::Result<()> {
    let ctd = TestContainerd::start()?;
    let images = ctd.images()?;
    assert!(images.iter().any(|i| i == ctd.test_image()), "{images:?}");
    assert!(images.iter().any(|i| i == ctd.pause_image()), "{images:?}");
    let out = ctd.run(ctd.test_image(), "hello-test", &["echo", "hello"])?;
    assert_eq!(out.trim(), "hello");
    Ok(())
}

/// Starting and stopping twice leaves no shim, mount or directory of either instance.
#[test]
fn start_stop_twice_leaves_no_shims_or_mounts() -> anyhow::Result<()> {
    for round in 0..2 {
        let ctd = TestContainerd::start()?;
        // A long-running task whose shim and rootfs mount must be cleaned up by the fixture.
        ctd.ctr(&[
            "run",
            "-d",
            "--null-io",
            ctd.test_image(),
            &format!("sleeper-{round}"),
            "sleep",
            "600",
        ])?;
        let socket = ctd.socket().to_path_buf();
        let dir = ctd.dir().to_path_buf();
        let tasks = ctd.ctr(&["tasks", "ls"])?;
        let sleeper: u32 = tasks
            .lines()
            .find(|l| l.starts_with(&format!("sleeper-{round}")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no sleeper pid in {tasks}"));
        assert!(!shim_pids(&socket).is_empty(), "the sleeper has a shim");
        assert!(
            !mounts_below(&dir).is_empty(),
            "the sleeper's rootfs is mounted"
        );
        ctd.stop();
        assert!(
            !alive(sleeper),
            "the sleeper (pid {sleeper}) outlived the fixture"
        );
        assert_eq!(
            shim_pids(&socket),
            Vec::<u32>::new(),
            "shims left in round {round}"
        );
        assert_eq!(mounts_below(&dir), Vec::<std::path::PathBuf>::new());
        assert!(!Path::new(&dir).exists(), "{} left behind", dir.display());
    }
    Ok(())
}

/// Whether `pid` exists and is not a zombie waiting for its (re)parent to reap it.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Runs the workspace's `kadm` binary; returns (success, stdout, stderr).
fn kadm(args: &[&std::ffi::OsStr]) -> anyhow::Result<(bool, String, String)> {
    let bin = kadm_e2e::cluster::workspace_binary("kadm", "KADM_BIN")?;
    let out = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn image_load(
    ctd: &TestContainerd,
    file: &Path,
    extra: &[&str],
) -> anyhow::Result<(bool, String, String)> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "image".as_ref(),
        "load".as_ref(),
        file.as_os_str(),
        "--containerd-socket".as_ref(),
        ctd.socket().as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    kadm(&args)
}

/// A small image with a name no other test uses.
fn fresh_image(name: &str) -> anyhow::Result<kadm_images::OciImage> {
    Ok(kadm_images::ImageBuilder::new(name)
        .file(kadm_images::BUSYBOX_PATH, "/bin/busybox", 0o755)
        .symlink("/bin/sh", "busybox")
        .symlink("/bin/echo", "busybox")
        .bytes("/etc/motd", format!("{name}\n"), 0o644)
        .env("PATH", "/bin")
        .cmd(["sh"])
        .build()?)
}

fn content_digests(ctd: &TestContainerd) -> anyhow::Result<Vec<String>> {
    let mut d: Vec<String> = ctd
        .ctr(&["content", "ls", "-q"])?
        .lines()
        .map(str::to_string)
        .collect();
    d.sort();
    Ok(d)
}

#[test]
fn image_load_imports_oci_gzip_and_docker_archives_idempotently() -> anyhow::Result<()> {
    let ctd = TestContainerd::start_with(kadm_e2e::containerd::Options {
        without_test_image: true,
        ..Default::default()
    })?;
    let name = "localhost/kadm-test/loaded:1";
    let image = fresh_image(name)?;
    let file = ctd.dir().join("loaded.tar");
    image.write_to(&file)?;

    let (ok, stdout, stderr) = image_load(&ctd, &file, &[])?;
    assert!(ok, "kadm image load failed: {stderr}");
    assert!(
        stdout.contains(&format!("loaded {name} (OCI image layout)")),
        "{stdout}"
    );
    let listed = ctd.ctr(&["images", "ls"])?;
    let line = listed
        .lines()
        .find(|l| l.starts_with(name))
        .expect("image listed");
    assert!(line.contains(&image.manifest_digest), "{line}");

    // Again: the same images with the same digests. (The content store may briefly hold
    // the discarded index blob until containerd's GC runs, so it is not compared.)
    let (ok, _, stderr) = image_load(&ctd, &file, &[])?;
    assert!(ok, "second load failed: {stderr}");
    assert_eq!(ctd.ctr(&["images", "ls"])?, listed);

    // The loaded image runs.
    let out = ctd.run(name, "loaded-run", &["echo", "loaded"])?;
    assert_eq!(out.trim(), "loaded");

    // gzip'd archives are decompressed for containerd 1.6.
    let gz_name = "localhost/kadm-test/loaded-gz:1";
    let gz_file = ctd.dir().join("loaded.tar.gz");
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz_file)?,
            flate2::Compression::fast(),
        );
        enc.write_all(&fresh_image(gz_name)?.archive_bytes()?)?;
        enc.finish()?;
    }
    let (ok, stdout, stderr) = image_load(&ctd, &gz_file, &[])?;
    assert!(ok, "gzip load failed: {stderr}");
    assert!(stdout.contains(gz_name), "{stdout}");

    // A `docker save` archive: manifest.json, config and uncompressed layer tar.
    let docker_name = "localhost/kadm-test/docker-saved:1";
    let docker_file = ctd.dir().join("docker.tar");
    write_docker_archive(&fresh_image(docker_name)?, docker_name, &docker_file)?;
    let (ok, stdout, stderr) = image_load(&ctd, &docker_file, &[])?;
    assert!(ok, "docker archive load failed: {stderr}");
    assert!(
        stdout.contains(&format!("loaded {docker_name} (docker archive)")),
        "{stdout}"
    );
    let out = ctd.run(docker_name, "docker-run", &["echo", "docker"])?;
    assert_eq!(out.trim(), "docker");
    Ok(())
}

/// Re-packs an image the way `docker save` lays it out.
fn write_docker_archive(
    image: &kadm_images::OciImage,
    name: &str,
    path: &Path,
) -> anyhow::Result<()> {
    use std::io::Read;
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(&image.layer_gz[..]).read_to_end(&mut layer)?;
    let config_hex = image.config_digest.trim_start_matches("sha256:");
    let layer_dir = image.diff_id.trim_start_matches("sha256:");
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [name],
        "Layers": [format!("{layer_dir}/layer.tar")],
    }]);
    let mut b = tar::Builder::new(std::fs::File::create(path)?);
    for (file, bytes) in [
        ("manifest.json".to_string(), serde_json::to_vec(&manifest)?),
        (format!("{config_hex}.json"), image.config_json.clone()),
        (format!("{layer_dir}/layer.tar"), layer),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &file, &bytes[..])?;
    }
    b.into_inner()?;
    Ok(())
}

#[test]
fn corrupt_or_foreign_archives_are_refused_and_import_nothing() -> anyhow::Result<()> {
    let ctd = TestContainerd::start_with(kadm_e2e::containerd::Options {
        without_test_image: true,
        ..Default::default()
    })?;
    let image = fresh_image("localhost/kadm-test/corrupt:1")?;
    let good = image.archive_bytes()?;
    let images = ctd.images()?;
    let content = content_digests(&ctd)?;

    // One flipped byte inside the layer blob (its data starts after the 512-byte header).
    let layer_hex = image.layer_digest.trim_start_matches("sha256:");
    let mut corrupt = good.clone();
    let at = find(&corrupt, format!("blobs/sha256/{layer_hex}").as_bytes()).expect("layer entry")
        + 512
        + 100;
    corrupt[at] ^= 0xff;
    let corrupt_file = ctd.dir().join("corrupt.tar");
    std::fs::write(&corrupt_file, &corrupt)?;
    let (ok, _, stderr) = image_load(&ctd, &corrupt_file, &[])?;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("blob blobs/sha256/{layer_hex} is corrupt")),
        "{stderr}"
    );

    let truncated = ctd.dir().join("truncated.tar");
    std::fs::write(&truncated, &good[..good.len() / 2])?;
    let (ok, _, stderr) = image_load(&ctd, &truncated, &[])?;
    assert!(!ok);
    assert!(stderr.contains("the archive is truncated"), "{stderr}");

    let text = ctd.dir().join("notes.txt");
    std::fs::write(&text, "not an image\n".repeat(100))?;
    let (ok, _, stderr) = image_load(&ctd, &text, &[])?;
    assert!(!ok);
    assert!(stderr.contains("error: load"), "{stderr}");

    let (ok, _, stderr) = image_load(&ctd, &ctd.dir().join("missing.tar"), &[])?;
    assert!(!ok);
    assert!(
        stderr.contains("missing.tar") && stderr.contains("No such file"),
        "{stderr}"
    );

    assert_eq!(ctd.images()?, images, "nothing was imported");
    assert_eq!(content_digests(&ctd)?, content, "no content was written");
    Ok(())
}

#[test]
fn image_load_on_another_node_or_without_containerd_says_why() -> anyhow::Result<()> {
    let ctd = TestContainerd::start_with(kadm_e2e::containerd::Options {
        without_test_image: true,
        ..Default::default()
    })?;
    let file = ctd.dir().join("node.tar");
    fresh_image("localhost/kadm-test/node:1")?.write_to(&file)?;

    let (ok, _, stderr) = image_load(&ctd, &file, &["--node", "some-other-node"])?;
    assert!(!ok);
    assert!(
        stderr.contains("\"some-other-node\" is not this host"),
        "{stderr}"
    );
    assert!(stderr.contains("kadm join"), "{stderr}");

    let this = kadm_bootstrap::host::node_name();
    let (ok, stdout, stderr) = image_load(&ctd, &file, &["--node", &this])?;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("localhost/kadm-test/node:1"), "{stdout}");

    let (ok, _, stderr) = kadm(&[
        "image".as_ref(),
        "load".as_ref(),
        file.as_os_str(),
        "--containerd-socket".as_ref(),
        ctd.dir().join("nothing.sock").as_os_str(),
    ])?;
    assert!(!ok);
    assert!(
        stderr.contains("containerd is not running here"),
        "{stderr}"
    );
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn registry_push_then_pull_directly_and_through_a_kadm_mirror_config() -> anyhow::Result<()> {
    let registry = kadm_e2e::registry::TestRegistry::start()?;
    // A registry name that answers nowhere (a free loopback port) whose only endpoint,
    // by kadm's hosts.toml, is the test registry: a pull by that name works only through
    // the mirror configuration, and a broken configuration cannot reach anything else.
    let nowhere = format!("127.0.0.1:{}", kadm_e2e::ports::free_port()?);
    let ctd = TestContainerd::start_with(kadm_e2e::containerd::Options {
        insecure_registries: vec![registry.host()],
        registries: vec![RegistryHost {
            registry: nowhere.clone(),
            endpoints: vec![format!("http://{}", registry.host())],
            skip_verify: false,
        }],
        without_test_image: true,
    })?;
    let (_, test_image) = kadm_e2e::containerd::builtin_images()?;
    let reference = registry
        .push(test_image, "kadm-test/busybox", "pushed")
        .await?;
    let (status, body) = registry.manifest("kadm-test/busybox", "pushed").await?;
    assert_eq!(status, http::StatusCode::OK, "{body}");
    assert!(body.contains(&test_image.layer_digest), "{body}");
    // A second push sends no blob again and is accepted.
    registry
        .push(test_image, "kadm-test/busybox", "pushed")
        .await?;

    ctd.ctr(&["images", "pull", "--plain-http", &reference])?;
    let out = ctd.run(&reference, "pulled-run", &["echo", "hello"])?;
    assert_eq!(out.trim(), "hello");

    let mirrored = format!("{nowhere}/kadm-test/busybox:pushed");
    let hosts_dir = ctd
        .config()
        .registry_config_dir
        .to_string_lossy()
        .into_owned();
    let direct = ctd.ctr(&["images", "pull", "--plain-http", &mirrored]);
    assert!(direct.is_err(), "{nowhere} itself serves nothing");
    ctd.ctr(&["images", "pull", "--hosts-dir", &hosts_dir, &mirrored])?;
    let listed = ctd.ctr(&["images", "ls"])?;
    let line = listed
        .lines()
        .find(|l| l.starts_with(&mirrored))
        .expect("mirrored image listed");
    assert!(line.contains(&test_image.manifest_digest), "{line}");
    Ok(())
}
