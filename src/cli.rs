//! The command line as data (clap derive): every subcommand, flag and help text.

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser, Subcommand};

const ABOUT: &str =
    "Run the same OCI image as a container or in a minimal KVM guest, and measure the trade-off";
const RUN_ABOUT: &str = "Run a command in a new sandbox";

#[derive(Parser, Debug)]
#[command(name = "isola", version, about = ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

pub use crate::globals::Globals;

impl Cli {
    /// The command line, parsed. For `isola run`, the path every sandbox
    /// start takes, only `run`'s part of the command tree is built: clap's
    /// derive builds every subcommand's arguments on each parse (24 page
    /// faults of a run's ~225 here). The same definitions either way.
    pub fn parse_args() -> Cli {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if subcommand_name(&args) != Some("run") {
            return Cli::parse();
        }
        Cli::parse_run(args).unwrap_or_else(|e| e.exit())
    }

    /// `args` parsed with a command tree that has only `run` in it.
    fn parse_run(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
        let m = run_only_command().try_get_matches_from(args)?;
        let globals = Globals::from_arg_matches(&m)?;
        let run = match m.subcommand() {
            Some(("run", sub)) => RunArgs::from_arg_matches(sub)?,
            _ => return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand)),
        };
        Ok(Cli {
            globals,
            command: Command::Run(Box::new(run)),
        })
    }
}

fn run_only_command() -> clap::Command {
    Globals::augment_args(
        clap::Command::new("isola")
            .version(env!("CARGO_PKG_VERSION"))
            .about(ABOUT),
    )
    .subcommand_required(true)
    .subcommand(RunArgs::augment_args(
        clap::Command::new("run").about(RUN_ABOUT),
    ))
}

/// The first argument that is not one of the global options (or the value
/// of `--root DIR`).
fn subcommand_name(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut rest = args.iter().skip(1).map(|a| a.to_str());
    while let Some(arg) = rest.next() {
        match arg? {
            "--root" => {
                rest.next();
            }
            a if a.starts_with("--root=") || (a.starts_with('-') && a.len() > 1) => {}
            a => return Some(a),
        }
    }
    None
}

