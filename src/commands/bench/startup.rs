//! `isola bench startup`: start-to-exit time of /bin/true in a container,
//! against the container peers installed here.

use anyhow::{bail, Context, Result};
use isola_bench::lifecycle::podman::Podman;
use isola_bench::peers;
use isola_bench::startup::{self, Contender};
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
    // Dropped last: podman's containers and cgroups go with it.
    let mut podman = None;
    if let Some(net) = &args.network {
        contenders.push(Contender::new(
            format!("isola --network {net}"),
            isola.argv(&["run", "--rm", "--network", net, &args.image, "/bin/true"]),
        ));
        if peers::found("podman") && peers::found("conmon") {
            let p = Podman::new(&work.path().join("podman")).context("configuring podman")?;
            for mode in ["none", "bridge"] {
                contenders.push(Contender::new(
                    format!("podman --network {mode}"),
                    p.run_and_remove(
                        &format!("isola-bench-{mode}"),
                        mode,
                        &rootfs,
                        &["/bin/true"],
                    ),
                ));
            }
            podman = Some(p);
        }
    }
    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "floor", "VS FLOOR", args.json)?;
    if args.network.is_some() {
        for (none, net) in [
            ("isola", "isola --network"),
            ("podman --network none", "podman --network bridge"),
        ] {
            let find = |name: &str| {
                results
                    .iter()
                    .find(|r| r.name.starts_with(name) && r.error.is_none())
            };
            let (Some(a), Some(b)) = (find(none), find(net)) else {
                continue;
            };
            if let Some(d) = startup::median(
                &b.ms
                    .iter()
                    .zip(&a.ms)
                    .map(|(b, a)| b - a)
                    .collect::<Vec<_>>(),
            ) {
                eprintln!(
                    "{}: {d:+.2} ms over {} (median of the paired differences)",
                    b.name, a.name
                );
            }
        }
    }
    drop(podman);
    Ok(())
}
