//! `isola du`: what each image costs on disk, how much of that it shares with
//! other images, and what the store really holds, so layer sharing shows.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;

use oci_spec::image::Digest;
use serde::Serialize;

use super::error::{io_ctx, ImageError};
use super::ImageStore;
use crate::fsutil::{disk_usage, disk_usage_into};

#[derive(Debug, Clone, Serialize)]
pub struct ImageUsage {
    pub names: Vec<String>,
    pub digest: Digest,
    pub layers: usize,
    /// Disk bytes of everything the image needs: manifest, config, layer
    /// blobs and unpacked layers.
    pub size: u64,
    /// The part of `size` that at least one other image uses too.
    pub shared: u64,
    /// The part only this image uses: what removing it would free.
    pub unique: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub images: Vec<ImageUsage>,
    /// What the images would take if nothing were shared.
    pub sum_of_images: u64,
    /// What the store's directory really takes on disk (`du -s`).
    pub store_total: u64,
}

#[derive(Hash, PartialEq, Eq, Clone)]
enum Item {
    Blob(String),
    Layer(String),
}

pub fn usage(store: &ImageStore) -> Result<Usage, ImageError> {
    let root = store.root();
    let images = store.list()?;
    let mut items_of = Vec::with_capacity(images.len());
    let mut users: HashMap<Item, usize> = HashMap::new();
    for image in &images {
        let mut items = HashSet::new();
        items.insert(Item::Blob(image.digest.digest().to_string()));
        items.insert(Item::Blob(image.config_digest.digest().to_string()));
        for layer in store.layers(image) {
            items.insert(Item::Blob(layer.digest.digest().to_string()));
            items.insert(Item::Layer(layer.diff_id.digest().to_string()));
        }
        for item in &items {
            *users.entry(item.clone()).or_default() += 1;
        }
        items_of.push(items);
    }
    let mut size_of = HashMap::new();
    for item in users.keys() {
        let bytes = match item {
            Item::Blob(hex) => fs::symlink_metadata(root.blob(hex))
                .map(|m| m.blocks() * 512)
                .unwrap_or(0),
            Item::Layer(hex) => {
                let mut seen = HashSet::new();
                disk_usage_into(&root.layer_dir(hex), &mut seen)
                    .map_err(io_ctx(format!("measuring layer {hex}")))?
            }
        };
        size_of.insert(item.clone(), bytes);
    }
    let mut out = Vec::with_capacity(images.len());
    for (image, items) in images.iter().zip(&items_of) {
        let (mut size, mut shared) = (0, 0);
        for item in items {
            size += size_of[item];
            if users[item] > 1 {
                shared += size_of[item];
            }
        }
        out.push(ImageUsage {
            names: image.names.clone(),
            digest: image.digest.clone(),
            layers: image.manifest.layers().len(),
            size,
            shared,
            unique: size - shared,
        });
    }
    Ok(Usage {
        sum_of_images: out.iter().map(|u| u.size).sum(),
        images: out,
        store_total: disk_usage(root.dir()).map_err(io_ctx("measuring the store"))?,
    })
}
