//! The built image into the store: its config and manifest written the same
//! way every time (so the same build gives the same digest), then named.

use oci_spec::image::{Descriptor, Digest, ImageManifestBuilder, MediaType, SCHEMA_VERSION};

use super::config::ImageConfig;
use super::error::BuildError;
use super::layer_ref::LayerRef;
use crate::image::stage::Stage;
use crate::image::ImageStore;

/// Store the image made of `config` and `layers`; returns its manifest
/// digest (the image ID).
pub(crate) fn store_image(
    store: &ImageStore,
    config: &ImageConfig,
    layers: &[LayerRef],
) -> Result<Digest, BuildError> {
    let config_bytes = serde_json::to_vec(config)
        .map_err(|e| BuildError::Usage(format!("the image config cannot be written: {e}")))?;
    let (mut stage, _staging) = Stage::new(store, "built-image-", "the built image")?;
    let config_digest = stage.blob_bytes(&config_bytes)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            config_digest,
        ))
        .layers(layers.iter().map(LayerRef::descriptor).collect::<Vec<_>>())
        .build()
        .map_err(|e| BuildError::Usage(format!("the image manifest cannot be made: {e}")))?;
    let manifest_bytes = serde_json::to_vec(&manifest)
        .map_err(|e| BuildError::Usage(format!("the image manifest cannot be written: {e}")))?;
    let digest = stage.blob_bytes(&manifest_bytes)?;
    stage.commit()?;
    Ok(digest)
}
