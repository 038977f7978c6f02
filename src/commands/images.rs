//! `isola images`: the stored images, one row per name.

use anyhow::Result;
use isola_core::image::{digest, ImageStore};
use serde::Serialize;

use crate::output;

#[derive(Serialize)]
struct Row {
    name: String,
    id: String,
    digest: String,
    layers: usize,
    /// Uncompressed content bytes of all layers.
    size: u64,
    created: Option<String>,
    /// The digest it was pulled by, when it came from a registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    repo_digest: Option<String>,
}

pub fn run(store: &ImageStore, json: bool, digests: bool) -> Result<()> {
    let mut rows = Vec::new();
    for image in store.list()? {
        let size = store
            .layers(&image)
            .iter()
            .filter_map(|l| l.meta.as_ref())
            .map(|m| m.content_bytes)
            .sum();
        for name in &image.names {
            rows.push(Row {
                name: name.clone(),
                id: digest::short(&image.digest).to_string(),
                digest: image.digest.to_string(),
                layers: image.manifest.layers().len(),
                size,
                created: image.config.created().clone(),
                repo_digest: store.repo_digest(name).map(|d| d.to_string()),
            });
        }
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        return output::json(&rows);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            // An untagged build is kept under its ID, shown as docker
            // shows a dangling image.
            let shown = if r.name.starts_with("sha256:") {
                "<none>".to_string()
            } else {
                r.name.clone()
            };
            let mut row = vec![shown];
            if digests {
                row.push(r.repo_digest.clone().unwrap_or_else(|| "<none>".into()));
            }
            row.extend([
                r.id.clone(),
                r.layers.to_string(),
                output::size(r.size),
                r.created.clone().unwrap_or_default(),
            ]);
            row
        })
        .collect();
    let header: &[&str] = if digests {
        &["NAME", "DIGEST", "IMAGE ID", "LAYERS", "SIZE", "CREATED"]
    } else {
        &["NAME", "IMAGE ID", "LAYERS", "SIZE", "CREATED"]
    };
    output::table(header, &table);
    Ok(())
}
