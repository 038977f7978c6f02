//! `isola image default`: make sure the default image exists.

use anyhow::Result;
use isola_core::image::{default_image, digest, ImageStore};

pub fn run(store: &ImageStore, rebuild: bool) -> Result<()> {
    let image = if rebuild {
        default_image::build(store)?;
        store.get(default_image::NAME)?
    } else {
        default_image::ensure(store)?
    };
    eprintln!(
        "{} is {}",
        default_image::NAME,
        digest::short(&image.digest)
    );
    Ok(())
}
