//! `isola inspect`: everything known about one sandbox (its state and the
//! arguments it was made with) or one image, as JSON.

use anyhow::Result;
use isola_core::image::{default_image, digest, ImageStore};
use serde_json::json;

use crate::output;

pub fn run(store: &ImageStore, given: &str) -> Result<()> {
    let image = default_image::get(store, given)?;
    let layers: Vec<_> = store
        .layers(&image)
        .iter()
        .map(|l| {
            json!({
                "digest": l.digest.to_string(),
                "diff_id": l.diff_id.to_string(),
                "media_type": l.media_type,
                "compressed_size": l.compressed_size,
                "size": l.meta.as_ref().map(|m| m.content_bytes),
                "entries": l.meta.as_ref().map(|m| m.entries),
                "path": store.root().layer_dir(l.diff_id.digest()),
            })
        })
        .collect();
    let size: u64 = layers.iter().filter_map(|l| l["size"].as_u64()).sum();
    output::json(&json!({
        "id": digest::short(&image.digest),
        "digest": image.digest.to_string(),
        "names": image.names,
        "config_digest": image.config_digest.to_string(),
        "architecture": image.config.architecture().to_string(),
        "os": image.config.os().to_string(),
        "created": image.config.created(),
        "config": image.config.config(),
        "size": size,
        "layers": layers,
        "history": image.config.history(),
    }))
}

/// A sandbox's state.json, with the `isola run` arguments it was made with.
pub fn sandbox(root: &isola_core::Root, state: &isola_core::instance::State) -> Result<()> {
    let dir = root.dir().join("instances").join(&state.id);
    let config: Option<crate::shim::Config> = std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut value = serde_json::to_value(state)?;
    value["args"] = json!(config.map(|c| c.args));
    // Where it is on its networks while it runs, as docker inspect's
    // NetworkSettings tell it.
    let members = isola_core::network::NetworkStore::new(root)
        .members()
        .unwrap_or_default();
    let networks: serde_json::Map<String, serde_json::Value> = members
        .into_iter()
        .filter(|(_, l)| l.instance == state.id)
        .map(|(n, l)| {
            (
                n.name.clone(),
                json!({
                    "ip": l.ip,
                    "prefix": n.subnet.prefix(),
                    "gateway": n.gateway,
                    "bridge": n.bridge,
                    "names": l.names,
                    "ports": l.ports,
                }),
            )
        })
        .collect();
    value["networks"] = json!(networks);
    value["dir"] = json!(dir);
    output::json(&value)
}
