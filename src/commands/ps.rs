//! `isola ps` and `isola rm`: the sandboxes kept on disk (those run without
//! `--rm`), and their removal.

use anyhow::{bail, Context, Result};
use isola_core::instance::{self, State, Status};
use isola_core::Root;

use crate::output;

pub fn ps(root: &Root, json: bool) -> Result<()> {
    let states = instance::list(root).context("listing sandboxes")?;
    if json {
        return output::json(&states);
    }
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s: &State| {
            vec![
                s.id.clone(),
                s.image.clone(),
                s.backend.clone(),
                match (s.status, s.exit_code) {
                    (Status::Exited, Some(c)) => format!("exited ({c})"),
                    (st, _) => st.to_string(),
                },
            ]
        })
        .collect();
    output::table(&["ID", "IMAGE", "BACKEND", "STATUS"], &rows);
    Ok(())
}

pub fn rm(root: &Root, ids: &[String]) -> Result<()> {
    let mut failed = false;
    for given in ids {
        match instance::remove(root, given) {
            Ok(id) => {
                cleanup(root, &id, None)?;
                println!("{id}")
            }
            Err(e) => {
                eprintln!("isola: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!("some sandboxes were not removed");
    }
    Ok(())
}

/// `isola prune`: remove every sandbox that is over — kept ones that exited,
/// and those whose isola died (killed with SIGKILL) with what they left
/// outside their directory.
pub fn prune(root: &Root) -> Result<()> {
    for stale in instance::stale(root).context("listing sandboxes")? {
        cleanup(root, &stale.id, stale.backend.as_deref())?;
        isola_core::fsutil::remove_any(&stale.dir)
            .with_context(|| format!("removing sandbox {}", stale.id))?;
        println!("{}", stale.id);
    }
    isola_core::scratch::prune(root);
    Ok(())
}

/// A `--rm` sandbox that died left no state, so which backend ran it is not
/// known: every backend clears what it may have left under that ID.
fn cleanup(root: &Root, id: &str, ran_on: Option<&str>) -> Result<()> {
    for backend in crate::backends::all(root.dir()) {
        if ran_on.is_none_or(|name| name == backend.name()) {
            backend.cleanup(id)?;
        }
    }
    Ok(())
}
