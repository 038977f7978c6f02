//! `isola bench oci`: isola-runtime against runc and crun on one
//! `/bin/true` bundle, through runc's command line and through containerd,
//! run by run in turn.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use isola_bench::oci::{self, view, OciPlan, YOUKI_VS_CRUN};
use isola_bench::report::fmt_ratio;
use isola_bench::results::{Oci, RunError};
use isola_core::Root;

use super::{peer_list, OciArgs};

pub fn run(root: &Root, args: &OciArgs) -> Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 20 });
    let warmup = args.warmup.unwrap_or(if args.quick { 1 } else { 3 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let runtime = match &args.runtime {
        Some(p) => std::path::absolute(p).context("finding --runtime's absolute path")?,
        None => beside_me()?,
    };
    if !runtime.is_file() {
        bail!(
            "no isola-runtime at {}: build it (cargo build --bin isola-runtime) or give --runtime PATH",
            runtime.display()
        );
    }
    let (wanted, auto) = peer_list(&args.peers)?;
    let (peers, not_run) = oci::peers(&wanted, auto)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("isola bench oci creates containers, which needs root; run it as root");
    }
    // Before any thread starts: a new mount namespace needs one thread.
    let cgroup_view = hide_cgroup2_for_crun(&peers, args.host_cgroups);
    let work = super::work_dir(root)?;
    let plan = OciPlan {
        runtime,
        work: work.path().to_path_buf(),
        peers,
        runs,
        warmup,
        cgroup_view,
    };
    let mut against: Vec<&str> = plan.peers.runtimes.iter().map(String::as_str).collect();
    if plan.peers.containerd {
        against.push("containerd");
    }
    eprintln!(
        "isola bench oci: {} against {}, {runs} runs each after {warmup} warm-up{}",
        plan.runtime.display(),
        if against.is_empty() {
            "nothing".to_string()
        } else {
            against.join(", ")
        },
        if args.quick { " (--quick)" } else { "" }
    );
    let outcome = oci::run(&plan, &mut super::redraw);
    // The bundle, the store and every runtime's state: removed at once.
    drop(work);
    isola_bench::interrupt::end_if_interrupted();
    eprintln!();
    let results = super::report_dimension(
        "oci",
        args.json,
        outcome.subjects,
        [not_run, outcome.errors],
        |r| r.oci = outcome.oci,
    )?;
    let Some(o) = &results.oci else {
        bail!("isola bench oci could not run: see the errors above");
    };
    eprintln!("\n{}", verdict(o, &results.errors));
    if o.create_start_delete
        .iter()
        .all(|s| s.subject != oci::runtimes::ISOLA)
    {
        bail!("isola-runtime did not run: see the errors above");
    }
    Ok(())
}

/// Where crun is to run on a host it refuses (a hybrid whose cgroup2 tree
/// holds controllers): that tree hidden in a mount namespace of this
/// process's own, for every runtime and containerd alike, so that the
/// runs stay comparable. The view, or None where nothing was hidden.
fn hide_cgroup2_for_crun(peers: &oci::Peers, host_cgroups: bool) -> Option<String> {
    if host_cgroups || !peers.runtimes.iter().any(|r| r == "crun") || !view::crun_refuses() {
        return None;
    }
    match view::hide_cgroup2() {
        Ok(()) => {
            eprintln!("isola bench oci: {}", view::HIDDEN);
            Some(view::HIDDEN.to_string())
        }
        Err(e) => {
            eprintln!("isola bench oci: could not hide cgroup2 from crun ({e}); it will refuse");
            None
        }
    }
}

/// isola-runtime beside this isola, as `cargo build` and `make release`
/// put it.
fn beside_me() -> Result<PathBuf> {
    let me = std::env::current_exe().context("finding isola's own binary")?;
    Ok(me.with_file_name("isola-runtime"))
}

/// The sentence people read: isola-runtime's median and its paired ratio
/// to each peer, or why a peer has none.
fn verdict(o: &Oci, errors: &[RunError]) -> String {
    let Some(isola) = o
        .create_start_delete
        .iter()
        .find(|s| s.subject == oci::runtimes::ISOLA)
    else {
        return "isola-runtime: no figures".into();
    };
    let mut parts = vec![format!(
        "isola-runtime create+start+delete: {:.2} ms median",
        isola.summary.median
    )];
    for peer in ["runc", "crun"] {
        match isola.paired.iter().find(|(o, _)| o == peer) {
            Some((_, r)) => parts.push(format!("{} {peer} (paired)", fmt_ratio(*r))),
            None => {
                if let Some(e) = errors.iter().find(|e| e.subject == peer) {
                    parts.push(format!("{peer} {}", e.message));
                }
            }
        }
    }
    format!(
        "{}. Goal: at most 1.00x crun; youki's published figure is {YOUKI_VS_CRUN}x crun.",
        parts.join("; ")
    )
}
