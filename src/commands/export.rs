//! `isola export IMAGE DIR`: the image's root filesystem as plain files.

use std::path::Path;

use anyhow::{bail, Context, Result};
use isola_core::image::{default_image, ImageStore};

pub fn run(store: &ImageStore, given: &str, dir: &Path) -> Result<()> {
    let image = default_image::get(store, given)?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; export into a new or empty directory",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", dir.display())),
    }
    store.export(&image, dir)?;
    eprintln!("exported {given} to {}", dir.display());
    Ok(())
}
