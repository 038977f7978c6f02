//! `isola bench startup`: start-to-exit of `/bin/true` in the default image,
//! isola against the peers installed here, interleaved run by run; `isola
//! bench monitor`: the KVM monitor alone with the test guest, against QEMU.

use std::io::Write;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use isola_bench::startup::{self, Contender};
use isola_core::image::{default_image, ImageStore};
use isola_core::Root;

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

pub fn run(root: &Root, cmd: &BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Startup(args) => startup(root, args),
        BenchCommand::Monitor(args) => monitor(root, args),
    }
}

fn startup(root: &Root, args: &StartupArgs) -> Result<()> {
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
    let mut contenders = vec![Contender::new(
        "isola",
        vec![
            exe.display().to_string(),
            "--root".into(),
            root.dir().display().to_string(),
            "run".into(),
            "--rm".into(),
            args.image.clone(),
            "/bin/true".into(),
        ],
    )];
    let wanted: Vec<&str> = match args.peers.as_str() {
        "auto" => vec!["floor", "runc", "crun"],
        "none" => vec![],
        list => list.split(',').map(str::trim).collect(),
    };
    for peer in wanted {
        match peer {
            "floor" if found("unshare") && found("chroot") => contenders.push(Contender::new(
                "floor (unshare+chroot)",
                [
                    "unshare",
                    "-fpmiun",
                    &format!("--mount-proc={}/proc", rootfs.display()),
                    "chroot",
                ]
                .iter()
                .map(|s| s.to_string())
                .chain([rootfs.display().to_string(), "/bin/true".to_string()])
                .collect(),
            )),
            "runc" | "crun" if found(peer) => {
                // Each runtime's own bundle (its config.json) on the shared rootfs.
                let bundle = work.path().join(peer);
                std::fs::create_dir_all(&bundle)?;
                isola_bench::bundle::write_config(peer, &bundle, &rootfs, &["/bin/true"])?;
                contenders.push(Contender::new(
                    peer,
                    vec![
                        peer.into(),
                        "run".into(),
                        "--bundle".into(),
                        bundle.display().to_string(),
                        format!("isola-bench-{peer}"),
                    ],
                ));
            }
            "floor" | "runc" | "crun" if args.peers != "auto" => {
                bail!("peer {peer} is not installed on this host")
            }
            "floor" | "runc" | "crun" => {}
            other => bail!("unknown peer {other:?}: use floor, runc or crun"),
        }
    }

    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "floor", "VS FLOOR", args.json)
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
    let guest = args.guest.display().to_string();
    // `quiet`: the guest writes its status and nothing else, so the figures
    // are the monitors' (on PVM every guest instruction at CPL0 is emulated).
    let cmdline = "quiet exit=0";
    let exe = std::env::current_exe().context("finding isola's own binary")?;
    let mut contenders = vec![Contender::new(
        "isola monitor",
        [
            &exe.display().to_string(),
            "--root",
            &root.dir().display().to_string(),
            "vm",
            "boot",
            &guest,
            "--memory",
            &format!("{}m", memory >> 20),
            "--append",
            cmdline,
        ]
        .map(String::from)
        .to_vec(),
    )];
    if !args.no_qemu {
        if !found(isola_vm::qemu::BINARY) {
            bail!(
                "{} is not installed: install qemu-system-x86 or pass --no-qemu",
                isola_vm::qemu::BINARY
            );
        }
        contenders.push(Contender {
            // isa-debug-exit makes the guest's status N QEMU's 2N+1.
            success: 1,
            ..Contender::new(
                "qemu microvm",
                [
                    isola_vm::qemu::BINARY,
                    "-M",
                    "microvm,x-option-roms=off,isa-serial=on",
                    "-accel",
                    "kvm",
                    "-m",
                    &format!("{}M", memory >> 20),
                    "-nodefaults",
                    "-no-user-config",
                    "-nographic",
                    "-serial",
                    "stdio",
                    "-device",
                    "isa-debug-exit,iobase=0xf4,iosize=0x04",
                    "-kernel",
                    &guest,
                    "-append",
                    cmdline,
                ]
                .map(String::from)
                .to_vec(),
            )
        });
    }
    let results = measure(&contenders, args.runs, args.warmup);
    print_results(&results, "qemu", "VS QEMU", args.json)
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

fn found(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}
