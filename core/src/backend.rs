//! The backend trait: something that turns a run spec into a running sandbox
//! and reports how it ended. The container and VM backends implement it; the
//! frontend and the benchmark drive sandboxes only through it.

use std::path::PathBuf;
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

/// What a run needs besides the spec.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The sandbox's own directory (instances/<id>): everything the backend
    /// writes goes below it.
    pub instance_dir: PathBuf,
    pub explain: Explain,
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
