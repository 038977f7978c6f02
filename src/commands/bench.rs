//! `isola bench startup`: start-to-exit of `/bin/true` in the default image,
//! isola against the peers installed here, interleaved run by run.

use std::io::Write;

use anyhow::{bail, Context, Result};
use isola_bench::startup::{self, Contender};
use isola_core::image::{default_image, ImageStore};
use isola_core::Root;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Start-to-exit time of /bin/true (median, p90) and peak RSS, with peers
    Startup(StartupArgs),
}

#[derive(clap::Args, Debug)]
pub struct StartupArgs {
    /// Isolation level to measure
    #[arg(long, default_value = "container")]
    pub backend: String,
    /// Image to start (default: the default image)
    #[arg(long, default_value = default_image::NAME)]
    pub image: String,
    /// Measured runs per contender
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Unmeasured runs first
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Peers: auto (all found), none, or a list of floor,runc,crun
    #[arg(long, default_value = "auto")]
    pub peers: String,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(root: &Root, cmd: &BenchCommand) -> Result<()> {
    let BenchCommand::Startup(args) = cmd;
    if args.backend != "container" {
        bail!("only --backend container can be measured yet");
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

    let exe = std::env::current_exe().context("finding isola's own binary")?;
    let mut contenders = vec![Contender {
        name: "isola".into(),
        argv: vec![
            exe.display().to_string(),
            "--root".into(),
            root.dir().display().to_string(),
            "run".into(),
            "--rm".into(),
            args.image.clone(),
            "/bin/true".into(),
        ],
    }];
    let wanted: Vec<&str> = match args.peers.as_str() {
        "auto" => vec!["floor", "runc", "crun"],
        "none" => vec![],
        list => list.split(',').map(str::trim).collect(),
    };
    for peer in wanted {
        match peer {
            "floor" if found("unshare") && found("chroot") => contenders.push(Contender {
                name: "floor (unshare+chroot)".into(),
                argv: [
                    "unshare",
                    "-fpmiun",
                    &format!("--mount-proc={}/proc", rootfs.display()),
                    "chroot",
                ]
                .iter()
                .map(|s| s.to_string())
                .chain([rootfs.display().to_string(), "/bin/true".to_string()])
                .collect(),
            }),
            "runc" | "crun" if found(peer) => {
                // Each runtime's own bundle (its config.json) on the shared rootfs.
                let bundle = work.path().join(peer);
                std::fs::create_dir_all(&bundle)?;
                isola_bench::bundle::write_config(peer, &bundle, &rootfs, &["/bin/true"])?;
                contenders.push(Contender {
                    name: peer.into(),
                    argv: vec![
                        peer.into(),
                        "run".into(),
                        "--bundle".into(),
                        bundle.display().to_string(),
                        format!("isola-bench-{peer}"),
                    ],
                });
            }
            "floor" | "runc" | "crun" if args.peers != "auto" => {
                bail!("peer {peer} is not installed on this host")
            }
            "floor" | "runc" | "crun" => {}
            other => bail!("unknown peer {other:?}: use floor, runc or crun"),
        }
    }

    eprintln!(
        "measuring {} contender(s), {} runs each after {} warm-up...",
        contenders.len(),
        args.runs,
        args.warmup
    );
    let results = startup::measure(&contenders, args.runs, args.warmup, |done| {
        eprint!("\r  {done}/{}", args.runs);
        let _ = std::io::stderr().flush();
    });
    eprintln!();
    let floor = results
        .iter()
        .find(|r| r.name.starts_with("floor") && r.error.is_none());
    let mut rows = Vec::new();
    for r in &results {
        if let Some(s) = r.summary() {
            rows.push(vec![
                r.name.clone(),
                format!("{:.2}", s.min),
                format!("{:.2}", s.median),
                format!("{:.2}", s.p90),
                format!("{:.2}", s.max),
                r.peak_rss_kib
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))
                    .unwrap_or_else(|| "-".into()),
                floor
                    .and_then(|f| startup::paired_ratio(r, f))
                    .map(|x| format!("{x:.2}x"))
                    .unwrap_or_default(),
            ]);
        }
    }
    if args.json {
        crate::output::json(&results)?;
    }
    crate::output::table_to(
        &mut std::io::stderr(),
        &[
            "CONTENDER",
            "MIN ms",
            "MEDIAN ms",
            "P90 ms",
            "MAX ms",
            "PEAK RSS MiB",
            "VS FLOOR",
        ],
        &rows,
    );
    for r in results.iter().filter(|r| r.error.is_some()) {
        eprintln!(
            "{} did not run: {}",
            r.name,
            r.error.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

fn found(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}
