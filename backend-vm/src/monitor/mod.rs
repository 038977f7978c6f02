//! What runs a guest artifact: isola's own KVM monitor (the product) or
//! QEMU's microvm (for comparison, and where isola's monitor cannot boot
//! Linux). Both see the same artifact and speak the same devices: COM1 is the
//! workload's stdin/stdout, COM2 its stderr, port 0xf4 its exit status.

mod isola;
pub mod qemu;
mod qemu_serial;

use std::path::PathBuf;
use std::time::Duration;

use crate::kvm::{End, VmError};

pub use isola::Isola;

/// How a guest run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub end: End,
    /// Boot-timer marks with their time since the monitor started (on
    /// QEMU, which has no boot timer: when isola-init's records came).
    pub marks: Vec<(u8, Duration)>,
    /// The guest's last console lines, when isola-init never started (the
    /// kernel's boot log is held back until it does; see `console_tail`).
    pub console: Option<String>,
}

/// What a VM boots.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub kernel: PathBuf,
    /// newc archives, unpacked by the kernel in this order.
    pub initrds: Vec<PathBuf>,
    pub cmdline: String,
    pub memory_bytes: u64,
    pub vcpus: u8,
    /// Show the kernel's console (COM2) live from the start (isola -v),
    /// instead of holding it until isola-init runs.
    pub kernel_log: bool,
}

/// What the caller's stdin is to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Not read (no `-i`).
    None,
    /// The workload's stdin, a pipe in the guest: framed (see
    /// `stdin_frame`), so that its end reaches the workload.
    Pipe,
    /// `-t`: raw bytes for the guest's terminal on COM1.
    Terminal,
}

pub trait Monitor {
    /// `isola` or `qemu`, as `--vmm` takes it.
    fn name(&self) -> &'static str;

    /// Boot `artifact` with the guest's COM1 on this process's stdout (and
    /// stdin, as `input` says), COM2 on its stderr, until the guest ends.
    fn run(&self, artifact: &Artifact, input: Input) -> Result<Ran, VmError>;
}
