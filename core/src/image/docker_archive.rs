//! Reading a docker-archive (what `docker save` and `skopeo copy ...
//! docker-archive:` write): manifest.json names the config and the layer
//! tars; there is no OCI manifest, so one is written at import.

use serde::Deserialize;

use super::candidate::{read_small, verify, Candidate, LayerSrc};
use super::digest;
use super::error::ImageError;
use super::source::Source;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub fn is_archive(src: &Source) -> bool {
    src.exists("manifest.json")
}

pub fn candidate(
    src: &Source,
    label: &str,
    want_ref: Option<&str>,
) -> Result<Candidate, ImageError> {
    let bad = |why: String| ImageError::BadSource {
        path: src.path().to_path_buf(),
        why,
    };
    let raw = read_small(src, "manifest.json", "manifest")?;
    let mut entries: Vec<Entry> = serde_json::from_slice(&raw).map_err(|e| {
        bad(format!(
            "manifest.json is not a valid docker-archive manifest: {e}"
        ))
    })?;
    let all_tags: Vec<String> = entries
        .iter()
        .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
        .collect();
    let entry = match want_ref {
        Some(want) => {
            let pos = entries.iter().position(|e| {
                e.repo_tags
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == want || short_name(t) == want))
            });
            match pos {
                Some(i) => entries.swap_remove(i),
                None => {
                    return Err(bad(format!(
                        "it holds no image named {want:?} (it holds: {})",
                        all_tags.join(", ")
                    )))
                }
            }
        }
        None if entries.len() == 1 => entries.remove(0),
        None if entries.is_empty() => return Err(bad("manifest.json lists no image".into())),
        None => {
            return Err(bad(format!(
                "it holds several images ({}); choose one with --ref",
                all_tags.join(", ")
            )))
        }
    };

    let config = read_small(src, &entry.config, "config")?;
    // Members named after their digest (`<hex>.json`, `blobs/sha256/<hex>`)
    // are checked against it; legacy `<id>/layer.tar` names say nothing.
    if let Some(want) = digest_in_name(&entry.config) {
        verify(label, "config", &want, None, &config)?;
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (i, member) in entry.layers.iter().enumerate() {
        if !src.exists(member) {
            return Err(ImageError::Invalid {
                image: label.to_string(),
                what: format!(
                    "layer {}/{}: {member} is missing from {}",
                    i + 1,
                    entry.layers.len(),
                    src.path().display()
                ),
            });
        }
        layers.push(LayerSrc {
            member: member.clone(),
            digest: digest_in_name(member).filter(|_| member.starts_with("blobs/")),
            size: None,
            compression: None,
            media_type: None,
        });
    }
    Ok(Candidate {
        manifest: None,
        config,
        layers,
        names: entry.repo_tags.unwrap_or_default(),
    })
}

/// `docker.io/library/busybox:latest` is what people call `busybox:latest`.
fn short_name(tag: &str) -> &str {
    tag.strip_prefix("docker.io/library/")
        .or_else(|| tag.strip_prefix("docker.io/"))
        .unwrap_or(tag)
}

pub fn normalise_tag(tag: &str) -> String {
    short_name(tag).to_string()
}

fn digest_in_name(member: &str) -> Option<oci_spec::image::Digest> {
    let file = member.rsplit('/').next()?;
    let hex = file.strip_suffix(".json").unwrap_or(file);
    digest::parse(&format!("sha256:{hex}")).ok()
}
