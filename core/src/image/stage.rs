//! Staging an image under tmp/ before it lands in the store: the one path
//! every layer takes, from an import's file or a registry's stream alike —
//! hashed compressed, decompressed, hashed again, unpacked, checked against
//! the manifest and config — and the rename that lands it all.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::{Deserialize, Serialize};

use super::digest::{self, HashingReader};
use super::error::{io_ctx, ImageError};
use super::media::{Compression, Decoder};
use super::unpack::{unpack, UnpackError, UnpackStats};
use super::ImageStore;

/// Facts about an unpacked layer, kept in `layers/<diff-id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerMeta {
    pub diff_id: Digest,
    /// Compressed blobs known to unpack to exactly this layer.
    pub blobs: Vec<Digest>,
    pub entries: u64,
    pub content_bytes: u64,
}

pub(crate) struct Stage<'a> {
    pub store: &'a ImageStore,
    pub dir: PathBuf,
    pub label: &'a str,
    /// Blobs staged under dir/blobs, by hex digest.
    blobs: Vec<String>,
    /// Layers unpacked under dir/layers, by hex diff-id.
    layers: Vec<String>,
    pub unpacked: usize,
    pub reused: usize,
}

/// What a layer must turn out to be; `None` where the source does not say.
pub(crate) struct Expect<'a> {
    pub digest: Option<&'a Digest>,
    pub size: Option<u64>,
    pub diff_id: &'a Digest,
    pub compression: Option<Compression>,
    pub index: usize,
    pub count: usize,
    /// How the layer is named in errors: its digest, or its member path.
    pub shown: &'a str,
}

/// A layer that streamed through and matched what was expected.
pub(crate) struct Verified {
    pub digest: Digest,
    pub size: u64,
    pub compression: Compression,
    /// `None` when the store (or this staging) already had the layer
    /// unpacked and it was only hashed.
    pub stats: Option<UnpackStats>,
}

impl<'a> Stage<'a> {
    pub fn new(
        store: &'a ImageStore,
        prefix: &str,
        label: &'a str,
    ) -> Result<(Stage<'a>, tempfile::TempDir), ImageError> {
        let root = store.root();
        let staging = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(root.tmp())
            .map_err(io_ctx(format!(
                "creating a staging directory in {}",
                root.tmp().display()
            )))?;
        let dir = staging.path().to_path_buf();
        for sub in ["blobs", "layers"] {
            fs::create_dir_all(dir.join(sub)).map_err(io_ctx("creating the staging directory"))?;
        }
        Ok((
            Stage {
                store,
                dir,
                label,
                blobs: Vec::new(),
                layers: Vec::new(),
                unpacked: 0,
                reused: 0,
            },
            staging,
        ))
    }

    pub fn invalid(&self, what: String) -> ImageError {
        ImageError::Invalid {
            image: self.label.to_string(),
            what,
        }
    }

    /// Stage a small blob held in memory, unless the store has it.
    pub fn blob_bytes(&mut self, data: &[u8]) -> Result<Digest, ImageError> {
        let d = digest::of_bytes(data);
        let hex = d.digest().to_string();
        if !self.has_blob(&hex) {
            fs::write(self.dir.join("blobs").join(&hex), data).map_err(io_ctx("staging a blob"))?;
            self.blobs.push(hex);
        }
        Ok(d)
    }

    pub fn has_blob(&self, hex: &str) -> bool {
        self.store.root().blob(hex).exists() || self.blobs.iter().any(|b| b == hex)
    }

    /// The layer is unpacked in the store or in this staging already.
    pub fn has_layer(&self, diff_hex: &str) -> bool {
        self.store.root().layer_dir(diff_hex).exists() || self.layers.iter().any(|l| l == diff_hex)
    }

    /// The store has this layer unpacked from exactly this blob, and the
    /// blob: nothing to fetch or verify. Returns the blob's size.
    pub fn stored_from(&self, blob: &Digest, diff_id: &Digest) -> Result<Option<u64>, ImageError> {
        let diff_hex = diff_id.digest();
        let path = self.store.root().blob(blob.digest());
        if self.has_layer(diff_hex)
            && path.exists()
            && self
                .store
                .layer_meta(diff_hex)
                .is_some_and(|m| m.blobs.contains(blob))
        {
            let size = fs::metadata(&path)
                .map_err(io_ctx("reading a stored blob"))?
                .len();
            return Ok(Some(size));
        }
        Ok(None)
    }

    /// Where a layer is unpacked while staged.
    pub fn layer_path(&self, diff_hex: &str) -> PathBuf {
        self.dir.join("layers").join(diff_hex)
    }

