//! Reading an OCI image layout (a directory, or the tar of one as
//! `skopeo copy ... oci-archive:` writes): index.json, nested indexes for
//! multi-arch images, the manifest, the config and the layer blobs.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::candidate::{read_small, read_verified, Candidate, LayerSrc, Platform};
use super::digest;
use super::error::ImageError;
use super::media::Compression;
use super::source::Source;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub fn is_layout(src: &Source) -> bool {
    src.exists("oci-layout") && src.exists("index.json")
}

pub fn candidate(
    src: &Source,
    label: &str,
    want_ref: Option<&str>,
    platform: &Platform,
) -> Result<Candidate, ImageError> {
    let bad = |why: String| ImageError::BadSource {
        path: src.path().to_path_buf(),
        why,
    };
    let raw = read_small(src, "index.json", "index")?;
    let index: ImageIndex = serde_json::from_slice(&raw)
        .map_err(|e| bad(format!("index.json is not a valid OCI image index: {e}")))?;

    // (descriptor of a manifest, the ref name it was found under)
    let mut found: Vec<(Descriptor, Option<String>)> = Vec::new();
    let mut refs = Vec::new();
    for desc in index.manifests() {
        let name = desc
            .annotations()
            .as_ref()
            .and_then(|a| a.get(REF_NAME))
            .cloned();
        if let Some(n) = &name {
            refs.push(n.clone());
        }
        if let Some(want) = want_ref {
            if name.as_deref() != Some(want) {
                continue;
            }
        }
        for m in manifests_for(src, label, desc, platform, 0)? {
            found.push((m, name.clone()));
        }
    }
    let (desc, name) = match found.len() {
        1 => found.remove(0),
        0 if want_ref.is_some() => {
            return Err(bad(format!(
                "it holds no image named {:?} (it holds: {})",
                want_ref.unwrap_or_default(),
                if refs.is_empty() {
                    "no named images".to_string()
                } else {
                    refs.join(", ")
                }
            )))
        }
        0 => {
            return Err(bad(format!(
                "it holds no image for {platform} (pick another with --platform)"
            )))
        }
        _ => {
            return Err(bad(format!(
                "it holds several images ({}); choose one with --ref",
                if refs.is_empty() {
                    "unnamed".to_string()
                } else {
                    refs.join(", ")
                }
            )))
        }
    };

    let manifest_bytes = read_verified(src, label, "manifest", desc.digest(), Some(desc.size()))?;
    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| ImageError::Invalid {
            image: label.to_string(),
            what: format!(
                "the manifest {} is not a valid image manifest: {e}",
                desc.digest()
            ),
        })?;
    let cfg = manifest.config();
    digest::parse(cfg.digest().as_ref()).map_err(|why| invalid(label, why.to_string()))?;
    let config = read_verified(src, label, "config", cfg.digest(), Some(cfg.size()))?;

    let count = manifest.layers().len();
    let mut layers = Vec::with_capacity(count);
    for (i, l) in manifest.layers().iter().enumerate() {
        digest::parse(l.digest().as_ref()).map_err(|why| invalid(label, why.to_string()))?;
        let compression = Compression::of_layer(l.media_type()).ok_or_else(|| {
            invalid(
                label,
                format!(
                    "layer {}/{count} ({}) has media type {:?}, which isola cannot unpack (it takes tar, tar+gzip and tar+zstd layers)",
                    i + 1,
                    l.digest(),
                    l.media_type().to_string()
                ),
            )
        })?;
        let member = format!("blobs/sha256/{}", l.digest().digest());
        if !src.exists(&member) {
            return Err(invalid(
                label,
                format!(
                    "layer {}/{count}: the blob {} is missing from {}",
                    i + 1,
                    l.digest(),
                    src.path().display()
                ),
            ));
        }
        layers.push(LayerSrc {
            member,
            digest: Some(l.digest().clone()),
            size: Some(l.size()),
            compression: Some(compression),
            media_type: Some(l.media_type().clone()),
        });
    }
    Ok(Candidate {
        manifest: Some(manifest_bytes),
        config,
        layers,
        names: name.into_iter().collect(),
    })
}

fn invalid(label: &str, what: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        image: label.to_string(),
        what: what.into(),
    }
}

pub(crate) fn is_index(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageIndex) || matches!(mt, MediaType::Other(s) if s == DOCKER_LIST)
}

pub(crate) fn platform_matches(desc: &Descriptor, want: &Platform) -> bool {
    match desc.platform() {
        None => true,
        Some(p) => {
            p.os().to_string() == want.os
                && p.architecture().to_string() == want.architecture
                && (want.variant.is_none() || p.variant().as_deref() == want.variant.as_deref())
        }
    }
}

/// The image manifests `desc` leads to for `platform`, following nested
/// indexes (bounded, as a malicious index may point at itself).
fn manifests_for(
    src: &Source,
    label: &str,
    desc: &Descriptor,
    platform: &Platform,
    depth: usize,
) -> Result<Vec<Descriptor>, ImageError> {
    if !platform_matches(desc, platform) {
        return Ok(Vec::new());
    }
    if !is_index(desc.media_type()) {
        return Ok(vec![desc.clone()]);
    }
    if depth >= 4 {
        return Err(invalid(label, "image indexes are nested more than 4 deep"));
    }
    let raw = read_verified(src, label, "index", desc.digest(), Some(desc.size()))?;
    let nested: ImageIndex = serde_json::from_slice(&raw).map_err(|e| {
        invalid(
            label,
            format!("the index {} is not valid: {e}", desc.digest()),
        )
    })?;
    let mut out = Vec::new();
    for d in nested.manifests() {
        out.extend(manifests_for(src, label, d, platform, depth + 1)?);
    }
    Ok(out)
}
