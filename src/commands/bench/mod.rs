//! `isola bench`: its arguments and the command they pick: the whole
//! comparative benchmark (suite.rs); one dimension alone, `isola bench
//! startup` (startup.rs), `isola bench lifecycle` (lifecycle.rs), `isola
//! bench distribution` (distribution.rs), `isola bench build` (build.rs),
//! `isola bench oci` (oci.rs) or `isola bench monitor` (monitor.rs); or
//! what changed between two runs, `--compare` (compare.rs).

mod build;
mod compare;
mod distribution;
mod lifecycle;
mod monitor;
mod oci;
mod progress;
mod startup;
mod suite;
mod timing;

use std::path::PathBuf;

use std::io::Write;

use anyhow::{bail, Context, Result};
use isola_bench::results::Results;
use isola_bench::sandbox::IsolaCli;
use isola_core::image::default_image;
use isola_core::Root;

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
    /// Peers: auto (every one found here), none, or a list of
    /// floor,runc,crun,qemu,podman,containerd
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
    /// Detached sandboxes: run -d, exec and the shim's memory, against
    /// podman, containerd and runc
    Lifecycle(LifecycleArgs),
    /// isola's KVM monitor alone: boot the test guest to its exit, against QEMU microvm
    Monitor(MonitorArgs),
    /// Pull and push of a multi-layer image from a local registry, against
    /// podman pull and skopeo copy
    Distribution(DistributionArgs),
    /// A two-stage Dockerfile built cold and fully cached, against buildah
    /// bud --layers
    Build(BuildArgs),
    /// isola-runtime against runc and crun on one /bin/true bundle: create,
    /// start, delete and run, and ctr run --rm through containerd
    Oci(OciArgs),
}