    /// Stream one layer through: hash it, decompress it, hash that, and
    /// unpack it into the staging (or only hash it when the layer is there
    /// already); then check both digests and the size. Safe to call from
    /// several threads for distinct layers.
    pub fn ingest<R: Read>(&self, reader: R, want: &Expect) -> Result<Verified, ImageError> {
        let layer_err = |source: UnpackError| ImageError::Layer {
            image: self.label.to_string(),
            index: want.index,
            count: want.count,
            digest: want.shown.to_string(),
            source,
        };
        let (index, count, shown) = (want.index, want.count, want.shown);
        let diff_hex = want.diff_id.digest().to_string();
        let mut compressed = BufReader::with_capacity(256 * 1024, HashingReader::new(reader));
        let compression = match want.compression {
            Some(c) => c,
            None => Compression::sniff(
                compressed
                    .fill_buf()
                    .map_err(|e| layer_err(UnpackError::Read(e)))?,
            ),
        };
        let decoder =
            Decoder::new(compression, compressed).map_err(|e| layer_err(UnpackError::Read(e)))?;
        let mut plain = HashingReader::new(decoder);
        let started = std::time::Instant::now();
        let stats = if self.has_layer(&diff_hex) {
            io::copy(&mut plain, &mut io::sink()).map_err(|e| layer_err(UnpackError::Read(e)))?;
            None
        } else {
            let dir = self.layer_path(&diff_hex);
            fs::create_dir(&dir).map_err(io_ctx("staging a layer"))?;
            Some(unpack(&mut plain, &dir).map_err(layer_err)?)
        };
        let (decoder, got_diff, _) = plain.drain().map_err(|e| layer_err(UnpackError::Read(e)))?;
        let (_, got_digest, got_size) = decoder
            .into_inner()
            .into_inner()
            .drain()
            .map_err(|e| layer_err(UnpackError::Read(e)))?;

        self.check_blob(want, &got_digest, got_size)?;
        if got_diff != *want.diff_id {
            return Err(self.invalid(format!(
                "layer {index}/{count} ({shown}): its uncompressed content has digest {got_diff}, but the image config says diff-id {} (corrupt or altered)",
                want.diff_id
            )));
        }
        tracing::debug!(
            layer = %format!("{index}/{count}"),
            diff_id = %want.diff_id,
            ?compression,
            bytes = got_size,
            unpacked = stats.is_some(),
            ms = started.elapsed().as_millis() as u64,
            "layer verified"
        );
        Ok(Verified {
            digest: got_digest,
            size: got_size,
            compression,
            stats,
        })
    }

    /// Stream one layer's blob through without unpacking it: hash it and
    /// check its digest and size, as `skopeo copy` to an OCI layout does
    /// (`isola pull --fetch-only`, which the benchmark times against it).
    pub fn verify_only<R: Read>(&self, reader: R, want: &Expect) -> Result<Verified, ImageError> {
        let (_, got_digest, got_size) =
            HashingReader::new(reader)
                .drain()
                .map_err(|e| ImageError::Layer {
                    image: self.label.to_string(),
                    index: want.index,
                    count: want.count,
                    digest: want.shown.to_string(),
                    source: UnpackError::Read(e),
                })?;
        self.check_blob(want, &got_digest, got_size)?;
        Ok(Verified {
            digest: got_digest,
            size: got_size,
            compression: want.compression.unwrap_or(Compression::None),
            stats: None,
        })
    }

    /// The blob's size and digest against what the manifest says.
    fn check_blob(
        &self,
        want: &Expect,
        got_digest: &Digest,
        got_size: u64,
    ) -> Result<(), ImageError> {
        let (index, count, shown) = (want.index, want.count, want.shown);
        if let Some(want_size) = want.size.filter(|s| *s != got_size) {
            return Err(self.invalid(format!(
                "layer {index}/{count} ({shown}): the blob is {got_size} bytes, but the manifest says {want_size} (truncated or altered)"
            )));
        }
        if let Some(d) = want.digest.filter(|d| *d != got_digest) {
            return Err(self.invalid(format!(
                "layer {index}/{count}: the blob has digest {got_digest}, but the manifest says {d} (corrupt or altered)"
            )));
        }
        Ok(())
    }

    /// Record a verified layer: its blob file (moved into the staging, if
    /// the store lacks it) and its unpacked directory's facts.
    pub fn add_layer(
        &mut self,
        diff_id: &Digest,
        v: &Verified,
        blob_file: Option<&Path>,
    ) -> Result<(), ImageError> {
        let hex = v.digest.digest().to_string();
        if let Some(file) = blob_file {
            if !self.has_blob(&hex) {
                fs::rename(file, self.dir.join("blobs").join(&hex))
                    .map_err(io_ctx("staging a layer blob"))?;
                self.blobs.push(hex);
            }
        }
        let diff_hex = diff_id.digest().to_string();
        match &v.stats {
            Some(stats) if !self.layers.contains(&diff_hex) => {
                let meta = LayerMeta {
                    diff_id: diff_id.clone(),
                    blobs: vec![v.digest.clone()],
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
            }
            _ => self.reused += 1,
        }
        Ok(())
    }

    /// Move staged blobs and layers into the store. Something another
    /// import landed meanwhile is kept, and ours dropped with the staging dir.
    pub fn commit(&self) -> Result<(), ImageError> {
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
pub(crate) struct Tee<R> {
    pub inner: R,
    pub out: Option<BufWriter<File>>,
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

/// The descriptor of a layer as stored.
pub(crate) fn layer_descriptor(media: Option<&MediaType>, v: &Verified) -> Descriptor {
    let media = media
        .cloned()
        .unwrap_or_else(|| v.compression.layer_media_type());
    Descriptor::new(media, v.size, v.digest.clone())
}
