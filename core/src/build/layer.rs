//! A step's changes into the store: the overlay upper dir written as a
//! reproducible layer tar, gzipped as docker's layers are, then landed the
//! way every layer lands (hashed again, unpacked, renamed into the store)
//! so that the next step can stack on it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use oci_spec::image::MediaType;

use super::diff::{write_layer, DiffOptions};
use super::error::{io_ctx, BuildError};
use super::layer_ref::LayerRef;
use crate::image::digest::HashingWriter;
use crate::image::media::Compression;
use crate::image::stage::{Expect, Stage};
use crate::image::ImageStore;

/// Land the changes in `upper` as a layer; `None` when there are none.
/// `scratch` is a directory of the build's own for the blob on its way.
pub(crate) fn store_upper(
    store: &ImageStore,
    upper: &Path,
    scratch: &Path,
    epoch: u64,
    skip: &dyn Fn(&str, bool) -> bool,
    at: &str,
) -> Result<Option<LayerRef>, BuildError> {
    let blob_path = scratch.join("layer.tar.gz");
    let file = File::create(&blob_path).map_err(io_ctx("writing the step's layer"))?;
    let compressed = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let plain = HashingWriter::new(GzEncoder::new(compressed, flate2::Compression::default()));
    let mut out = BufWriter::with_capacity(256 * 1024, plain);
    let stats = write_layer(upper, &mut out, &DiffOptions { epoch }, skip).map_err(|e| {
        BuildError::StepCaused {
            at: at.to_string(),
            what: "turning the step's changes into a layer failed".into(),
            source: Box::new(e),
        }
    })?;
    if stats.entries == 0 {
        return Ok(None);
    }
    let plain = out
        .into_inner()
        .map_err(|e| io_ctx("writing the step's layer")(e.into_error()))?;
    let (gz, diff_id, _) = plain.finish();
    let compressed = gz
        .finish()
        .map_err(io_ctx("compressing the step's layer"))?;
    let (mut file, digest, size) = compressed.finish();
    file.flush().map_err(io_ctx("writing the step's layer"))?;
    drop(file);

    let shown = diff_id.to_string();
    let (mut stage, _staging) = Stage::new(store, "built-layer-", at)?;
    let reader =
        BufReader::new(File::open(&blob_path).map_err(io_ctx("reading the step's layer"))?);
    let want = Expect {
        digest: Some(&digest),
        size: Some(size),
        diff_id: &diff_id,
        compression: Some(Compression::Gzip),
        index: 1,
        count: 1,
        shown: &shown,
    };
    let verified = stage.ingest(reader, &want)?;
    stage.add_layer(&diff_id, &verified, Some(&blob_path))?;
    stage.commit()?;
    Ok(Some(LayerRef {
        diff_id,
        digest,
        size,
        media_type: MediaType::ImageLayerGzip.to_string(),
    }))
}
