//! `isola bench --compare OLD NEW`: the change of every figure between two
//! runs' results.json.

use std::path::Path;

use anyhow::{Context, Result};
use isola_bench::compare as cmp;

pub fn run(old: &Path, new: &Path) -> Result<()> {
    let read = |p: &Path| -> Result<serde_json::Value> {
        let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a results.json of isola bench", p.display()))
    };
    let changes = cmp::compare(&read(old)?, &read(new)?).context("comparing the two results")?;
    print!("{}", cmp::format(&changes));
    Ok(())
}
