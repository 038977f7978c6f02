//! The backend trait, the only door into a backend: it checks a run spec,
//! describes how it would run it, reports what the host offers it, and
//! creates sandboxes, which are handles whose methods are the stages of a
//! sandbox's life (start, signal, wait, exec, stats, teardown). The
//! frontend, the benchmark and (later) the shim drive sandboxes only
//! through these traits, knowing nothing of which backend is behind them.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::explain::Explain;
use crate::spec::{Process, RunSpec, SpecError};

/// An isolation level: something that turns a run spec into sandboxes.
pub trait Backend {
    /// Short name as the CLI takes it (`container`, `vm`).
    fn name(&self) -> &'static str;

    /// The refusals that need no spec (the container backend's: the user
    /// is not root): asked first, before the image is even looked up.
    fn check_host(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Every refusal that can be known before anything is made (the host
    /// lacks what the spec needs, the spec asks for what this backend
    /// cannot do), [`Backend::check_host`]'s included. The caller runs it
    /// before the sandbox's directory exists, so that a refused run leaves
    /// nothing to clean.
    fn check(&self, spec: &RunSpec) -> Result<(), BackendError>;

    /// How a sandbox of `spec` would run here (which monitor and kernel,
    /// whether emulated), for the benchmark's rows and `--explain`.
    /// Nothing is made.
    fn describe(&self, spec: &RunSpec) -> Result<Description, BackendError>;

    /// What this host offers the backend, for `isola info`.
    fn host_report(&self) -> Vec<HostFact>;

    /// Make the sandbox and stop just before the workload's exec: on return
    /// everything that can fail has been tried. `start` lets it run.
    fn create(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Box<dyn Sandbox>, BackendError>;

    /// Clear what a sandbox of this ID left outside its directory when its
    /// isola died without tearing down (a cgroup, say). Nothing by default.
    fn cleanup(&self, _id: &str) -> Result<(), BackendError> {
        Ok(())
    }
}

/// One sandbox, from `create` on. Dropping it tears it down (errors are
/// then only logged: call [`Sandbox::teardown`] to see them).
pub trait Sandbox {
    /// Let the workload run.
    fn start(&mut self) -> Result<(), BackendError>;

    /// Send `signal` to the workload (a container's PID 1; a VM's workload,
    /// through isola-init).
    fn signal(&mut self, signal: Signal) -> Result<(), BackendError>;

    /// Wait for the workload to end. The caller's own signals, terminal and
    /// stdin are relayed to it meanwhile, as `spec.process` asks.
    fn wait(&mut self) -> Result<Outcome, BackendError>;

    /// Start another process in the running sandbox (`isola exec`); the
    /// caller waits for it through the handle.
    fn exec(&mut self, _exec: &ExecSpec<'_>) -> Result<Box<dyn Execd>, BackendError> {
        Err(BackendError::NotSupported {
            what: "exec",
            why: "this backend cannot start a second process in a sandbox yet",
        })
    }

    /// Readable once the workload has ended, after `start`: then `wait`
    /// returns without blocking. A supervisor (the shim) polls it beside
    /// its other work instead of blocking in `wait`.
    fn exit_fd(&self) -> Option<BorrowedFd<'_>>;

    /// With a terminal (`-t`): its master end, for a caller that relays it
    /// itself (the shim, to log it and serve attach); `wait` then relays
    /// nothing.
    fn take_terminal(&mut self) -> Option<OwnedFd> {
        None
    }

    /// The host PIDs of the sandbox's processes, for `isola top`.
    fn pids(&self) -> Result<Vec<i32>, BackendError> {
        Err(BackendError::NotSupported {
            what: "listing the processes",
            why: "a guest's processes are not the host's to see",
        })
    }

    /// What the sandbox uses now.
    fn stats(&self) -> Result<Stats, BackendError>;

    /// Remove everything the sandbox made outside its directory (processes,
    /// mounts, cgroups, loop devices, files). Safe to call more than once.
    fn teardown(&mut self) -> Result<(), BackendError>;
}

/// A process for [`Sandbox::exec`]: the sandbox's user, environment and
/// confinement unless the process says otherwise.
pub struct ExecSpec<'a> {
    pub process: Process,
    /// All capabilities and no seccomp filter, as `docker exec --privileged`.
    pub privileged: bool,
    /// Its stdin, stdout and stderr (with `process.tty`, unused); `None`
    /// for the caller's own.
    pub stdio: Option<[BorrowedFd<'a>; 3]>,
}

/// A process [`Sandbox::exec`] started: a child of the caller, killed and
/// reaped if dropped before it was waited for.
pub trait Execd {
    /// Readable once it has exited.
    fn pidfd(&self) -> BorrowedFd<'_>;

    /// With `process.tty`: the master end of the terminal it runs on.
    fn take_terminal(&mut self) -> Option<OwnedFd>;

    fn signal(&self, signal: Signal) -> Result<(), BackendError>;

    /// Its end, blocking until then.
    fn wait(self: Box<Self>) -> Result<ExitStatus, BackendError>;
}

/// A sandbox's whole life in the foreground: create, start, wait for the
/// workload, tear down. The outcome's phases end with [`Phase::TornDown`].
pub fn run_to_end(
    backend: &dyn Backend,
    spec: &RunSpec,
    ctx: &RunContext,
) -> Result<Outcome, BackendError> {
    let mut sandbox = backend.create(spec, ctx)?;
    sandbox.start()?;
    let outcome = sandbox.wait();
    let torn_down = sandbox.teardown();
    let mut outcome = outcome?;
    torn_down?;
    outcome.phases.push((Phase::TornDown, ctx.clock.elapsed()));
    Ok(outcome)
}

/// The signals isola passes on to the workload, whatever the backend: the
/// terminal's (INT, QUIT, HUP), a supervisor's TERM, and the user signals.
pub const RELAYED_SIGNALS: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What creating a sandbox needs besides the spec.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The sandbox's own directory (instances/<id>): everything the backend
    /// writes goes below it.
    pub instance_dir: PathBuf,
    /// isola's state directory (ISOLA_ROOT): caches a backend keeps across
    /// sandboxes (a VM's guest root filesystems, its kernels).
    pub state_dir: PathBuf,
    pub explain: Explain,
    pub idle: IdleWork,
    /// The sandbox's writable layer is thrown away at exit (`--rm`), so
    /// nothing in it needs to reach the disk: the backend may skip syncing
    /// it (overlayfs' `volatile`, as podman does for `--rm` containers).
    pub ephemeral: bool,
    /// `start` may come much later than `create` (`isola create`, the
    /// shim): `create` is to take the sandbox as far as it can go before
    /// the workload's exec, a VM's guest booted and waiting for the
    /// go-ahead, so that `start` is quick and whatever can fail has been
    /// tried. False for a foreground run, whose `start` follows at once: a
    /// backend may then leave work to `start` where that is faster (a VM
    /// boots in `start` and its workload runs without a round trip).
    pub park: bool,
    /// When the run began: every phase is timed from here.
    pub clock: Instant,
}

/// Housekeeping the frontend wants done while the workload runs (tidying
/// the scratch pool): the backend calls [`IdleWork::run`] where it would
/// otherwise only wait for the sandbox, with a test of whether the sandbox
/// still leaves isola idle; the work stops, between small steps, as soon
/// as it does not (the workload exited, a signal or its terminal needs
/// isola), so that it never delays what the user waits for. It runs right
/// there, on the calling thread: a thread of its own cost more CPU (its
/// stack, its malloc arena) than the work, on a run that is CPU-bound.
#[derive(Clone, Default)]
pub struct IdleWork(Option<Arc<IdleFn>>);

type IdleFn = dyn Fn(&dyn Fn() -> bool) + Send + Sync;

impl IdleWork {
    /// `work(idle)` is to check `idle()` between its steps and return once
    /// it is false.
    pub fn new(work: impl Fn(&dyn Fn() -> bool) + Send + Sync + 'static) -> IdleWork {
        IdleWork(Some(Arc::new(work)))
    }

    pub fn run(&self, idle: &dyn Fn() -> bool) {
        if let Some(work) = &self.0 {
            work(idle);
        }
    }
}

impl fmt::Debug for IdleWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "IdleWork(..)"
        } else {
            "IdleWork(none)"
        })
    }
}

