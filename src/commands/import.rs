//! `isola import PATH`: bring an image archive or layout into the store.

use anyhow::Result;
use isola_core::image::{digest, ImageStore, ImportOptions, Platform};

use crate::cli::ImportArgs;
use crate::output;

pub fn run(store: &ImageStore, args: &ImportArgs) -> Result<()> {
    let platform: Platform = args.platform.parse()?;
    let opts = ImportOptions {
        name: args.name.clone(),
        reference: args.reference.clone(),
        platform,
    };
    // The store's errors already name the archive and the image.
    let imported = store.import(&args.path, &opts)?;
    if args.json.json {
        return output::json(&serde_json::json!({
            "name": imported.name.to_string(),
            "digest": imported.digest.to_string(),
            "layers_unpacked": imported.layers_unpacked,
            "layers_reused": imported.layers_reused,
        }));
    }
    eprintln!(
        "imported {} ({}): {} layer(s) unpacked, {} already stored",
        imported.name,
        digest::short(&imported.digest),
        imported.layers_unpacked,
        imported.layers_reused
    );
    Ok(())
}
