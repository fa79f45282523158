//! OCI images that kadm makes itself, and the archives operators hand it.
//!
//! A cluster must never pull from the internet to start: the pod sandbox ("pause") image
//! and the test images are built here from files already on the host (Debian's
//! `busybox-static`) as OCI image-layout tarballs, which `ctr images import` loads into
//! containerd. Building is deterministic — fixed mtimes, owners and ordering, one gzip
//! configuration — so the same inputs always give the same digests, and re-importing an
//! unchanged image is a no-op for containerd.
//!
//! The crate does no network and no process I/O: it reads host files and writes bytes.
//! Talking to containerd is `kadm-bootstrap`'s job (`bootstrap::containerd`).

pub mod archive;
pub mod builder;
pub mod builtin;
mod error;
pub mod oci;

pub use archive::{ArchiveFormat, ArchiveInfo, inspect};
pub use builder::{Entry, ImageBuilder, OciImage};
pub use builtin::{
    BUSYBOX_PATH, TEST_BUSYBOX_IMAGE, busybox_test_image, pause_image, pause_image_name,
};
pub use error::{Error, Result};
