//! `isola bench`: the whole comparative benchmark (see bench_suite.rs);
//! `isola bench startup` and `isola bench monitor`: one dimension alone;
//! `isola bench --compare OLD NEW`: what changed between two runs.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use isola_bench::peers;
use isola_bench::sandbox::Isola;
use isola_bench::startup::{self, Contender};
use isola_core::image::{default_image, ImageStore};
use isola_core::Root;

use crate::backends::vm::QEMU;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Image to run; it needs isola-probe at /usr/bin/isola-probe (default:
    /// isola/bench, the default image with isola-probe added)
    pub image: Option<String>,
    /// Isolation levels to measure
    #[arg(long, value_delimiter = ',', default_value = "container,vm")]
    pub backends: Vec<String>,
    /// Peers: auto (every one found here), none, or a list of floor,runc,crun,qemu
    #[arg(long, default_value = "auto")]
    pub peers: String,
    /// Measured startup runs per subject (default 20; 3 with --quick)
    #[arg(long)]
    pub runs: Option<usize>,
    /// Sandboxes started at once for the density figures (default 10; 2 with --quick)
    #[arg(long)]
    pub density: Option<usize>,
    /// Write results.json, the SVG charts and report.html into DIR
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Few runs and short workloads: a check that everything runs, not figures to quote
    #[arg(long)]
    pub quick: bool,
    /// The guest kernel for the VM rows (default: as `isola run --backend vm`)
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest kernels to time to init, as paths or names in isola's kernel
    /// store (default: the VM rows' kernel and the isola-* kernels that
    /// `make kernel` stores)
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub kernels: Option<Vec<String>>,
    /// The test guest for the bare-monitor rows (default: ISOLA_TESTGUEST, else
    /// the `make testguest` build)
    #[arg(long, value_name = "PATH")]
    pub guest: Option<PathBuf>,
    /// Print results.json on stdout too
    #[arg(long)]
    pub json: bool,
    /// Compare two results.json files: the change of every figure
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    pub compare: Option<Vec<PathBuf>>,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Start-to-exit time of /bin/true (median, p90) and peak RSS, with peers
    Startup(StartupArgs),
    /// isola's KVM monitor alone: boot the test guest to its exit, against QEMU microvm
    Monitor(MonitorArgs),
}

#[derive(clap::Args, Debug)]
pub struct MonitorArgs {
    /// The test guest (`make testguest` builds it at
    /// backend-vm/testguest/target/x86_64-unknown-none/release/isola-testguest)
    #[arg(long)]
    pub guest: PathBuf,
    /// Guest memory, the same for both monitors
    #[arg(long, default_value = "128m")]
    pub memory: String,
    /// Measured runs per contender
    #[arg(long, default_value_t = 40)]
    pub runs: usize,
    /// Unmeasured runs first
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Leave QEMU out
    #[arg(long)]
    pub no_qemu: bool,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
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

pub fn run(root: &Root, args: &BenchArgs) -> Result<()> {
    match (&args.command, &args.compare) {
        (Some(BenchCommand::Startup(a)), _) => startup(root, a),
        (Some(BenchCommand::Monitor(a)), _) => monitor(root, a),
        (None, Some(files)) => super::bench_suite::compare(&files[0], &files[1]),
        (None, None) => super::bench_suite::run(root, args),
    }
}

fn isola(root: &Root) -> Result<Isola> {
    Ok(Isola {
        exe: std::env::current_exe().context("finding isola's own binary")?,
        root: root.dir().to_path_buf(),
    })
}

fn startup(root: &Root, args: &StartupArgs) -> Result<()> {
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

    let isola = isola(root)?;
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
        peers::container_peers(&wanted, auto, &rootfs, work.path())
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(|(_, c)| c),
    );
    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "floor", "VS FLOOR", args.json)
}

/// `--peers`: the names asked for, and whether they were found (`auto`)
/// rather than named (a named one that is missing is an error).
pub fn peer_list(peers: &str) -> Result<(Vec<&str>, bool)> {
    let (list, auto): (Vec<&str>, bool) = match peers {
        "auto" => (vec!["floor", "runc", "crun", "qemu"], true),
        "none" => (vec![], false),
        list => (list.split(',').map(str::trim).collect(), false),
    };
    for p in &list {
        if !matches!(*p, "floor" | "runc" | "crun" | "qemu") {
            bail!("unknown peer {p:?}: use floor, runc, crun or qemu (or auto, none)");
        }
    }
    Ok((list, auto))
}

fn monitor(root: &Root, args: &MonitorArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !args.guest.is_file() {
        bail!(
            "no test guest at {}: build it with `make testguest`, or give --guest",
            args.guest.display()
        );
    }
    let memory = isola_core::volume::parse_size(&args.memory)
        .with_context(|| format!("--memory {:?}", args.memory))?;
    let qemu = if args.no_qemu {
        None
    } else if peers::found(QEMU) {
        Some(QEMU)
    } else {
        bail!(
            "{} is not installed: install qemu-system-x86 or pass --no-qemu",
            QEMU
        );
    };
    let contenders: Vec<Contender> =
        peers::monitor_contenders(&isola(root)?, &args.guest, memory >> 20, qemu)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "monitor-qemu", "VS QEMU", args.json)
}

fn measure(contenders: &[Contender], runs: usize, warmup: usize) -> Vec<startup::Result> {
    eprintln!(
        "measuring {} contender(s), {runs} runs each after {warmup} warm-up...",
        contenders.len(),
    );
    let results = startup::measure(contenders, runs, warmup, |done| {
        eprint!("\r  {done}/{runs}");
        let _ = std::io::stderr().flush();
    });
    eprintln!();
    results
}

/// The table on stderr (JSON on stdout with `json`), each contender's
/// median paired ratio to the one whose name starts with `reference`.
fn print_results(
    results: &[startup::Result],
    reference: &str,
    ratio_header: &str,
    json: bool,
) -> Result<()> {
    let base = results
        .iter()
        .find(|r| r.name.starts_with(reference) && r.error.is_none());
    let mut rows = Vec::new();
    for r in results {
        if let Some(s) = r.summary() {
            rows.push(vec![
                r.name.clone(),
                format!("{:.2}", s.min),
                format!("{:.2}", s.median),
                format!("{:.2}", s.p90),
                format!("{:.2}", s.max),
                startup::median(&r.cpu_ms)
                    .map(|ms| format!("{ms:.2}"))
                    .unwrap_or_else(|| "-".into()),
                r.peak_rss_kib
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))
                    .unwrap_or_else(|| "-".into()),
                base.and_then(|b| startup::paired_ratio(r, b))
                    .map(|x| format!("{x:.2}x"))
                    .unwrap_or_default(),
            ]);
        }
    }
    if json {
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
            "CPU ms",
            "PEAK RSS MiB",
            ratio_header,
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
