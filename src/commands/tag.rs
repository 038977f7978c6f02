//! `isola tag SOURCE TARGET`: one more name for an image.

use anyhow::Result;
use isola_core::image::ImageStore;

pub fn run(store: &ImageStore, source: &str, target: &str) -> Result<()> {
    let name = store.tag(source, target)?;
    eprintln!("tagged {source} as {name}");
    Ok(())
}
