//! Importing an image: everything is verified and staged under tmp/ first,
//! then lands by rename, then the name is added to the catalog. A failure at
//! any step leaves the store exactly as it was.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};

use super::candidate::{Candidate, LayerSrc, Platform};
use super::catalog::Catalog;
use super::digest;
use super::error::{io_ctx, ImageError};
use super::reference::Reference;
use super::source::Source;
use super::stage::{layer_descriptor, Expect, Stage, Tee};
use super::{docker_archive, oci_layout, ImageStore};
use crate::fsutil::Lock;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The name to store the image under; by default the one the source gives.
    pub name: Option<String>,
    /// Which image of a source that holds several (a ref name or RepoTag).
    pub reference: Option<String>,
    pub platform: Platform,
}

#[derive(Debug, Clone)]
pub struct Imported {
    pub name: Reference,
    pub digest: Digest,
    pub layers_unpacked: usize,
    pub layers_reused: usize,
    /// The image this name pointed at before, now left with no name; the
    /// store collects it once the import's locks are released.
    pub orphaned: Option<Digest>,
}

pub fn import(
    store: &ImageStore,
    path: &Path,
    opts: &ImportOptions,
) -> Result<Imported, ImageError> {
    let src = Source::open(path).map_err(|e| ImageError::BadSource {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let label = match &opts.name {
        Some(n) => format!("{n} (from {})", path.display()),
        None => path.display().to_string(),
    };
    let want = opts.reference.as_deref();
    let candidate = if oci_layout::is_layout(&src) {
        oci_layout::candidate(&src, &label, want, &opts.platform)?
    } else if docker_archive::is_archive(&src) {
        docker_archive::candidate(&src, &label, want)?
    } else {
        return Err(ImageError::BadSource {
            path: path.to_path_buf(),
            why: "it is neither an OCI image layout (no oci-layout and index.json) nor a docker-archive (no manifest.json)".into(),
        });
    };
    let name = choose_name(opts, &candidate, path)?;
    let label = format!("{name} (from {})", path.display());
    land(store, &src, candidate, &name, &label)
}

/// Stage the candidate's blobs and layers, land them, and name the image.
fn land(
    store: &ImageStore,
    src: &Source,
    candidate: Candidate,
    name: &Reference,
    label: &str,
) -> Result<Imported, ImageError> {
    let root = store.root();
    // Shared: imports run side by side; garbage collection waits for them.
    let _store_lock =
        Lock::shared(&root.store_lock()).map_err(io_ctx("locking the image store"))?;
    let (mut stage, _staging) = Stage::new(store, "import-", label)?;

    let config: ImageConfiguration =
        serde_json::from_slice(&candidate.config).map_err(|e| ImageError::Invalid {
            image: label.to_string(),
            what: format!("the image config is not valid: {e}"),
        })?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != candidate.layers.len() {
        return Err(ImageError::Invalid {
            image: label.to_string(),
            what: format!(
                "the config lists {} layer diff-ids but the image has {} layers",
                diff_ids.len(),
                candidate.layers.len()
            ),
        });
    }
    let config_digest = stage.blob_bytes(&candidate.config)?;

    let count = candidate.layers.len();
    let mut descriptors = Vec::with_capacity(count);
    for (i, (layer, diff_id)) in candidate.layers.iter().zip(diff_ids).enumerate() {
        let diff_id = digest::parse(diff_id).map_err(|why| ImageError::Invalid {
            image: label.to_string(),
            what: format!("layer {}/{count}: diff-id: {why}", i + 1),
        })?;
        descriptors.push(import_layer(
            &mut stage,
            src,
            layer,
            &diff_id,
            i + 1,
            count,
        )?);
    }

    let manifest = match candidate.manifest {
        Some(bytes) => bytes,
        None => {
            let m = ImageManifestBuilder::default()
                .schema_version(SCHEMA_VERSION)
                .media_type(MediaType::ImageManifest)
                .config(Descriptor::new(
                    MediaType::ImageConfig,
                    candidate.config.len() as u64,
                    config_digest,
                ))
                .layers(descriptors)
                .build()
                .expect("a manifest with config and layers builds");
            serde_json::to_vec(&m).expect("a manifest serialises")
        }
    };
    let manifest_digest = stage.blob_bytes(&manifest)?;
    stage.commit()?;

    let orphaned = Catalog::set_name(root, &name.to_string(), &manifest_digest)?;
    tracing::info!(image = %name, digest = %manifest_digest, unpacked = stage.unpacked, reused = stage.reused, "imported");
    Ok(Imported {
        name: name.clone(),
        digest: manifest_digest,
        layers_unpacked: stage.unpacked,
        layers_reused: stage.reused,
        orphaned,
    })
}

fn choose_name(opts: &ImportOptions, c: &Candidate, path: &Path) -> Result<Reference, ImageError> {
    let given = match (&opts.name, c.names.first()) {
        (Some(n), _) => n.clone(),
        // An OCI ref name is usually just a tag ("latest").
        (None, Some(n)) if !n.contains(':') && !n.contains('/') => format!("{}:{n}", stem(path)),
        (None, Some(n)) => docker_archive::normalise_tag(n),
        (None, None) => stem(path),
    };
    Reference::parse(&given).map_err(|why| {
        if opts.name.is_none() {
            ImageError::BadSourceName(why)
        } else {
            ImageError::BadReference(why)
        }
    })
}

/// A usable image name from a file name: `/tmp/My App.tar` → `my-app`.
fn stem(path: &Path) -> String {
    let base = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "imported".into()
    } else {
        trimmed.to_string()
    }
}

/// Verify one layer of the source and stage what the store lacks of it: its
/// blob, its unpacked directory. Returns the layer's descriptor.
fn import_layer(
    stage: &mut Stage,
    src: &Source,
    layer: &LayerSrc,
    diff_id: &Digest,
    index: usize,
    count: usize,
) -> Result<Descriptor, ImageError> {
    let root = stage.store.root();
    // Shared base layer already stored from this very blob: nothing to do.
    if let Some(d) = &layer.digest {
        if let Some(size) = stage.stored_from(d, diff_id)? {
            if layer.size.is_some_and(|s| s != size) {
                return Err(stage.invalid(format!(
                    "layer {index}/{count} ({d}): the manifest says {} bytes, but that blob is {size}",
                    layer.size.unwrap_or_default()
                )));
            }
            stage.reused += 1;
            let media = layer.media_type.clone().unwrap_or(MediaType::ImageLayer);
            return Ok(Descriptor::new(media, size, d.clone()));
        }
    }
    let shown = layer
        .digest
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_else(|| layer.member.clone());
    let (reader, _) = src
        .open_member(&layer.member)
        .map_err(|e| stage.invalid(format!("layer {index}/{count} ({shown}): {e}")))?;
    let keep_blob = layer
        .digest
        .as_ref()
        .is_none_or(|d| !root.blob(d.digest()).exists());
    let staged_blob = stage.dir.join("blobs").join(format!("incoming-{index}"));
    let mut tee = Tee {
        inner: reader,
        out: if keep_blob {
            Some(BufWriter::new(
                File::create(&staged_blob).map_err(io_ctx("staging a layer blob"))?,
            ))
        } else {
            None
        },
    };
    let want = Expect {
        digest: layer.digest.as_ref(),
        size: layer.size,
        diff_id,
        compression: layer.compression,
        index,
        count,
        shown: &shown,
    };
    let verified = stage.ingest(&mut tee, &want)?;
    if let Some(mut out) = tee.out {
        out.flush().map_err(io_ctx("staging a layer blob"))?;
    }
    stage.add_layer(
        diff_id,
        &verified,
        keep_blob.then_some(staged_blob.as_path()),
    )?;
    Ok(layer_descriptor(layer.media_type.as_ref(), &verified))
}
