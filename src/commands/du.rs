//! `isola du`: disk used per image, the part shared with other images, and
//! the store's real total, so that layer sharing can be seen.

use anyhow::Result;
use isola_core::image::{digest, usage, ImageStore};

use crate::output;

pub fn run(store: &ImageStore, json: bool) -> Result<()> {
    let u = usage::usage(store)?;
    if json {
        return output::json(&u);
    }
    let rows: Vec<Vec<String>> = u
        .images
        .iter()
        .map(|i| {
            vec![
                i.names.join(", "),
                digest::short(&i.digest).to_string(),
                i.layers.to_string(),
                output::size(i.size),
                output::size(i.shared),
                output::size(i.unique),
            ]
        })
        .collect();
    output::table(
        &["IMAGE", "IMAGE ID", "LAYERS", "SIZE", "SHARED", "UNIQUE"],
        &rows,
    );
    println!();
    println!("images add up to   {}", output::size(u.sum_of_images));
    println!(
        "store holds        {} (layers shared by several images are stored once)",
        output::size(u.store_total)
    );
    Ok(())
}
