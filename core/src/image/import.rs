//! Importing an image: everything is verified and staged under tmp/ first,
//! then lands by rename, then the name is added to the catalog. A failure at
//! any step leaves the store exactly as it was.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageManifestBuilder, MediaType, SCHEMA_VERSION,
};
use serde::{Deserialize, Serialize};

use super::candidate::{Candidate, LayerSrc, Platform};
use super::catalog::Catalog;
use super::digest::{self, HashingReader};
use super::error::{io_ctx, ImageError};
use super::media::{Compression, Decoder};
use super::reference::Reference;
use super::source::Source;
use super::unpack::{unpack, UnpackError};
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

/// Facts about an unpacked layer, kept in `layers/<diff-id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    /// Compressed blobs known to unpack to exactly this layer.
    pub blobs: Vec<Digest>,
    pub entries: u64,
    pub content_bytes: u64,
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
    let staging = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(root.tmp())
        .map_err(io_ctx(format!(
            "creating a staging directory in {}",
            root.tmp().display()
        )))?;
    let mut stage = Stage {
        store,
        dir: staging.path().to_path_buf(),
        label,
        blobs: Vec::new(),
        layers: Vec::new(),
        unpacked: 0,
        reused: 0,
    };
    fs::create_dir_all(stage.dir.join("blobs"))
        .map_err(io_ctx("creating the staging directory"))?;
    fs::create_dir_all(stage.dir.join("layers"))
        .map_err(io_ctx("creating the staging directory"))?;

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
        descriptors.push(stage.layer(src, layer, &diff_id, i + 1, count)?);
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

struct Stage<'a> {
    store: &'a ImageStore,
    dir: PathBuf,
    label: &'a str,
    /// Blobs staged under dir/blobs, by hex digest.
    blobs: Vec<String>,
    /// Layers unpacked under dir/layers, by hex diff-id.
    layers: Vec<String>,
    unpacked: usize,
    reused: usize,
}