/// How a sandbox's workload ended, and how long each phase took.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ExitStatus,
    /// Why the workload never started or how it died, for the user (exec
    /// failures, the OOM killer).
    pub message: Option<String>,
    /// Each phase's end, timed from [`RunContext::clock`].
    pub phases: Vec<(Phase, Duration)>,
    /// What the kernel accounted for the sandbox at the end (e.g.
    /// `cpu.nr_throttled`, `memory.peak_bytes`), for the benchmark and tests.
    pub counters: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
    /// Killed by the kernel's OOM killer at the memory limit.
    OutOfMemory,
}

impl ExitStatus {
    /// The exit code isola itself exits with, as Docker does: the code, or
    /// 128+N for signal N (137 for the OOM killer's SIGKILL).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
            ExitStatus::OutOfMemory => 137,
        }
    }
}

/// The phases every backend times, in order (see docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    RootfsReady,
    SandboxCreated,
    WorkloadStarted,
    WorkloadExited,
    TornDown,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::RootfsReady => "rootfs ready",
            Phase::SandboxCreated => "sandbox created",
            Phase::WorkloadStarted => "workload started",
            Phase::WorkloadExited => "workload exited",
            Phase::TornDown => "torn down",
        }
    }
}

/// What a running sandbox uses; `None` where the backend cannot tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used so far, microseconds.
    pub cpu_usec: Option<u64>,
    /// Memory charged to the sandbox now (a VM: its monitor's resident set).
    pub memory_bytes: Option<u64>,
    /// The most it may use (a VM: its guest memory).
    pub memory_limit: Option<u64>,
    /// Processes and threads in it now.
    pub pids: Option<u64>,
    /// Bytes read from and written to storage so far (a VM: by its
    /// monitor).
    pub block_read: Option<u64>,
    pub block_written: Option<u64>,
}

