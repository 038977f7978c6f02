//! isola-runtime's command line: runc's, flag for flag, as containerd's
//! go-runc and people used to runc call it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "isola-runtime",
    about = "An OCI runtime with runc's command line: the same bundle as a container or, \
             with the annotation io.isola.backend=vm, in a microVM",
    disable_version_flag = true
)]
pub struct Cli {
    /// Where containers' state is kept (tmpfs is best).
    #[arg(long, global = true, default_value = "/run/isola-runtime")]
    pub root: PathBuf,
    /// Where errors and debug messages are logged (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Refused: isola manages cgroupfs paths, not systemd units.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc's sake; isola-runtime needs root.
    #[arg(long, value_name = "true|false|auto")]
    pub rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Run the process of a created container.
    Start(IdArg),
    /// Create and start a container, and wait for it unless --detach.
    Run(RunArgs),
    /// Print a container's state as JSON.
    State(IdArg),
    /// Send a signal (default SIGTERM) to a container's init.
    Kill(KillArgs),
    /// Remove a stopped container (--force: any).
    Delete(DeleteArgs),
    /// List the processes of a container.
    Ps(PsArgs),
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Print a container's resource usage.
    Events(EventsArgs),
    /// Run another process in a running container.
    Exec(ExecArgs),
    /// List containers.
    List(ListArgs),
    /// Print what this runtime supports, as JSON.
    Features,
    /// Write a default config.json.
    Spec(SpecArgs),
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The bundle directory (default: the current one).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Where to write the init's PID.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// A unix socket that receives the terminal's master end.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on a ramfs).
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not make a session keyring for the container.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass on this many fds beyond stdio (3, 4, ...).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once it runs.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal every process of the container.
    #[arg(short, long)]
    pub all: bool,
    pub id: String,
    /// A number or a name (TERM, SIGTERM).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill it first if it runs.
    #[arg(short, long)]
    pub force: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    pub id: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A JSON file of linux.resources, or - for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    /// CPU quota (µs per period).
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPU period (µs).
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU shares.
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// Most processes at once.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print one sample of the container's resource usage and exit.
    #[arg(long)]
    pub stats: bool,
    /// The sampling interval when not --stats.
    #[arg(long, default_value = "5s")]
    pub interval: humantime::Duration,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The process as config.json's `process` object, in a file.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once it runs; a subreaper above inherits it.
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Give it a terminal.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub cwd: Option<String>,
    /// KEY=VALUE, more than once.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    /// The command, when --process is not given.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// IDs only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Accepted for runc's sake: rootless specs are refused.
    #[arg(long)]
    pub rootless: bool,
}
