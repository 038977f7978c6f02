//! The command line as data (clap derive): every subcommand, flag and help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "isola",
    version,
    about = "Run the same OCI image as a container or in a minimal KVM guest, and measure the trade-off"
)]
pub struct Cli {
    /// State directory (images, layers, sandboxes)
    #[arg(long, global = true, env = "ISOLA_ROOT", default_value = isola_core::root::DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// Show what isola does (-v debug, -vv trace), given before the command
    /// (`isola -v run ...`: after it, -v is run's --volume); ISOLA_LOG=filter overrides
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a new sandbox
    Run(Box<RunArgs>),
    /// List the sandboxes kept on disk (run without --rm)
    Ps(Json),
    /// Remove kept sandboxes (their directory: state, upper dir)
    Rm {
        /// Sandbox IDs (or unique prefixes)
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove every sandbox that is over: exited, or left by an isola that died
    Prune,
    /// List stored images
    Images(Json),
    /// Import an image from an OCI layout (directory or tar) or a docker-archive tar
    Import(ImportArgs),
    /// Show an image's digest, config and layers as JSON
    Inspect {
        /// Image name[:tag] or ID
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
    /// Measure startup and compare with the peers installed here
    #[command(subcommand)]
    Bench(crate::commands::bench::BenchCommand),
    /// Manage named volumes
    #[command(subcommand)]
    Volume(crate::commands::volume::VolumeCommand),
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
    /// With --backend vm: the monitor, isola (its own, on KVM) or qemu (microvm; KVM, or a software CPU where KVM cannot run Linux)
    #[arg(long, default_value = "isola", value_name = "VMM")]
    pub vmm: String,
    /// With --backend vm: the guest kernel (default: ISOLA_KERNEL, else the kernel store's default (`isola kernel ls`), else /boot/vmlinuz-$(uname -r), else the newest /boot/vmlinuz-*)
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Remove the sandbox's directory when it exits
    #[arg(long)]
    pub rm: bool,
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
    /// Network: none (only lo, the default) or host
    #[arg(long, default_value = "none", value_name = "MODE")]
    pub network: String,
    /// Mount a host path or a named volume: SRC:DEST[:ro]
    #[arg(short, long = "volume", value_name = "SRC:DEST[:ro]")]
    pub volumes: Vec<String>,
    /// Say what each step does and why, with its duration
    #[arg(long)]
    pub explain: bool,
    /// Image name[:tag] or ID
    pub image: String,
    /// Command and arguments (default: the image's Entrypoint and Cmd)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
