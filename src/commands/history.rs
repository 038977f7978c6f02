//! `isola history IMAGE`: the steps that made an image, newest first, each
//! with the size of the layer it added (like `docker history`).

use anyhow::Result;
use isola_core::image::{default_image, ImageStore};
use serde::Serialize;

use crate::output;

#[derive(Serialize)]
struct Step {
    created: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
    /// The layer this step added, if it added one.
    layer: Option<String>,
    size: u64,
}

pub fn run(store: &ImageStore, given: &str, json: bool) -> Result<()> {
    let image = default_image::get(store, given)?;
    let layers = store.layers(&image);
    let mut next_layer = layers.iter();
    let mut steps: Vec<Step> = Vec::new();
    for h in image.config.history().iter().flatten() {
        let layer = if h.empty_layer().unwrap_or(false) {
            None
        } else {
            next_layer.next()
        };
        steps.push(Step {
            created: h.created().clone(),
            created_by: h.created_by().clone(),
            comment: h.comment().clone(),
            layer: layer.map(|l| l.diff_id.to_string()),
            size: layer
                .and_then(|l| l.meta.as_ref())
                .map(|m| m.content_bytes)
                .unwrap_or(0),
        });
    }
    // Layers the history does not mention (some tools write none) still show.
    for l in next_layer {
        steps.push(Step {
            created: None,
            created_by: None,
            comment: None,
            layer: Some(l.diff_id.to_string()),
            size: l.meta.as_ref().map(|m| m.content_bytes).unwrap_or(0),
        });
    }
    steps.reverse();
    if json {
        return output::json(&steps);
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.created.clone().unwrap_or_else(|| "-".into()),
                s.created_by.clone().unwrap_or_else(|| "-".into()),
                output::size(s.size),
                s.comment.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows);
    Ok(())
}
