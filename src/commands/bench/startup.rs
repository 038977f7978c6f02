//! `isola bench startup`: start-to-exit time of /bin/true in a container,
//! against the container peers installed here.

use anyhow::{bail, Context, Result};
use isola_bench::peers;
use isola_bench::startup::Contender;
use isola_core::image::{default_image, ImageStore};
use isola_core::Root;

use super::timing::{measure, print_results};
use super::{isola_cli, peer_list, StartupArgs};

pub fn run(root: &Root, args: &StartupArgs) -> Result<()> {
    if args.backend != "container" {
        bail!("only --backend container can be measured here; `isola bench` measures both");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let store = ImageStore::open(root.clone())?;
    let image = default_image::get(&store, &args.image)?;
    let work = tempfile::Builder::new()
        .prefix("isola-bench-")
        .tempdir_in(root.tmp())
        .context("creating a work directory")?;
    let rootfs = work.path().join("bundle/rootfs");
    std::fs::create_dir_all(&rootfs)?;
    store.export(&image, &rootfs)?;

    let isola = isola_cli(root)?;
    let mut contenders = vec![Contender::new(
        "isola",
        isola.argv(&["run", "--rm", &args.image, "/bin/true"]),
    )];
    let (wanted, auto) = peer_list(&args.peers)?;
    let wanted: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|p| peers::CONTAINER_PEERS.contains(p))
        .collect();
    contenders.extend(
        peers::container_peers(&wanted, auto, &rootfs, work.path())?
            .into_iter()
            .map(|(_, c)| c),
    );
    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "floor", "VS FLOOR", args.json)
}
