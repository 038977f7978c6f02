//! An image made from a stored one plus one layer of given files, as a
//! `COPY` would make it: the benchmark's image (the default image with
//! isola-probe in it) and its layer-sharing lesson are built this way.

use std::fs;
use std::path::Path;

use oci_spec::image::{
    Descriptor, HistoryBuilder, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};

use super::default_image::{tar_header, write_index};
use super::digest;
use super::error::{io_ctx, ImageError};
use super::{Image, ImageStore, ImportOptions, Imported};
use crate::fsutil::Lock;

/// A regular file the new layer holds, owned by root.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Path inside the image, relative (`usr/bin/tool`).
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Store `base` + a layer of `files` as `name`. Deterministic: the same
/// base and files give the same image ID, so a rebuild is a no-op.
pub fn add_layer(
    store: &ImageStore,
    base: &Image,
    name: &str,
    files: &[NewFile],
    created_by: &str,
) -> Result<Imported, ImageError> {
    let layer = layer_tar(files).map_err(io_ctx(format!("building the layer for {name}")))?;
    let root = store.root();
    // Keep garbage collection off the base's blobs while the layout links them.
    let _lock = Lock::shared(&root.store_lock()).map_err(io_ctx("locking the image store"))?;
    let layout = tempfile::Builder::new()
        .prefix("derive-")
        .tempdir_in(root.tmp())
        .map_err(io_ctx("creating a directory for a derived image"))?;
    write_layout(store, layout.path(), base, &layer, created_by)?;
    let opts = ImportOptions {
        name: Some(name.to_string()),
        ..ImportOptions::default()
    };
    super::import::import(store, layout.path(), &opts)
}

fn layer_tar(files: &[NewFile]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for f in files {
        let mut p = Path::new(&f.path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", d.display()));
            p = d.parent();
        }
    }
    for d in &dirs {
        b.append_data(
            &mut tar_header(tar::EntryType::Directory, 0o755, 0),
            d,
            std::io::empty(),
        )?;
    }
    let mut sorted: Vec<&NewFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in sorted {
        b.append_data(
            &mut tar_header(tar::EntryType::Regular, f.mode, f.data.len() as u64),
            &f.path,
            f.data.as_slice(),
        )?;
    }
    b.into_inner()
}

fn write_layout(
    store: &ImageStore,
    dir: &Path,
    base: &Image,
    layer: &[u8],
    created_by: &str,
) -> Result<(), ImageError> {
    let invalid = |e: oci_spec::OciSpecError| ImageError::Io {
        context: "describing a derived image".into(),
        source: std::io::Error::other(e.to_string()),
    };
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_ctx("writing a derived image's layout"))?;
    let put = |data: &[u8]| -> Result<oci_spec::image::Digest, ImageError> {
        let d = digest::of_bytes(data);
        fs::write(blobs.join(d.digest()), data)
            .map_err(io_ctx("writing a derived image's blob"))?;
        Ok(d)
    };
    // The base's layer blobs, linked (the import verifies and reuses them).
    for l in base.manifest.layers() {
        let hex = l.digest().digest();
        let (from, to) = (store.root().blob(hex), blobs.join(hex));
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(io_ctx(format!("copying layer blob {hex}")))?;
        }
    }
    let layer_digest = put(layer)?;

    let mut config = base.config.clone();
    let mut rootfs = config.rootfs().clone();
    let mut diff_ids = rootfs.diff_ids().clone();
    diff_ids.push(layer_digest.to_string());
    rootfs.set_diff_ids(diff_ids);
    config.set_rootfs(rootfs);
    let mut history = config.history().clone().unwrap_or_default();
    history.push(
        HistoryBuilder::default()
            .created("1970-01-01T00:00:00Z")
            .created_by(created_by)
            .build()
            .map_err(invalid)?,
    );
    config.set_history(Some(history));
    let config = serde_json::to_vec(&config).map_err(|e| ImageError::Io {
        context: "encoding a derived image's config".into(),
        source: e.into(),
    })?;
    let config_digest = put(&config)?;

    let mut layers = base.manifest.layers().clone();
    layers.push(Descriptor::new(
        MediaType::ImageLayer,
        layer.len() as u64,
        layer_digest,
    ));
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.len() as u64,
            config_digest,
        ))
        .layers(layers)
        .build()
        .map_err(invalid)?;
    let manifest = serde_json::to_vec(&manifest).map_err(|e| ImageError::Io {
        context: "encoding a derived image's manifest".into(),
        source: e.into(),
    })?;
    let manifest_digest = put(&manifest)?;
    write_index(dir, &manifest, manifest_digest).map_err(io_ctx("writing a derived image's index"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Root;

    #[test]
    fn a_derived_image_shares_its_base_layer_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(Root::new(dir.path())).unwrap();
        if let Err(e) = crate::image::default_image::build(&store) {
            eprintln!("skipped: no base image to derive from: {e}");
            return;
        }
        let base = store.get(crate::image::default_image::NAME).unwrap();
        let files = [NewFile {
            path: "usr/local/bin/hello".into(),
            mode: 0o755,
            data: b"#!/bin/sh\necho hi\n".to_vec(),
        }];
        let a = add_layer(&store, &base, "t/a:1", &files, "test").unwrap();
        assert_eq!(a.layers_reused, 1);
        assert_eq!(a.layers_unpacked, 1);
        let b = add_layer(&store, &base, "t/b:1", &files, "test").unwrap();
        assert_eq!(a.digest, b.digest);
        let image = store.get("t/a:1").unwrap();
        let dirs = store.layer_dirs(&image);
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0], store.layer_dirs(&base)[0]);
        assert!(dirs[1].join("usr/local/bin/hello").is_file());
    }
}
