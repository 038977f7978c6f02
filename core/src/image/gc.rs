//! `isola rmi`: remove names, then collect every blob and layer that no
//! remaining image uses. Runs under the exclusive store lock, so no import
//! is between staging and landing while things disappear.

use std::collections::HashSet;
use std::fs;

use oci_spec::image::Digest;

use super::catalog::Catalog;
use super::error::{io_ctx, ImageError};
use super::{ImageStore, Reference};
use crate::fsutil::{disk_usage, remove_any, Lock};

#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub untagged: Vec<String>,
    /// The image itself, when its last name went.
    pub deleted: Option<Digest>,
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub bytes_freed: u64,
}

pub fn remove(store: &ImageStore, given: &str, force: bool) -> Result<Removed, ImageError> {
    let root = store.root();
    let _lock = Lock::exclusive(&root.store_lock()).map_err(io_ctx("locking the image store"))?;
    let digest = store.resolve(given)?;
    // A name as stored: `name:tag`, or `name@digest` for a pull by digest.
    let by_name = Reference::parse(given)
        .ok()
        .map(|r| r.to_string())
        .or_else(|| given.contains('@').then(|| given.to_string()))
        .filter(|n| {
            Catalog::load(root)
                .map(|c| c.images.contains_key(n))
                .unwrap_or(false)
        });

    let untagged = Catalog::update(root, |c| {
        let names = c.names_of(&digest);
        let remove: Vec<String> = match &by_name {
            Some(n) => vec![n.clone()],
            None if names.len() > 1 && !force => {
                return Err(ImageError::MultipleNames {
                    given: given.to_string(),
                    others: names.join(", "),
                })
            }
            None => names,
        };
        for n in &remove {
            c.images.remove(n);
        }
        Ok(remove)
    })?;
    let catalog = Catalog::load(root)?;
    let deleted = catalog.names_of(&digest).is_empty().then(|| digest.clone());
    let mut out = Removed {
        untagged,
        deleted,
        ..Removed::default()
    };
    if out.deleted.is_some() {
        collect(store, &catalog, &mut out)?;
    }
    Ok(out)
}

/// Collect whatever no named image uses (after a name moved to another image).
pub fn prune(store: &ImageStore) -> Result<Removed, ImageError> {
    let _lock =
        Lock::exclusive(&store.root().store_lock()).map_err(io_ctx("locking the image store"))?;
    let mut out = Removed::default();
    collect(store, &Catalog::load(store.root())?, &mut out)?;
    Ok(out)
}

/// The VM backend's cached guest root filesystems of images that are gone,
/// and half-built ones (`.building-*`) an hour old: a build in progress
/// renames its file within seconds.
fn collect_guest_rootfs(
    root: &crate::Root,
    live_images: &HashSet<String>,
    out: &mut Removed,
) -> Result<(), ImageError> {
    let Ok(entries) = fs::read_dir(root.vm_rootfs()) else {
        return Ok(());
    };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = if name.starts_with(".building-") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < hour_ago)
        } else {
            let hex = name.split('-').next().unwrap_or_default();
            !live_images.contains(hex)
        };
        if stale {
            out.bytes_freed += disk_usage(&entry.path()).unwrap_or(0);
            remove_any(&entry.path())
                .map_err(io_ctx(format!("removing the guest root filesystem {name}")))?;
        }
    }
    Ok(())
}

/// Delete blobs and layers the catalog no longer reaches, stale staging
/// left by an import that died, and guest root filesystems of gone images.
fn collect(store: &ImageStore, catalog: &Catalog, out: &mut Removed) -> Result<(), ImageError> {
    let root = store.root();
    let mut live_blobs = HashSet::new();
    let mut live_layers = HashSet::new();
    let mut live_images = HashSet::new();
    for entry in catalog.images.values() {
        let image = store.load(&entry.manifest, catalog)?;
        live_images.insert(image.digest.digest().to_string());
        live_blobs.insert(image.digest.digest().to_string());
        live_blobs.insert(image.config_digest.digest().to_string());
        for layer in store.layers(&image) {
            live_blobs.insert(layer.digest.digest().to_string());
            live_layers.insert(layer.diff_id.digest().to_string());
        }
    }
    // Build cache entries keep the layers of the images built with them
    // (a multi-stage build's other stages); the rest go now.
    crate::build::cache::collect(root, &live_images, &mut live_layers, &mut live_blobs)
        .map_err(io_ctx("collecting the build cache"))?;
    for entry in fs::read_dir(root.blobs()).map_err(io_ctx("listing blobs"))? {
        let entry = entry.map_err(io_ctx("listing blobs"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !live_blobs.contains(&name) {
            out.bytes_freed += disk_usage(&entry.path()).unwrap_or(0);
            fs::remove_file(entry.path()).map_err(io_ctx(format!("removing blob {name}")))?;
            out.blobs_removed += 1;
        }
    }
    for entry in fs::read_dir(root.layers()).map_err(io_ctx("listing layers"))? {
        let entry = entry.map_err(io_ctx("listing layers"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let hex = name.strip_suffix(".json").unwrap_or(&name);
        if !live_layers.contains(hex) {
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            out.bytes_freed += disk_usage(&entry.path()).unwrap_or(0);
            remove_any(&entry.path()).map_err(io_ctx(format!("removing layer {hex}")))?;
            if is_dir {
                out.layers_removed += 1;
            }
        }
    }
    for entry in fs::read_dir(root.tmp())
        .map_err(io_ctx("listing tmp"))?
        .flatten()
    {
        // A build's scratch may name a sandbox whose cgroups are still to
        // clear: the build sweep (`isola build`, `isola prune`) removes it.
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(crate::build::sweep::PREFIX)
        {
            continue;
        }
        remove_any(&entry.path()).map_err(io_ctx("removing stale staging"))?;
    }
    collect_guest_rootfs(root, &live_images, out)?;
    tracing::info!(
        blobs = out.blobs_removed,
        layers = out.layers_removed,
        freed = out.bytes_freed,
        "collected"
    );
    Ok(())
}
