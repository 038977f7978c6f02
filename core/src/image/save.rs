//! A stored image written out as an OCI image layout, its blobs linked from
//! the store: how peers (buildah, skopeo, umoci) are handed an image of
//! isola's in tests and benchmarks.

use std::fs;
use std::path::Path;

use super::error::{io_ctx, ImageError};
use super::{Image, ImageStore};

/// Write `image` into `dir` (made if need be) as an OCI layout whose one
/// manifest is tagged `ref_name` (`oci:DIR:REF_NAME` to skopeo and buildah).
pub fn save_layout(
    store: &ImageStore,
    image: &Image,
    dir: &Path,
    ref_name: &str,
) -> Result<(), ImageError> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_ctx(format!("creating {}", blobs.display())))?;
    let mut hexes = vec![
        image.digest.digest().to_string(),
        image.config_digest.digest().to_string(),
    ];
    hexes.extend(
        image
            .manifest
            .layers()
            .iter()
            .map(|l| l.digest().digest().to_string()),
    );
    for hex in &hexes {
        let (from, to) = (store.root().blob(hex), blobs.join(hex));
        if to.exists() {
            continue;
        }
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(io_ctx(format!("copying blob {hex}")))?;
        }
    }
    let size = fs::metadata(store.root().blob(image.digest.digest()))
        .map_err(io_ctx("reading the manifest's size"))?
        .len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest.to_string(),
            "size": size,
            "annotations": { "org.opencontainers.image.ref.name": ref_name },
        }],
    });
    fs::write(dir.join("index.json"), index.to_string()).map_err(io_ctx("writing index.json"))?;
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io_ctx("writing oci-layout"))?;
    Ok(())
}
