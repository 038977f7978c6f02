//! `isola bench lifecycle`: a detached sandbox's life alone (`run -d`,
//! `exec`, the shim's memory) against podman, containerd and runc, as the
//! whole benchmark measures it with the container backend.

use anyhow::{bail, Context, Result};
use isola_bench::lifecycle::{self, LifecyclePlan};
use isola_core::image::{default_image, ImageStore};
use isola_core::Root;

use super::{isola_cli, peer_list, LifecycleArgs};

pub fn run(root: &Root, args: &LifecycleArgs) -> Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 20 });
    let warmup = args.warmup.unwrap_or(if args.quick { 1 } else { 3 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (wanted, auto) = peer_list(&args.peers)?;
    let (peers, not_run) = lifecycle::peers(&wanted, auto)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("isola bench lifecycle starts containers, which needs root; run it as root");
    }
    let store = ImageStore::open(root.clone())?;
    let image = default_image::get(&store, &args.image)?;
    let work = tempfile::Builder::new()
        .prefix("isola-bench-")
        .tempdir_in(root.tmp())
        .context("creating a work directory")?;
    let rootfs = work.path().join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    store.export(&image, &rootfs)?;
    let plan = LifecyclePlan {
        isola: isola_cli(root)?,
        flags: vec!["--backend".into(), "container".into()],
        image: args.image.clone(),
        rootfs,
        work: work.path().to_path_buf(),
        peers,
        runs,
        warmup,
        // The lifecycle alone times the container backend and its peers.
        vm: None,
    };
    eprintln!(
        "isola bench lifecycle: {} with {} peer(s), {runs} runs each after {warmup} warm-up{}",
        args.image,
        plan.peers.len(),
        if args.quick { " (--quick)" } else { "" }
    );
    let outcome = lifecycle::run(&plan, &mut super::redraw);
    if lifecycle::interrupted() {
        drop(work);
        lifecycle::end_if_interrupted();
    }
    eprintln!();
    super::report_dimension(
        "lifecycle",
        args.json,
        outcome.subjects,
        [not_run, outcome.errors],
        |r| r.lifecycle = Some(outcome.lifecycle),
    )
    .map(|_| ())
}
