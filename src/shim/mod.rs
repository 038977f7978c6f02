//! The shim: one per detached sandbox (`isola create`, `isola run -d`), the
//! isola binary re-executed as the hidden `isola shim`, in a session of its
//! own, so that it outlives the CLI that started it and its terminal. It
//! owns the sandbox as containerd-shim and conmon do: it creates and
//! starts it, logs its output, records its end in state.json, restarts it
//! as the policy says, and serves the control socket (`serve`).

pub mod client;
mod resident;
mod restart;
mod serve;
pub mod spawn;
pub mod wire;

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use isola_core::backend::{Backend, RunContext};
use isola_core::instance::{self, Instance, Status};
use isola_core::spec::RunSpec;
use isola_core::volume::VolumeLease;
use isola_core::Root;

use crate::cli::{RunArgs, ShimArgs};
use crate::commands::run_spec;
pub use restart::RestartPolicy;

/// The descriptor on which the shim tells the CLI that started it how
/// creating (and starting) went: `ok`, or one line of error.
pub const REPORT_FD: i32 = 3;

/// What a detached sandbox was made from, kept for `isola start` of one
/// that has ended (which runs a new shim) and for `isola inspect`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// `isola run`'s arguments after the subcommand, as given.
    pub args: Vec<String>,
}

/// The sandbox's log, in the CRI format, in its directory.
pub fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("ctr.log")
}

pub fn socket_path(dir: &Path) -> std::path::PathBuf {
    dir.join("shim.sock")
}

/// `isola shim`: the shim's whole life; its exit code.
pub fn main(root: &Root, args: &ShimArgs) -> i32 {
    // SAFETY: fd 3 was set up by the CLI for us (see `spawn`); nothing
    // else in this fresh process owns it.
    let mut report = unsafe { File::from_raw_fd(REPORT_FD) };
    let begun = setup(root, args).and_then(|mut shim| match shim.begin(args.start) {
        Ok(()) => Ok(shim),
        Err(e) => {
            shim.abandon(args.again);
            Err(e)
        }
    });
    match begun {
        Ok(mut shim) => {
            let _ = report.write_all(b"ok\n");
            drop(report);
            resident::shed_unused_pages();
            shim.serve();
            shim.finish();
            0
        }
        Err(e) => {
            let _ = writeln!(report, "{e:#}");
            125
        }
    }
}

/// Everything the shim keeps while the sandbox lives.
pub struct Shim {
    root: Root,
    instance: Option<Instance>,
    backend: Box<dyn Backend>,
    spec: RunSpec,
    ctx: RunContext,
    remove_at_end: bool,
    restart: RestartPolicy,
    /// The workload's stdout and stderr pipes (read ends) and its stdin's
    /// write end (with -i).
    out: OwnedFd,
    err: OwnedFd,
    stdin: Option<OwnedFd>,
    log: isola_core::logs::LogWriter,
    listener: OwnedFd,
    /// SIGTERM and SIGINT to the shim itself.
    signals: Option<nix::sys::signalfd::SignalFd>,
    _leases: Vec<VolumeLease>,
    life: serve::Life,
}

fn setup(root: &Root, args: &ShimArgs) -> Result<Shim> {
    detach_from_caller()?;
    let run = crate::cli::parse_run_tokens(&args.args)?;
    let backend = crate::backends::build(
        &run.backend,
        &crate::backends::Options {
            state_dir: root.dir().to_path_buf(),
            vmm: Some(run.vmm.clone()),
            kernel: run.kernel.clone(),
        },
    )?;
    backend.check_host()?;
    let spec = run_spec::build(root, &run, &args.id)?;
    backend.check(&spec)?;
    let restart = RestartPolicy::parse(&run.restart)?;
    if run.rm && restart != RestartPolicy::No {
        anyhow::bail!("--rm cannot be combined with a --restart policy: one removes the sandbox at its end, the other starts it again");
    }
    let leases = run_spec::lease(root, &spec)?;
    let mut instance = if args.again {
        Instance::open(root, &args.id)?
    } else {
        make_instance(root, &run, &spec, backend.as_ref(), &args.args)?
    };
    let dir = instance.dir.clone();
    let made = (|| -> Result<(isola_core::logs::LogWriter, Stdio, OwnedFd)> {
        let log = isola_core::logs::LogWriter::open(
            &log_path(&dir),
            isola_core::logs::Rotation {
                max_size: match &run.log_max_size {
                    Some(s) => isola_core::volume::parse_size(s)
                        .with_context(|| format!("--log-max-size {s}"))?,
                    None => isola_core::logs::Rotation::default().max_size,
                },
                max_files: run.log_max_files,
            },
        )
        .context("opening the sandbox's log")?;
        set_tracing_file(&dir);
        let stdio = workload_stdio(run.interactive)?;
        let listener = wire::listen(&socket_path(&dir))?;
        instance.state.status = Status::Created;
        instance.state.pid = Some(std::process::id() as i32);
        instance.state.exit_code = None;
        instance.save().context("recording the sandbox's state")?;
        Ok((log, stdio, listener))
    })();
    let (log, (out, err, stdin), listener) = match made {
        Ok(parts) => parts,
        Err(e) => {
            abandon(root, instance, args.again);
            return Err(e);
        }
    };
    let ctx = RunContext {
        instance_dir: dir,
        state_dir: root.dir().to_path_buf(),
        explain: Default::default(),
        idle: Default::default(),
        ephemeral: false,
        // `isola create` of a VM boots it, up to isola-init waiting for
        // the go-ahead that `start` sends.
        park: true,
        clock: std::time::Instant::now(),
    };
    Ok(Shim {
        root: root.clone(),
        instance: Some(instance),
        backend,
        spec,
        ctx,
        remove_at_end: run.rm,
        restart,
        out,
        err,
        stdin,
        log,
        listener,
        signals: own_signals(),
        _leases: leases,
        life: Default::default(),
    })
}

