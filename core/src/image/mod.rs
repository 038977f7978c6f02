//! The image store: content-addressed blobs, layers unpacked once by diff-id
//! and shared by every image that has them, and a catalog of names.

pub(crate) mod candidate;
mod catalog;
pub mod default_image;
pub mod derive;
pub mod digest;
mod docker_archive;
mod error;
pub mod flatten;
mod gc;
mod import;
pub mod media;
pub(crate) mod oci_layout;
pub mod reference;
pub mod save;
mod source;
pub(crate) mod stage;
pub mod unpack;
pub mod usage;

pub use candidate::Platform;
pub use catalog::Catalog;
pub use error::ImageError;
pub use import::{ImportOptions, Imported};
pub use reference::Reference;
pub use stage::LayerMeta;

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{Digest, ImageConfiguration, ImageManifest};

use crate::Root;
use error::io_ctx;

pub struct ImageStore {
    root: Root,
}

/// One stored image, with everything read from its blobs.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: Digest,
    pub names: Vec<String>,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
}

/// One layer of an image, as stored.
#[derive(Debug, Clone)]
pub struct Layer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub compressed_size: u64,
    pub meta: Option<LayerMeta>,
}

impl ImageStore {
    /// Open (creating if need be) the store under `root`.
    pub fn open(root: Root) -> Result<ImageStore, ImageError> {
        // A stat each: cheaper than mkdir + stat on every `isola run`.
        for dir in [root.blobs(), root.layers(), root.tmp()] {
            if dir.is_dir() {
                continue;
            }
            fs::create_dir_all(&dir).map_err(io_ctx(format!(
                "creating {} (set --root or ISOLA_ROOT to a writable directory)",
                dir.display()
            )))?;
        }
        Ok(ImageStore { root })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn import(&self, path: &Path, opts: &ImportOptions) -> Result<Imported, ImageError> {
        let imported = import::import(self, path, opts)?;
        self.collect_orphan(&imported.orphaned)?;
        Ok(imported)
    }

    /// Collect an image a name was moved away from. Must run with no store
    /// lock held by this process (it takes the lock exclusively).
    pub(crate) fn collect_orphan(&self, orphaned: &Option<Digest>) -> Result<(), ImageError> {
        if let Some(d) = orphaned {
            tracing::info!(image = %d, "collecting the image its name was moved away from");
            gc::prune(self)?;
        }
        Ok(())
    }

    pub fn layer_meta(&self, diff_hex: &str) -> Option<LayerMeta> {
        let bytes = fs::read(self.root.layer_meta(diff_hex)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Find the image a user means: a `name[:tag]`, or an image ID (the
    /// manifest digest, whole or a prefix of at least 4 hex digits).
    pub fn resolve(&self, given: &str) -> Result<Digest, ImageError> {
        self.resolve_in(&Catalog::load(&self.root)?, given)
    }

    fn resolve_in(&self, catalog: &Catalog, given: &str) -> Result<Digest, ImageError> {
        // A pull by digest is stored as `name@sha256:...`; and `name@digest`
        // finds a stored image by its ID or the digest it was pulled by.
        if let Some(e) = catalog.images.get(given) {
            return Ok(e.manifest.clone());
        }
        if let Some(d) = given
            .split_once('@')
            .and_then(|(_, d)| digest::parse(d).ok())
        {
            return catalog
                .images
                .values()
                .find(|e| e.manifest == d || e.repo_digest.as_ref() == Some(&d))
                .map(|e| e.manifest.clone())
                .ok_or_else(|| ImageError::NotFound(given.to_string()));
        }
        let parsed = Reference::parse(given);
        if let Ok(r) = &parsed {
            if let Some(e) = catalog.images.get(&r.to_string()) {
                return Ok(e.manifest.clone());
            }
        }
        let hex = given.strip_prefix("sha256:").unwrap_or(given);
        if hex.len() >= 4
            && hex.len() <= 64
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            let mut found: Vec<Digest> = catalog
                .images
                .values()
                .map(|e| e.manifest.clone())
                .filter(|d| d.digest().starts_with(hex))
                .collect();
            found.sort_by(|a, b| a.digest().cmp(b.digest()));
            found.dedup();
            match found.len() {
                1 => return Ok(found.remove(0)),
                0 => {}
                _ => {
                    return Err(ImageError::Ambiguous {
                        given: given.to_string(),
                        matches: found
                            .iter()
                            .map(|d| digest::short(d).to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
        match parsed {
            Err(why) if !given.chars().all(|c| c.is_ascii_hexdigit()) => {
                Err(ImageError::BadReference(why))
            }
            _ => Err(ImageError::NotFound(given.to_string())),
        }
    }

    pub fn get(&self, given: &str) -> Result<Image, ImageError> {
        let catalog = Catalog::load(&self.root)?;
        let digest = self.resolve_in(&catalog, given)?;
        self.load(&digest, &catalog)
    }

    /// Every stored image, each once, ordered by its first name.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let catalog = Catalog::load(&self.root)?;
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for e in catalog.images.values() {
            if seen.insert(e.manifest.to_string()) {
                out.push(self.load(&e.manifest, &catalog)?);
            }
        }
        Ok(out)
    }

    fn load(&self, digest: &Digest, catalog: &Catalog) -> Result<Image, ImageError> {
        let corrupt = |what: String| {
            ImageError::Invalid {
            image: digest.to_string(),
            what: format!("{what}; the store is damaged: remove the image with `isola rmi` and import it again"),
        }
        };
        let raw = fs::read(self.root.blob(digest.digest()))
            .map_err(|e| corrupt(format!("its manifest cannot be read ({e})")))?;
        let manifest: ImageManifest = serde_json::from_slice(&raw)
            .map_err(|e| corrupt(format!("its manifest is not valid ({e})")))?;
        let config_digest = manifest.config().digest().clone();
        let raw = fs::read(self.root.blob(config_digest.digest()))
            .map_err(|e| corrupt(format!("its config cannot be read ({e})")))?;
        let config: ImageConfiguration = serde_json::from_slice(&raw)
            .map_err(|e| corrupt(format!("its config is not valid ({e})")))?;
        Ok(Image {
            digest: digest.clone(),
            names: catalog.names_of(digest),
            manifest,
            config_digest,
            config,
        })
    }

    /// The image's layers, bottom first.
    pub fn layers(&self, image: &Image) -> Vec<Layer> {
        image
            .manifest
            .layers()
            .iter()
            .zip(image.config.rootfs().diff_ids())
            .map(|(d, diff)| {
                let diff_id = digest::parse(diff).unwrap_or_else(|_| d.digest().clone());
                Layer {
                    digest: d.digest().clone(),
                    meta: self.layer_meta(diff_id.digest()),
                    diff_id,
                    media_type: d.media_type().to_string(),
                    compressed_size: d.size(),
                }
            })
            .collect()
    }

    /// The unpacked layer directories of an image, bottom first: the
    /// overlay lowers of a container, the input of [`flatten::flatten`].
    /// On every sandbox's start-up path: paths only, no layer facts read.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .config
            .rootfs()
            .diff_ids()
            .iter()
            .filter_map(|d| digest::parse(d).ok())
            .map(|d| self.root.layer_dir(d.digest()))
            .collect()
    }

    /// The digest a name's image was pulled by, if it came from a registry.
    pub fn repo_digest(&self, name: &str) -> Option<Digest> {
        Catalog::load(&self.root)
            .ok()?
            .images
            .get(name)?
            .repo_digest
            .clone()
    }

    /// Give the image `given` resolves to one more name.
    pub fn tag(&self, given: &str, new_name: &str) -> Result<Reference, ImageError> {
        let digest = self.resolve(given)?;
        let name = Reference::parse(new_name).map_err(ImageError::BadReference)?;
        let orphaned = Catalog::set_name(&self.root, &name.to_string(), &digest)?;
        self.collect_orphan(&orphaned)?;
        Ok(name)
    }

    /// Remove a name (or, by ID, an image); see [`gc`].
    pub fn remove(&self, given: &str, force: bool) -> Result<gc::Removed, ImageError> {
        gc::remove(self, given, force)
    }

    /// Collect what no named image uses: blobs, layers, build cache entries
    /// of builds whose images are gone, staging of imports that died.
    pub fn prune(&self) -> Result<gc::Removed, ImageError> {
        gc::prune(self)
    }

    /// Write the image's root filesystem, whiteouts applied, into `dest`.
    pub fn export(&self, image: &Image, dest: &Path) -> Result<(), ImageError> {
        flatten::flatten(&self.layer_dirs(image), dest).map_err(io_ctx(format!(
            "exporting {} to {}",
            image.digest,
            dest.display()
        )))
    }
}

pub use gc::Removed;