#[derive(clap::Args, Debug)]
pub struct OciArgs {
    /// The isola-runtime binary to measure (default: the one beside this
    /// isola)
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<PathBuf>,
    /// Measured runs per runtime and shape (default 20; 3 with --quick)
    #[arg(long)]
    pub runs: Option<usize>,
    /// Unmeasured runs first (default 3; 1 with --quick)
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Peers: auto (all found), none, or a list of runc,crun,containerd
    #[arg(long, default_value = "auto")]
    pub peers: String,
    /// Few runs: a check that everything runs, not figures to quote
    #[arg(long)]
    pub quick: bool,
    /// Run every runtime on the host's cgroups as they are, even where
    /// crun refuses them (by default, on a hybrid host whose cgroup2 tree
    /// holds controllers, that tree is hidden in the benchmark's own mount
    /// namespace, for every runtime alike, so that crun runs)
    #[arg(long)]
    pub host_cgroups: bool,
    /// Print the figures as JSON on stdout (results.json's subjects, oci
    /// and errors)
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Measured runs per contender, cold and cached each (default 10; 2
    /// with --quick)
    #[arg(long)]
    pub runs: Option<usize>,
    /// Unmeasured runs first (default 1; 0 with --quick)
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Peers: auto (buildah if found), none, or buildah
    #[arg(long, default_value = "auto")]
    pub peers: String,
    /// Few runs: a check that everything runs, not figures to quote
    #[arg(long)]
    pub quick: bool,
    /// Print the figures as JSON on stdout (results.json's subjects, build
    /// and errors)
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DistributionArgs {
    /// The image moved: debian (bookworm minbase + a layer of packages,
    /// built with mmdebstrap once and cached) or synthetic (generated
    /// files; the default where mmdebstrap is missing, and with --quick)
    #[arg(long, value_parser = ["debian", "synthetic"])]
    pub image: Option<String>,
    /// Where the Debian image is cached
    #[arg(long, value_name = "DIR", default_value = "target/bench-images")]
    pub cache: std::path::PathBuf,
    /// Measured runs per contender (default 10; 2 with --quick)
    #[arg(long)]
    pub runs: Option<usize>,
    /// Unmeasured runs first (default 1; 0 with --quick)
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Peers: auto (all found), none, or a list of podman,skopeo
    #[arg(long, default_value = "auto")]
    pub peers: String,
    /// A tiny synthetic image and few runs: a check that everything runs,
    /// not figures to quote
    #[arg(long)]
    pub quick: bool,
    /// Print the figures as JSON on stdout (results.json's subjects,
    /// distribution and errors)
    #[arg(long)]
    pub json: bool,
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
    /// Also start isola on this network (bridge: the default one) beside
    /// --network none, and podman (run -d, then rm -f) with --network
    /// bridge beside none where it is installed: what a network adds to a
    /// start and its end, paired run by run
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct LifecycleArgs {
    /// Image to run (default: the default image); the peers run it flattened
    #[arg(long, default_value = default_image::NAME)]
    pub image: String,
    /// Measured runs per contender (default 20; 3 with --quick)
    #[arg(long)]
    pub runs: Option<usize>,
    /// Unmeasured runs first (default 3; 1 with --quick)
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Peers: auto (all found), none, or a list of floor,runc,podman,containerd
    #[arg(long, default_value = "auto")]
    pub peers: String,
    /// Few runs: a check that everything runs, not figures to quote
    #[arg(long)]
    pub quick: bool,
    /// Print the figures as JSON on stdout (results.json's subjects,
    /// lifecycle and errors)
    #[arg(long)]
    pub json: bool,
}

pub fn run(root: &Root, args: &BenchArgs) -> Result<()> {
    match (&args.command, &args.compare) {
        (Some(BenchCommand::Startup(a)), _) => startup::run(root, a),
        (Some(BenchCommand::Lifecycle(a)), _) => lifecycle::run(root, a),
        (Some(BenchCommand::Monitor(a)), _) => monitor::run(root, a),
        (Some(BenchCommand::Distribution(a)), _) => distribution::run(root, a),
        (Some(BenchCommand::Build(a)), _) => build::run(root, a),
        (Some(BenchCommand::Oci(a)), _) => oci::run(root, a),
        (None, Some(files)) => compare::run(&files[0], &files[1]),
        (None, None) => suite::run(root, args),
    }
}

/// A dimension's progress, redrawn in place on one line of stderr, as
/// `isola bench startup` counts its runs; a closed stderr is no reason to
/// stop before removing what the dimension started.
fn redraw(what: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[K  {what}");
    let _ = err.flush();
}

/// A dimension's scratch directory under `root`'s tmp (made if need be).
fn work_dir(root: &Root) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(root.tmp())
        .with_context(|| format!("creating {}", root.tmp().display()))?;
    tempfile::Builder::new()
        .prefix("isola-bench-")
        .tempdir_in(root.tmp())
        .context("creating a work directory")
}

/// What a dimension of its own measured: its tables on stderr and, with
/// `--json`, the parts of results.json it measured (`subjects`, `part`,
/// `errors`) under the same names.
/// What a dimension of its own ends with: its results put together
/// (`fill` adds its part), its tables on stderr, its JSON with --json.
fn report_dimension(
    part: &str,
    json: bool,
    subjects: Vec<isola_bench::results::Subject>,
    errors: [Vec<isola_bench::results::RunError>; 2],
    fill: impl FnOnce(&mut Results),
) -> Result<Results> {
    let mut results = Results {
        subjects,
        errors: errors.into_iter().flatten().collect(),
        ..Results::default()
    };
    fill(&mut results);
    print_dimension(&results, part, json)?;
    Ok(results)
}

fn print_dimension(results: &Results, part: &str, json: bool) -> Result<()> {
    tables_to_stderr(results);
    if json {
        let all = serde_json::to_value(results).context("writing the results as JSON")?;
        crate::output::json(&serde_json::json!({
            "subjects": results.subjects,
            part: all.get(part),
            "errors": results.errors,
        }))?;
    }
    Ok(())
}

/// The tables of what a dimension of its own measured, for people.
fn tables_to_stderr(results: &Results) {
    for (title, header, rows) in isola_bench::report::tables::render(results) {
        eprintln!("\n{title}");
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        crate::output::table_to(&mut std::io::stderr(), &header, &rows);
    }
}

/// This isola's own binary on `root`: what the benchmark starts sandboxes
/// with, as a user would.
fn isola_cli(root: &Root) -> Result<IsolaCli> {
    Ok(IsolaCli {
        exe: std::env::current_exe().context("finding isola's own binary")?,
        root: root.dir().to_path_buf(),
    })
}

/// `--peers`: the names asked for, and whether they were found (`auto`)
/// rather than named (a named one that is missing is an error).
fn peer_list(peers: &str) -> Result<(Vec<&str>, bool)> {
    const ALL: [&str; 8] = [
        "floor",
        "runc",
        "crun",
        "qemu",
        "podman",
        "containerd",
        "skopeo",
        "buildah",
    ];
    let (list, auto): (Vec<&str>, bool) = match peers {
        "auto" => (ALL.to_vec(), true),
        "none" => (vec![], false),
        list => (list.split(',').map(str::trim).collect(), false),
    };
    for p in &list {
        if !ALL.contains(p) {
            bail!("unknown peer {p:?}: use floor, runc, crun, qemu, podman, containerd, skopeo or buildah (or auto, none)");
        }
    }
    Ok((list, auto))
}
