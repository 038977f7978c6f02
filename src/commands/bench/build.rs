//! `isola bench build`: a two-stage Dockerfile built by isola and by
//! buildah from the same base, cold and fully cached, run by run in turn.

use anyhow::{bail, Context, Result};
use isola_bench::build::{self, BuildPlan};
use isola_core::Root;

use super::{peer_list, BuildArgs};

pub fn run(root: &Root, args: &BuildArgs) -> Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 2 } else { 10 });
    let warmup = args.warmup.unwrap_or(if args.quick { 0 } else { 1 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (wanted, auto) = peer_list(&args.peers)?;
    let (buildah, not_run) = build::peers(&wanted, auto)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("isola bench build runs RUN steps in containers, which needs root; run it as root");
    }
    let work = super::work_dir(root)?;
    let plan = BuildPlan {
        isola: std::env::current_exe().context("finding isola's own binary")?,
        work: work.path().to_path_buf(),
        buildah,
        runs,
        warmup,
    };
    eprintln!(
        "isola bench build: {}{}, {runs} runs each after {warmup} warm-up{}",
        build::workload::LABEL,
        if buildah { ", against buildah" } else { "" },
        if args.quick { " (--quick)" } else { "" }
    );
    let outcome = build::run(&plan, &mut super::redraw);
    // Every store of every run: removed at once, after the runs.
    drop(work);
    isola_bench::interrupt::end_if_interrupted();
    eprintln!();
    let results = super::report_dimension(
        "build",
        args.json,
        outcome.subjects,
        [not_run, outcome.errors],
        |r| r.build = outcome.build,
    )?;
    if results.build.is_none() {
        bail!("isola bench build could not run: see the errors above");
    }
    Ok(())
}
