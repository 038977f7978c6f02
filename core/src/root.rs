//! Where isola keeps its state (ISOLA_ROOT) and the fixed layout beneath it,
//! so that every module agrees on one path for each thing.

use std::path::{Path, PathBuf};

/// The default state directory for root, like /var/lib/containers for podman.
pub const DEFAULT_ROOT: &str = "/var/lib/isola";

/// One ISOLA_ROOT. Paths are computed, never cached, so a `Root` is cheap.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `blobs/sha256/<hex>`: manifests, configs and compressed layers.
    pub fn blobs(&self) -> PathBuf {
        self.dir.join("blobs/sha256")
    }

    pub fn blob(&self, hex: &str) -> PathBuf {
        self.blobs().join(hex)
    }

    /// `layers/<diff-id hex>/`: each layer unpacked once.
    pub fn layers(&self) -> PathBuf {
        self.dir.join("layers")
    }

    pub fn layer_dir(&self, diff_hex: &str) -> PathBuf {
        self.layers().join(diff_hex)
    }

    /// Facts about an unpacked layer, beside its directory so the directory
    /// itself holds only the layer's files (it is mounted as an overlay lower).
    pub fn layer_meta(&self, diff_hex: &str) -> PathBuf {
        self.layers().join(format!("{diff_hex}.json"))
    }

    pub fn images_json(&self) -> PathBuf {
        self.dir.join("images.json")
    }

    /// Taken shared by writers that add to the store, exclusive by garbage
    /// collection, so a layer is never collected while an import relies on it.
    pub fn store_lock(&self) -> PathBuf {
        self.dir.join("store.lock")
    }

    /// Serialises read-modify-write of images.json.
    pub fn images_lock(&self) -> PathBuf {
        self.dir.join("images.lock")
    }

    /// `volumes/<name>/`: named volumes (ext4 image, facts, use lock).
    pub fn volumes(&self) -> PathBuf {
        self.dir.join("volumes")
    }

    /// `kernels/<name>`: guest kernels, and `kernels/default` naming the one
    /// the VM backend boots when no other is given.
    pub fn kernels(&self) -> PathBuf {
        self.dir.join("kernels")
    }

    /// Serialises changes to `kernels/` (an add and the default it may set).
    pub fn kernels_lock(&self) -> PathBuf {
        self.dir.join("kernels.lock")
    }

    /// Staging area on the same filesystem, so staged work lands by rename.
    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// `build-cache/<key hex>.json`: the layer a build step made, kept as
    /// long as an image built with it is.
    pub fn build_cache(&self) -> PathBuf {
        self.dir.join("build-cache")
    }

    /// The VM backend's guest root filesystems, `<image digest hex>-<id>.cpio`.
    pub fn vm_rootfs(&self) -> PathBuf {
        self.dir.join("vm/rootfs")
    }
}