/// A sandbox whose create failed: a new one leaves nothing behind (nothing
/// ran), one started again (`again`) stays, as ended.
fn abandon(root: &Root, mut instance: Instance, again: bool) {
    let _ = std::fs::remove_file(socket_path(&instance.dir));
    if again {
        instance.state.status = Status::Exited;
        instance.state.pid = None;
        let _ = instance.save();
        return;
    }
    let (id, name) = (instance.state.id.clone(), instance.state.name.clone());
    let _ = instance.remove();
    if let Some(name) = name {
        instance::release_name(root, &name, &id);
    }
}

/// A new sandbox directory, its name taken first (a taken name makes
/// nothing), and its config kept.
fn make_instance(
    root: &Root,
    run: &RunArgs,
    spec: &RunSpec,
    backend: &dyn Backend,
    tokens: &[String],
) -> Result<Instance> {
    if let Some(name) = &run.name {
        instance::reserve_name(root, name, &spec.id)?;
    }
    let made = (|| -> Result<Instance> {
        let mut inst = Instance::create(root, &spec.id, &spec.image, backend.name(), true)
            .with_context(|| {
                format!(
                    "creating the sandbox directory under {}",
                    root.dir().display()
                )
            })?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&inst.dir, std::fs::Permissions::from_mode(0o700))?;
        inst.state.name = run.name.clone();
        inst.state.command = spec.process.args.clone();
        let config = serde_json::to_vec_pretty(&Config {
            args: tokens.to_vec(),
        })?;
        isola_core::fsutil::atomic_write_nosync(&inst.dir.join("config.json"), &config)?;
        Ok(inst)
    })();
    if made.is_err() {
        if let Some(name) = &run.name {
            instance::release_name(root, name, &spec.id);
        }
    }
    made
}

/// Away from the caller: no terminal's hangup or the CLI's end reaches us,
/// and processes orphaned below us come to us, not to init.
fn detach_from_caller() -> Result<()> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: setting dispositions to SIG_IGN runs no handler code.
    unsafe {
        signal(Signal::SIGHUP, SigHandler::SigIgn)?;
        // A reader of an attach pipe that went away is an EPIPE, not our end.
        signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
    }
    nix::sys::prctl::set_child_subreaper(true).context("becoming a child subreaper")?;
    Ok(())
}

/// The workload's stdio: pipes the shim reads (stdout, stderr) and, with
/// -i, one it writes (stdin), put on our own 0, 1 and 2, which the
/// sandbox inherits. The shim's own diagnostics go to shim.log instead.
/// The shim's ends of the workload's stdout, stderr and (with -i) stdin.
type Stdio = (OwnedFd, OwnedFd, Option<OwnedFd>);

fn workload_stdio(interactive: bool) -> Result<Stdio> {
    use nix::fcntl::OFlag;
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).context("making the workload's pipes");
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (in_r, in_w) = if interactive {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (
            OwnedFd::from(File::open("/dev/null").context("opening /dev/null")?),
            None,
        )
    };
    nix::unistd::dup2_stdin(&in_r)?;
    nix::unistd::dup2_stdout(&out_w)?;
    nix::unistd::dup2_stderr(&err_w)?;
    for fd in [&out_r, &err_r] {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    Ok((out_r, err_r, in_w))
}

/// SIGTERM and SIGINT, blocked and read from a signalfd: the shim's own
/// (the backend blocks them too, and reads its own signalfd only once the
/// workload has ended).
fn own_signals() -> Option<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).ok()?;
    nix::sys::signalfd::SignalFd::with_flags(
        &mask,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    )
    .ok()
}

static TRACING_FILE: std::sync::OnceLock<File> = std::sync::OnceLock::new();

/// The shim's own log lines go to `shim.log` in the sandbox's directory
/// (its stderr is the workload's).
fn set_tracing_file(dir: &Path) {
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))
    {
        let _ = TRACING_FILE.set(f);
    }
}

/// The writer `main` gives tracing in a shim: shim.log once it is open,
/// nothing before.
pub struct TracingWriter;

impl Write for TracingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match TRACING_FILE.get() {
            Some(mut f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
