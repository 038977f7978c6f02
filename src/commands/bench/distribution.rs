//! `isola bench distribution`: pull and push of a multi-layer image from a
//! registry the benchmark starts, against podman pull and skopeo copy,
//! each run into a fresh store.

use anyhow::{bail, Context, Result};
use isola_bench::distribution::image::{self, Recipe};
use isola_bench::distribution::{self, registry, DistributionPlan};
use isola_core::Root;

use super::{peer_list, DistributionArgs};

/// The synthetic image's first generated layer, MiB: where mmdebstrap is
/// missing, and with --quick.
const SYNTHETIC_MIB: u64 = 64;
const QUICK_MIB: u64 = 1;

pub fn run(root: &Root, args: &DistributionArgs) -> Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 2 } else { 10 });
    let warmup = args.warmup.unwrap_or(if args.quick { 0 } else { 1 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (wanted, auto) = peer_list(&args.peers)?;
    let (peers, not_run) = distribution::peers(&wanted, auto)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("isola bench distribution unpacks images as their owners made them, which needs root; run it as root");
    }
    if !isola_bench::peers::found(registry::PROGRAM) {
        bail!(
            "isola bench distribution serves the image from {}, which is not installed (scripts/setup --registry installs it)",
            registry::PROGRAM
        );
    }
    let recipe = recipe(args)?;
    let work = super::work_dir(root)?;
    let plan = DistributionPlan {
        isola: std::env::current_exe().context("finding isola's own binary")?,
        recipe,
        work: work.path().to_path_buf(),
        peers,
        runs,
        warmup,
    };
    eprintln!(
        "isola bench distribution: {} with {} peer(s), {runs} runs each after {warmup} warm-up{}",
        plan.recipe.label(),
        plan.peers.len(),
        if args.quick { " (--quick)" } else { "" }
    );
    let outcome = distribution::run(&plan, &mut super::redraw);
    // Every run's store, registry storage and directory: removed at once,
    // after the runs (docs/benchmarks.md says why not between them).
    drop(work);
    isola_bench::interrupt::end_if_interrupted();
    eprintln!();
    let results = super::report_dimension(
        "distribution",
        args.json,
        outcome.subjects,
        [not_run, outcome.errors],
        |r| r.distribution = outcome.distribution,
    )?;
    if results.distribution.is_none() {
        bail!("isola bench distribution could not run: see the errors above");
    }
    Ok(())
}

/// `--image`, or what can be made here: Debian where mmdebstrap is
/// installed, else the synthetic image, saying why.
fn recipe(args: &DistributionArgs) -> Result<Recipe> {
    let missing = image::can_build_debian();
    match (args.image.as_deref(), args.quick) {
        (Some("synthetic"), _) | (None, true) => Ok(Recipe::Synthetic {
            mib: if args.quick { QUICK_MIB } else { SYNTHETIC_MIB },
        }),
        (Some("debian"), _) | (None, false) => match missing {
            None => Ok(Recipe::Debian {
                cache: args.cache.clone(),
            }),
            Some(p) if args.image.is_some() => bail!(
                "--image debian is built with {p}, which is not installed (scripts/setup --peers installs it)"
            ),
            Some(p) => {
                eprintln!(
                    "isola bench distribution: {p} is not installed (scripts/setup --peers installs it): a synthetic image instead of Debian's"
                );
                Ok(Recipe::Synthetic { mib: SYNTHETIC_MIB })
            }
        },
        (Some(other), _) => bail!("unknown --image {other:?}: use debian or synthetic"),
    }
}
