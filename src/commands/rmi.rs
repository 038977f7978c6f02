//! `isola rmi IMAGE...`: remove names; the last name takes the image, and
//! blobs and layers no other image uses go with it.

use anyhow::Result;
use isola_core::image::{digest, ImageStore};

use crate::output;

pub fn run(store: &ImageStore, images: &[String], force: bool) -> Result<()> {
    for given in images {
        let removed = store.remove(given, force)?;
        for name in &removed.untagged {
            eprintln!("untagged {name}");
        }
        if let Some(d) = &removed.deleted {
            eprintln!(
                "deleted {} ({} blob(s), {} layer(s), {} freed)",
                digest::short(d),
                removed.blobs_removed,
                removed.layers_removed,
                output::size(removed.bytes_freed)
            );
        }
    }
    Ok(())
}
