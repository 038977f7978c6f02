//! `isola ps`, `isola rm` and `isola prune`: the sandboxes kept on disk
//! (detached ones, and those run without `--rm`), their removal, and the
//! cleaning of those whose isola died.

use anyhow::{bail, Context, Result};
use isola_core::instance::{self, State, Status};
use isola_core::Root;

use crate::cli::PsArgs;
use crate::output;
use crate::shim::client;
use crate::shim::wire::Request;

pub fn ps(root: &Root, args: &PsArgs) -> Result<()> {
    let mut filters = Vec::new();
    for f in &args.filter {
        match f.split_once('=') {
            Some((key @ ("status" | "name" | "backend" | "id"), value)) => {
                filters.push((key, value.to_string()))
            }
            _ => bail!("unknown --filter {f:?}: use status=, name=, backend= or id="),
        }
    }
    let states: Vec<State> = instance::list(root)
        .context("listing sandboxes")?
        .into_iter()
        .filter(|s| {
            args.all
                || !filters.is_empty()
                || s.status == Status::Running
                || s.status == Status::Restarting
        })
        .filter(|s| {
            filters.iter().all(|(key, value)| match *key {
                "status" => s.status.to_string() == *value,
                "name" => s
                    .name
                    .as_deref()
                    .is_some_and(|n| n.contains(value.as_str())),
                "backend" => s.backend == *value,
                _ => s.id.starts_with(value.as_str()),
            })
        })
        .collect();
    if args.json.json {
        return output::json(&states);
    }
    if args.quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(());
    }
    let now = instance::now();
    // Networks are read once for every row (a missing one shows no ports).
    let members = isola_core::network::NetworkStore::new(root)
        .members()
        .unwrap_or_default();
    let ports = |id: &str| {
        let cells: Vec<String> = members
            .iter()
            .filter(|(_, l)| l.instance == id)
            .flat_map(|(_, l)| l.ports.iter().map(|p| p.to_string()))
            .collect();
        cells.join(", ")
    };
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.name.clone().unwrap_or_default(),
                s.image.clone(),
                s.backend.clone(),
                command_cell(&s.command),
                format!("{} ago", ago(now.saturating_sub(s.created))),
                status_cell(s, now),
                ports(&s.id),
            ]
        })
        .collect();
    output::table(
        &[
            "ID", "NAME", "IMAGE", "BACKEND", "COMMAND", "CREATED", "STATUS", "PORTS",
        ],
        &rows,
    );
    Ok(())
}

/// The command, quoted and cut as docker shows it.
fn command_cell(args: &[String]) -> String {
    let joined = args.join(" ");
    let cut: String = joined.chars().take(20).collect();
    if cut.len() < joined.len() {
        format!("\"{cut}…\"")
    } else {
        format!("\"{cut}\"")
    }
}

/// docker's STATUS: `Up 3 minutes`, `Exited (42) 2 minutes ago`, `Created`.
pub fn status_cell(s: &State, now: u64) -> String {
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => {
            format!(
                "Up {}",
                ago(now.saturating_sub(s.started.unwrap_or(s.created)))
            )
        }
        Status::Restarting => format!("Restarting ({})", s.exit_code.unwrap_or(0)),
        Status::Exited => match (s.exit_code, s.finished) {
            (Some(c), Some(f)) => format!("Exited ({c}) {} ago", ago(now.saturating_sub(f))),
            (Some(c), None) => format!("Exited ({c})"),
            _ => "Exited".into(),
        },
        Status::Dead => "Dead (its isola is gone; `isola rm -f` cleans it)".into(),
    }
}

/// A duration for people, as docker words it.
pub fn ago(secs: u64) -> String {
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 48 * 3600 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

pub fn rm(root: &Root, ids: &[String], force: bool) -> Result<i32> {
    let mut failed = false;
    for given in ids {
        match rm_one(root, given, force) {
            Ok(id) => println!("{id}"),
            Err(e) => {
                eprintln!("isola: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 125 } else { 0 })
}

fn rm_one(root: &Root, given: &str, force: bool) -> Result<String> {
    let state = instance::find(root, given)?;
    // A created sandbox never ran: removing it stops nothing, as docker's.
    if force || state.status == Status::Created {
        if let Some(conn) = client::connect_to(root, &state)? {
            // Killed and torn down, as docker rm -f; the shim then ends.
            let _ = conn.ask(&Request::End, &[]);
            super::lifecycle::wait_gone(root, &state, &conn)?;
        }
    } else if state.status.is_active()
        && state.status != Status::Dead
        && instance::is_live(&root.dir().join("instances").join(&state.id))
    {
        bail!(
            "sandbox {} is {}: stop it first, or remove it with rm -f",
            state.id,
            state.status
        );
    } else {
        // `start -a` and `wait` return once the end is known, while its
        // shim may still be letting go: docker's rm right after works.
        super::lifecycle::wait_released(root, &state.id)?;
    }
    if state.status == Status::Dead && !force {
        bail!(
            "sandbox {}'s isola is gone and it may have left processes or mounts: remove it with rm -f",
            state.id
        );
    }
    let removed = instance::remove(root, &state.id)?;
    crate::backends::cleanup(root.dir(), &removed.id, Some(&removed.backend))?;
    Ok(removed.id)
}

/// `isola prune`: remove every sandbox that is over — kept ones that exited,
/// and those whose isola died (killed with SIGKILL) with what they left
/// outside their directory.
pub fn prune(root: &Root) -> Result<()> {
    for stale in instance::stale(root).context("listing sandboxes")? {
        crate::backends::cleanup(root.dir(), &stale.id, stale.backend.as_deref())?;
        isola_core::fsutil::remove_any(&stale.dir)
            .with_context(|| format!("removing sandbox {}", stale.id))?;
        if let Some(name) = &stale.name {
            instance::release_name(root, name, &stale.id);
        }
        println!("{}", stale.id);
    }
    // Addresses, ports and rules whose sandbox died without letting go.
    for id in isola_core::network::NetworkStore::new(root)
        .prune()
        .context("freeing the network addresses of sandboxes that are gone")?
    {
        eprintln!("freed the network address of sandbox {id}");
    }
    isola_core::scratch::prune(root);
    crate::backends::sweep_dead_builds(root)?;
    let store =
        isola_core::image::ImageStore::open(root.clone()).context("opening the image store")?;
    let removed = store.prune().context("collecting what no image uses")?;
    if removed.blobs_removed + removed.layers_removed > 0 {
        eprintln!(
            "collected {} blob(s), {} layer(s), {} freed",
            removed.blobs_removed,
            removed.layers_removed,
            crate::output::size(removed.bytes_freed)
        );
    }
    Ok(())
}
