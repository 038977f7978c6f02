//! The backend trait: something that turns a run spec into a running sandbox
//! and reports how it ended. The container and VM backends implement it; the
//! frontend and the benchmark drive sandboxes only through it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::explain::Explain;
use crate::spec::RunSpec;

pub trait Backend {
    /// Short name as the CLI takes it (`container`, `vm`).
    fn name(&self) -> &'static str;

    /// Run the sandbox in the foreground until its workload exits, then tear
    /// it down. Returns how it ended; `Err` only when it could not be run.
    fn run(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Outcome, BackendError>;

    /// Clear what a sandbox of this ID left outside its directory when its
    /// isola died without tearing down (a cgroup, say). Nothing by default.
    fn cleanup(&self, _id: &str) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The signals isola passes on to the workload, whatever the backend: the
/// terminal's (INT, QUIT, HUP), a supervisor's TERM, and the user signals.
pub const RELAYED_SIGNALS: [nix::sys::signal::Signal; 6] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
    nix::sys::signal::Signal::SIGUSR1,
    nix::sys::signal::Signal::SIGUSR2,
];

/// What a run needs besides the spec.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The sandbox's own directory (instances/<id>): everything the backend
    /// writes goes below it.
    pub instance_dir: PathBuf,
    pub explain: Explain,
    pub idle: IdleWork,
    /// The sandbox's writable layer is thrown away at exit (`--rm`), so
    /// nothing in it needs to reach the disk: the backend may skip syncing
    /// it (overlayfs' `volatile`, as podman does for `--rm` containers).
    pub ephemeral: bool,
}

/// Housekeeping the frontend wants done while the workload runs (tidying
/// the scratch pool): the backend calls [`IdleWork::run`] where it would
/// otherwise only wait for the sandbox. It runs right there, on the
/// calling thread: a thread of its own cost more CPU (its stack, its
/// malloc arena) than the work, on a run that is CPU-bound.
#[derive(Clone, Default)]
pub struct IdleWork(Option<Arc<dyn Fn() + Send + Sync>>);

impl IdleWork {
    pub fn new(work: impl Fn() + Send + Sync + 'static) -> IdleWork {
        IdleWork(Some(Arc::new(work)))
    }

    pub fn run(&self) {
        if let Some(work) = &self.0 {
            work();
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

/// How a sandbox ended, and how long each phase took.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: ExitStatus,
    /// Why the workload never started or how it died, for the user (exec
    /// failures, the OOM killer).
    pub message: Option<String>,
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

/// The phases every backend times, in order (see DESIGN.md).
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

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The host lacks something the backend needs; the message says what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error("{what}")]
    Setup {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