/// How a backend would run a spec on this host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Description {
    /// What runs the workload, for people: `namespaces + cgroup v1`,
    /// `isola's monitor on KVM`, `QEMU microvm with a software CPU`.
    pub runs_on: String,
    /// The monitor a VM runs on, as `--vmm` names it.
    pub monitor: Option<String>,
    /// Why it runs at less than native speed, in a few words, when it does
    /// (`qemu-tcg: emulated, not KVM speed`).
    pub emulated: Option<String>,
    /// The guest kernel a VM boots.
    pub kernel: Option<PathBuf>,
    /// The guest memory a VM maps, bytes.
    pub guest_memory: Option<u64>,
    /// The `isola run` flags, besides `--backend`, that make a run go this
    /// same way even where the defaults differ (`--vmm qemu --kernel K`).
    pub flags: Vec<String>,
    /// Per-image artefacts the backend builds on first use, as a directory
    /// and a file-name prefix (a VM's cached guest root filesystem).
    pub artefacts: Option<(PathBuf, String)>,
    /// Named volumes (`-v NAME:/path`) can be attached here.
    pub volumes: bool,
    /// `isola exec` reaches a detached sandbox here.
    pub exec: bool,
    /// `--network NAME` (a bridge network) works here.
    pub networks: bool,
}

/// One thing a backend says about the host in `isola info`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFact {
    /// The key in `isola info --json`; `None` for a line only for people.
    pub key: Option<&'static str>,
    pub value: serde_json::Value,
    /// The line `isola info` prints, as label and text; `None` for a fact
    /// only the JSON carries.
    pub line: Option<(&'static str, String)>,
}

impl HostFact {
    /// A fact both for people and the JSON, with the same text.
    pub fn text(key: &'static str, label: &'static str, text: String) -> HostFact {
        HostFact {
            key: Some(key),
            value: serde_json::Value::String(text.clone()),
            line: Some((label, text)),
        }
    }

    /// A yes/no fact: a bool in the JSON, and for people a line of its own
    /// if `line` gives one.
    pub fn flag(key: &'static str, value: bool, line: Option<(&'static str, String)>) -> HostFact {
        HostFact {
            key: Some(key),
            value: serde_json::Value::Bool(value),
            line,
        }
    }

    /// A line only for people.
    pub fn line(label: &'static str, text: String) -> HostFact {
        HostFact {
            key: None,
            value: serde_json::Value::Null,
            line: Some((label, text)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The host lacks something the backend needs; the sentence says what
    /// to do.
    #[error("{reason}")]
    Unavailable {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The spec asks for something this backend does not do; the sentence
    /// says what to use instead.
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A step of making, running or removing the sandbox failed.
    #[error("{step}")]
    Step {
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An operation the backend has no way to do (yet).
    #[error("{what} is not supported here: {why}")]
    NotSupported {
        what: &'static str,
        why: &'static str,
    },
    /// The sandbox is not in the state the operation needs.
    #[error("the sandbox {0}")]
    State(&'static str),
}

impl BackendError {
    /// A refusal for a host that lacks something, with no deeper cause.
    pub fn unavailable(reason: impl Into<String>) -> BackendError {
        BackendError::Unavailable {
            reason: reason.into(),
            source: None,
        }
    }

    /// `step` failed because of `source`.
    pub fn step(
        step: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BackendError {
        BackendError::Step {
            step: step.into(),
            source: Box::new(source),
        }
    }
}
