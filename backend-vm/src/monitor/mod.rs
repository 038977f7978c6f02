//! What runs a guest artifact: isola's own KVM monitor (the product) or
//! QEMU's microvm (for comparison, and where isola's monitor cannot boot
//! Linux). Both see the same artifact and speak the same devices: COM1 is the
//! workload's stdin/stdout, COM2 its stderr, the exit port its exit status.

mod error;
mod isola;
pub mod qemu;
mod qemu_error;
mod qemu_serial;

use std::path::PathBuf;

use crate::guest_exit::GuestExit;

pub use error::MonitorError;
pub use isola::Isola;
pub use qemu_error::QemuError;

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
    fn run(&self, artifact: &Artifact, input: Input) -> Result<GuestExit, MonitorError>;
}