impl Stage<'_> {
    fn invalid(&self, what: String) -> ImageError {
        ImageError::Invalid {
            image: self.label.to_string(),
            what,
        }
    }

    /// Stage a small blob held in memory, unless the store has it.
    fn blob_bytes(&mut self, data: &[u8]) -> Result<Digest, ImageError> {
        let d = digest::of_bytes(data);
        let hex = d.digest().to_string();
        if !self.store.root().blob(&hex).exists() && !self.blobs.contains(&hex) {
            fs::write(self.dir.join("blobs").join(&hex), data).map_err(io_ctx("staging a blob"))?;
            self.blobs.push(hex);
        }
        Ok(d)
    }

    /// Verify one layer and stage what the store lacks of it: its blob, its
    /// unpacked directory. Returns the layer's descriptor.
    fn layer(
        &mut self,
        src: &Source,
        layer: &LayerSrc,
        diff_id: &Digest,
        index: usize,
        count: usize,
    ) -> Result<Descriptor, ImageError> {
        let root = self.store.root();
        let diff_hex = diff_id.digest().to_string();
        let have_dir = root.layer_dir(&diff_hex).exists() || self.layers.contains(&diff_hex);
        let layer_err = |digest: &str, source: UnpackError| ImageError::Layer {
            image: self.label.to_string(),
            index,
            count,
            digest: digest.to_string(),
            source,
        };

        // Shared base layer already stored from this very blob: nothing to do.
        if let Some(d) = &layer.digest {
            let blob = root.blob(d.digest());
            if have_dir
                && blob.exists()
                && self
                    .store
                    .layer_meta(&diff_hex)
                    .is_some_and(|m| m.blobs.contains(d))
            {
                let size = fs::metadata(&blob)
                    .map_err(io_ctx("reading a stored blob"))?
                    .len();
                if layer.size.is_some_and(|s| s != size) {
                    return Err(self.invalid(format!(
                        "layer {index}/{count} ({d}): the manifest says {} bytes, but that blob is {size}",
                        layer.size.unwrap_or_default()
                    )));
                }
                self.reused += 1;
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
            .map_err(|e| self.invalid(format!("layer {index}/{count} ({shown}): {e}")))?;
        let keep_blob = layer
            .digest
            .as_ref()
            .is_none_or(|d| !root.blob(d.digest()).exists());
        let staged_blob = self.dir.join("blobs").join(format!("incoming-{index}"));
        let tee = Tee {
            inner: reader,
            out: if keep_blob {
                Some(BufWriter::new(
                    File::create(&staged_blob).map_err(io_ctx("staging a layer blob"))?,
                ))
            } else {
                None
            },
        };
        let mut compressed = BufReader::with_capacity(256 * 1024, HashingReader::new(tee));
        let compression = match layer.compression {
            Some(c) => c,
            None => Compression::sniff(
                compressed
                    .fill_buf()
                    .map_err(|e| layer_err(&shown, UnpackError::Read(e)))?,
            ),
        };
        let decoder = Decoder::new(compression, compressed)
            .map_err(|e| layer_err(&shown, UnpackError::Read(e)))?;
        let mut plain = HashingReader::new(decoder);
        let layer_dir = self.dir.join("layers").join(&diff_hex);
        let started = std::time::Instant::now();
        let mut stats = None;
        if have_dir {
            io::copy(&mut plain, &mut io::sink())
                .map_err(|e| layer_err(&shown, UnpackError::Read(e)))?;
        } else {
            fs::create_dir(&layer_dir).map_err(io_ctx("staging a layer"))?;
            stats = Some(unpack(&mut plain, &layer_dir).map_err(|e| layer_err(&shown, e))?);
        }
        let (decoder, got_diff, _) = plain
            .drain()
            .map_err(|e| layer_err(&shown, UnpackError::Read(e)))?;
        let (tee, got_digest, got_size) = decoder
            .into_inner()
            .into_inner()
            .drain()
            .map_err(|e| layer_err(&shown, UnpackError::Read(e)))?;
        if let Some(mut out) = tee.out {
            out.flush().map_err(io_ctx("staging a layer blob"))?;
        }

        if let Some(want) = layer.size.filter(|s| *s != got_size) {
            return Err(self.invalid(format!(
                "layer {index}/{count} ({shown}): the blob is {got_size} bytes, but the manifest says {want} (truncated or altered)"
            )));
        }
        if let Some(want) = layer.digest.as_ref().filter(|d| **d != got_digest) {
            return Err(self.invalid(format!(
                "layer {index}/{count}: the blob has digest {got_digest}, but the manifest says {want} (corrupt or altered)"
            )));
        }
        if got_diff != *diff_id {
            return Err(self.invalid(format!(
                "layer {index}/{count} ({shown}): its uncompressed content has digest {got_diff}, but the image config says diff-id {diff_id} (corrupt or altered)"
            )));
        }

        let hex = got_digest.digest().to_string();
        if keep_blob && !root.blob(&hex).exists() && !self.blobs.contains(&hex) {
            fs::rename(&staged_blob, self.dir.join("blobs").join(&hex))
                .map_err(io_ctx("staging a layer blob"))?;
            self.blobs.push(hex);
        }
        tracing::debug!(
            layer = %format!("{index}/{count}"),
            diff_id = %diff_id,
            ?compression,
            bytes = got_size,
            unpacked = stats.is_some(),
            ms = started.elapsed().as_millis() as u64,
            "layer verified"
        );
        if let Some(stats) = stats {
            let meta = LayerMeta {
                diff_id: diff_id.clone(),
                blobs: vec![got_digest.clone()],
                entries: stats.entries,
                content_bytes: stats.content_bytes,
            };
            let json = serde_json::to_vec_pretty(&meta).expect("layer meta serialises");
            fs::write(
                self.dir.join("layers").join(format!("{diff_hex}.json")),
                json,
            )
            .map_err(io_ctx("staging layer facts"))?;
            self.layers.push(diff_hex);
            self.unpacked += 1;
        } else {
            self.reused += 1;
        }
        let media = layer
            .media_type
            .clone()
            .unwrap_or_else(|| compression.layer_media_type());
        Ok(Descriptor::new(media, got_size, got_digest))
    }

    /// Move staged blobs and layers into the store. Something another
    /// import landed meanwhile is kept, and ours dropped with the staging dir.
    fn commit(&self) -> Result<(), ImageError> {
        let root = self.store.root();
        for hex in &self.blobs {
            let to = root.blob(hex);
            if !to.exists() {
                fs::rename(self.dir.join("blobs").join(hex), &to)
                    .map_err(io_ctx("storing a blob"))?;
            }
        }
        for hex in &self.layers {
            let to = root.layer_dir(hex);
            match fs::rename(self.dir.join("layers").join(hex), &to) {
                Ok(()) => {}
                Err(e) if to.exists() => {
                    tracing::debug!(layer = %hex, error = %e, "layer landed meanwhile")
                }
                Err(e) => return Err(io_ctx("storing a layer")(e)),
            }
            if !root.layer_meta(hex).exists() {
                fs::rename(
                    self.dir.join("layers").join(format!("{hex}.json")),
                    root.layer_meta(hex),
                )
                .map_err(io_ctx("storing layer facts"))?;
            }
        }
        Ok(())
    }
}

/// Copies what is read through it to `out`, when there is one.
struct Tee<R> {
    inner: R,
    out: Option<BufWriter<File>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(out) = &mut self.out {
            out.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}