#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(about = RUN_ABOUT)]
    Run(Box<RunArgs>),
    /// Create a sandbox, parked before its workload runs, and print its ID
    Create(Box<RunArgs>),
    /// Start created or ended sandboxes
    Start {
        /// Attach to its output (one sandbox only) and exit as it does
        #[arg(short, long)]
        attach: bool,
        /// With -a, also send stdin to it
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true, value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// Stop running sandboxes: SIGTERM, then SIGKILL after the timeout
    Stop {
        /// Seconds to wait before SIGKILL
        #[arg(short = 't', long = "time", default_value_t = 10, value_name = "SECS")]
        time: u64,
        #[arg(required = true, value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// Stop and start sandboxes again
    Restart {
        /// Seconds to wait before SIGKILL
        #[arg(short = 't', long = "time", default_value_t = 10, value_name = "SECS")]
        time: u64,
        #[arg(required = true, value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// Send a signal to running sandboxes' workloads
    Kill {
        /// Signal name or number (KILL, SIGTERM, 15)
        #[arg(short, long, default_value = "KILL", value_name = "SIGNAL")]
        signal: String,
        #[arg(required = true, value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// Wait for sandboxes to end and print their exit codes
    Wait {
        #[arg(required = true, value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// List sandboxes
    Ps(PsArgs),
    /// Show a sandbox's output
    Logs(LogsArgs),
    /// Connect to a running sandbox's output (and input); Ctrl-p Ctrl-q detaches
    Attach {
        /// Do not send stdin
        #[arg(long)]
        no_stdin: bool,
        #[arg(value_name = "SANDBOX")]
        id: String,
    },
    /// Run a command in a running sandbox
    Exec(ExecArgs),
    /// List a sandbox's published ports, or the host address of one of them
    Port {
        #[arg(value_name = "SANDBOX")]
        id: String,
        /// The sandbox's port, e.g. 80 or 80/tcp
        #[arg(value_name = "PORT[/PROTO]")]
        port: Option<String>,
    },
    /// Show the processes of a running sandbox
    Top {
        #[arg(value_name = "SANDBOX")]
        id: String,
    },
    /// Show running sandboxes' CPU, memory and process use
    Stats {
        /// One sample, then exit
        #[arg(long)]
        no_stream: bool,
        /// Print JSON (one sample)
        #[arg(long)]
        json: bool,
        /// Sandboxes (default: every running one)
        #[arg(value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// Remove sandboxes (their directory: state, log, upper dir)
    Rm {
        /// Kill and remove running ones too
        #[arg(short, long)]
        force: bool,
        /// Accepted for docker's sake: isola has no anonymous volumes, and
        /// named ones are kept (`isola volume rm`)
        #[arg(short, long)]
        volumes: bool,
        /// Sandbox names, IDs or unique ID prefixes
        #[arg(required = true, value_name = "SANDBOX")]
        ids: Vec<String>,
    },
    /// Remove every sandbox that is over (exited, or left by an isola that
    /// died) and the network addresses, ports and rules they held, then
    /// what no image uses: blobs, layers, build cache
    Prune,
    /// isola's supervisor of one detached sandbox (started by create and run -d)
    #[command(hide = true)]
    Shim(ShimArgs),
    /// List stored images
    Images(ImagesArgs),
    /// pull, push, login, logout: carried out by isola-registry
    #[command(flatten)]
    Registry(crate::registry_args::RegistryCommand),
    /// Build an image from a Dockerfile; RUN steps run in a sandbox (carried out by isola-build)
    Build(Box<crate::build_args::BuildArgs>),
    /// Import an image from an OCI layout (directory or tar) or a docker-archive tar
    Import(ImportArgs),
    /// Show a sandbox's state, or an image's digest, config and layers, as JSON
    Inspect {
        /// Sandbox name or ID, or image name[:tag] or ID
        image: String,
    },
    /// Show how an image was built, layer by layer
    History {
        /// Image name[:tag] or ID
        image: String,
        #[command(flatten)]
        json: Json,
    },
    /// Give an image another name
    Tag {
        /// Image name[:tag] or ID
        source: String,
        /// New name[:tag]
        target: String,
    },
    /// Remove images; blobs and layers no other image uses are deleted
    Rmi {
        /// Image names[:tag] or IDs
        #[arg(required = true)]
        images: Vec<String>,
        /// Remove an image given by ID even if it has several names
        #[arg(short, long)]
        force: bool,
    },
    /// Disk used per image, what is shared between images, and the store's real total
    Du(Json),
    /// Write an image's root filesystem (whiteouts applied) into a directory
    Export {
        /// Image name[:tag] or ID
        image: String,
        /// Destination directory (created; must be empty if it exists)
        dir: PathBuf,
    },
    /// Image maintenance
    #[command(subcommand)]
    Image(ImageCommand),
    /// Benchmark the isolation levels side by side, with the peers installed here
    Bench(Box<crate::commands::bench::BenchArgs>),
    /// Manage named volumes
    #[command(subcommand)]
    Volume(crate::commands::volume::VolumeCommand),
    /// Manage bridge networks (containers and VMs on one bridge)
    #[command(subcommand)]
    Network(crate::commands::network::NetworkCommand),
    /// Manage the guest kernels `--backend vm` boots
    #[command(subcommand)]
    Kernel(crate::commands::kernel::KernelCommand),
    /// Show what this host offers isola: cgroups, overlayfs, KVM flavour
    Info(Json),
    /// isola's KVM monitor on its own: boot a kernel directly
    #[command(subcommand)]
    Vm(crate::commands::vm::VmCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Build the default image (isola/busybox:latest) from the host's static busybox
    Default {
        /// Rebuild it even if it exists
        #[arg(long)]
        rebuild: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct Json {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show every sandbox (default: only running ones)
    #[arg(short, long)]
    pub all: bool,
    /// Only the IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Only those matching: status=STATUS, name=NAME, backend=BACKEND (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    #[command(flatten)]
    pub json: Json,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Keep printing what it writes until it ends
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<String>,
    /// Only what came since then (RFC 3339 time, Unix time, or a duration such as 10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Show each line's time
    #[arg(short, long)]
    pub timestamps: bool,
    #[arg(value_name = "SANDBOX")]
    pub id: String,
}

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Start it and return
    #[arg(short, long)]
    pub detach: bool,
    /// Send stdin to it
    #[arg(short, long)]
    pub interactive: bool,
    /// Give it a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// User to run as (default: the sandbox's)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Working directory (default: the sandbox's)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Every capability, no seccomp filter
    #[arg(long)]
    pub privileged: bool,
    #[arg(value_name = "SANDBOX")]
    pub id: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ShimArgs {
    #[arg(long)]
    pub id: String,
    /// Start the workload once created
    #[arg(long)]
    pub start: bool,
    /// The sandbox exists (it ended): take it over
    #[arg(long)]
    pub again: bool,
    /// `isola run`'s arguments
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `isola run`'s arguments (after the subcommand) parsed, for a shim.
pub fn parse_run_tokens(tokens: &[String]) -> Result<RunArgs, clap::Error> {
    let m = RunArgs::augment_args(clap::Command::new("run"))
        .try_get_matches_from(std::iter::once("run".to_string()).chain(tokens.iter().cloned()))?;
    RunArgs::from_arg_matches(&m)
}

/// The process's arguments after the subcommand's name, as given.
pub fn args_after_subcommand() -> Vec<String> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(name) = subcommand_name(&args).map(str::to_string) else {
        return Vec::new();
    };
    let mut rest = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let mut prev_root = false;
    for a in rest.by_ref() {
        if a == name && !prev_root {
            break;
        }
        prev_root = a == "--root";
    }
    rest.collect()
}

#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Show the digest each image was pulled by (an index's for a multi-platform image)
    #[arg(long)]
    pub digests: bool,
    #[command(flatten)]
    pub json: Json,
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// OCI layout directory, OCI archive (.tar) or docker-archive (.tar)
    pub path: PathBuf,
    /// Store the image under this name[:tag] (default: the name the archive gives it)
    #[arg(long, value_name = "NAME:TAG")]
    pub name: Option<String>,
    /// Which image to take from an archive holding several (its ref name or repo tag)
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Platform to take from a multi-arch image
    #[arg(long, default_value = "linux/amd64", value_name = "OS/ARCH")]
    pub platform: String,
    #[command(flatten)]
    pub json: Json,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Isolation level: container (namespaces + cgroups) or vm (a KVM guest)
    #[arg(long, default_value = "container", value_name = "BACKEND")]
    pub backend: String,
    /// With --backend vm: the monitor, isola (its own, on KVM), qemu (microvm; KVM, or a software CPU where KVM cannot run Linux) or auto (isola's where it boots the kernel here, else qemu)
    #[arg(long, default_value = "isola", value_name = "VMM")]
    pub vmm: String,
    /// With --backend vm: the guest kernel (default: ISOLA_KERNEL, else the kernel store's default (`isola kernel ls`), else /boot/vmlinuz-$(uname -r), else the newest /boot/vmlinuz-*)
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Remove the sandbox's directory when it exits. Its root filesystem is
    /// then never synced to disk (fsync there is a no-op), as podman does
    /// for --rm; volumes are synced as usual
    #[arg(long)]
    pub rm: bool,
    /// Run it in the background, owned by a shim, and print its ID
    #[arg(short, long)]
    pub detach: bool,
    /// A name for the sandbox, unique among them, usable wherever its ID is
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Start it again when it ends: no, on-failure[:N], always or unless-stopped (detached sandboxes)
    #[arg(long, default_value = "no", value_name = "POLICY")]
    pub restart: String,
    /// Rotate a detached sandbox's log at this size (default 10m)
    #[arg(long, value_name = "SIZE")]
    pub log_max_size: Option<String>,
    /// How many log files to keep, the current one included
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub log_max_files: u32,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from here)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (one KEY=VALUE per line)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the sandbox (default: the image's)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as: name or uid, optionally :group or :gid (from the image's /etc/passwd)
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Hostname inside the sandbox (default: its ID)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Keep stdin open and forward it to the workload
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the workload a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Memory limit, e.g. 64m or 1g (swap included)
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU time limit in CPUs, e.g. 0.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Most processes and threads at once
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<u64>,
    /// Mount the image's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Add a capability to Docker's default set (or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security options; seccomp=unconfined turns the syscall filter off
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// All capabilities, no seccomp filter, all host devices
    #[arg(long)]
    pub privileged: bool,
    /// Network: none (only lo, the default), host, bridge (isola's default network) or a network's NAME (`isola network create`)
    #[arg(long, default_value = "none", value_name = "MODE")]
    pub network: String,
    /// Another name the sandbox answers to on its network
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_aliases: Vec<String>,
    /// Its address on the network (default: the first free one)
    #[arg(long, value_name = "IPv4")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Publish a port on the host: [IP:][HOSTPORT:]PORT[/tcp|udp] (no HOSTPORT: one the kernel picks)
    #[arg(short = 'p', long = "publish", value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a port the kernel picks
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Mount a host path or a named volume: SRC:DEST[:ro]
    #[arg(short, long = "volume", value_name = "SRC:DEST[:ro]")]
    pub volumes: Vec<String>,
    /// Say what each step does and why, with its duration
    #[arg(long)]
    pub explain: bool,
    /// Write the phase times as JSON to FILE when the sandbox ends (for `isola bench`)
    #[arg(long, hide = true, value_name = "FILE")]
    pub phases_to: Option<std::path::PathBuf>,
    /// Image name[:tag] or ID
    pub image: String,
    /// Command and arguments (default: the image's Entrypoint and Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn argv(line: &str) -> Vec<std::ffi::OsString> {
        line.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn the_run_only_tree_parses_and_helps_as_the_whole_one_does() {
        for line in [
            "isola run img",
            "isola --root /r -vv run --rm -e A=1 -v /a:/b:ro --memory 64m img sh -c true",
            "isola run --root /r -i -t --network host --cap-add NET_ADMIN img",
            "isola --root=/r run --backend vm --vmm qemu --cpus 2 img -- --flag",
        ] {
            let whole = format!("{:?}", Cli::try_parse_from(argv(line)).unwrap());
            let fast = format!("{:?}", Cli::parse_run(argv(line)).unwrap());
            assert_eq!(fast, whole, "{line}");
        }
        for bad in [
            "isola run",
            "isola run --bogus img",
            "isola run img --network",
        ] {
            let whole = Cli::try_parse_from(argv(bad)).unwrap_err();
            let fast = Cli::parse_run(argv(bad)).unwrap_err();
            assert_eq!(fast.kind(), whole.kind(), "{bad}");
        }
        let help = |mut c: clap::Command| {
            c.build();
            c.find_subcommand_mut("run")
                .unwrap()
                .render_long_help()
                .to_string()
        };
        assert_eq!(help(run_only_command()), help(Cli::command()));
    }

    #[test]
    fn the_subcommand_is_found_past_the_global_options() {
        assert_eq!(subcommand_name(&argv("isola -v run x")), Some("run"));
        assert_eq!(subcommand_name(&argv("isola --root /r run x")), Some("run"));
        assert_eq!(
            subcommand_name(&argv("isola --root=/r images")),
            Some("images")
        );
        assert_eq!(subcommand_name(&argv("isola --help")), None);
    }
}
