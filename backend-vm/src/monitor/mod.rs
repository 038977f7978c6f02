//! What runs a guest artifact: isola's own KVM monitor (the product) or
//! QEMU's microvm (for comparison, and where isola's monitor cannot boot
//! Linux). Both see the same artifact and speak the same devices: COM1 is the
//! workload's stdin/stdout, COM2 its stderr and isola-init's control
//! channel, the exit port its exit status.

mod error;
mod isola;
pub mod qemu;
mod qemu_error;
mod qemu_serial;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::deadline::Deadline;
use crate::guest_exit::GuestExit;
use crate::notice::Notice;

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
    /// virtio-blk disks, in this order on the guest's virtio-mmio bus.
    pub disks: Vec<Disk>,
    /// Where the monitor offers the guest's agent channel, a unix socket
    /// (see `crate::agent`); None when the guest cannot have one.
    pub agent: Option<PathBuf>,
    /// Offer the virtio-serial ports `isola.stdout` and `isola.stderr`
    /// (see `isola_guest_spec::ports::STDOUT_PORT_NAME`), whose output
    /// goes where COM1's and COM2's does.
    pub stdio_ports: bool,
    /// The marker isola-init writes last on the stdio ports (see
    /// `GuestSpec::stdio_end`), for a monitor that must tell it when all
    /// their output has arrived.
    pub stdio_end: Option<String>,
}

/// A file the guest sees as a virtio-blk disk. isola-init finds it by its
/// serial (`/sys/block/vdX/serial`), not by its order: QEMU's microvm and
/// isola's monitor number their slots differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: PathBuf,
    pub read_only: bool,
    /// At most [`Disk::SERIAL_MAX`] bytes (virtio-blk's ID).
    pub serial: String,
}

impl Disk {
    pub const SERIAL_MAX: usize = 20;
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

/// What a sandbox shares with the thread running its monitor.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// When the monitor must stop the guest if it has not ended.
    pub deadline: Deadline,
    /// The process running the guest once there is one (isola's own for
    /// isola's monitor, QEMU's for QEMU); 0 before.
    process: Arc<AtomicU32>,
    /// Set when isola-init says it is parked (see `Mark::Parked`), for a
    /// sandbox that asked it to park.
    parked: Option<Notice>,
}

impl Running {
    pub fn set_process(&self, pid: u32) {
        self.process.store(pid, Ordering::SeqCst);
    }

    pub fn process(&self) -> Option<u32> {
        Some(self.process.load(Ordering::SeqCst)).filter(|&pid| pid != 0)
    }

    /// Watch for isola-init's `Parked` mark: `notice` is set when it comes.
    pub(crate) fn watch_parked(&mut self, notice: Notice) {
        self.parked = Some(notice);
    }

    /// The guest is parked: what watches for it learns it.
    pub(crate) fn note_parked(&self) {
        if let Some(n) = &self.parked {
            n.set();
        }
    }
}

pub trait Monitor: Send {
    /// `isola` or `qemu`, as `--vmm` takes it.
    fn name(&self) -> &'static str;

    /// Whether a SIGTERM isola passes on arms the deadline (see
    /// `deadline::SIGNAL_GRACE`): isola's monitor does, so that a guest
    /// whose kernel or isola-init is not up to take it (a slow boot on
    /// PVM) does not outlive isola's caller for long.
    fn stops_unresponsive_guests(&self) -> bool {
        false
    }

    /// Boot `artifact` with the guest's COM1 on this process's stdout (and
    /// stdin, as `input` says), COM2 on its stderr and `control`'s bytes
    /// into COM2 once isola-init reads them (it is parked, or the workload
    /// runs), until the guest ends or `running.deadline` passes. The
    /// `Parked` mark is passed on through [`Running::note_parked`].
    fn run(
        &self,
        artifact: &Artifact,
        input: Input,
        control: File,
        running: &Running,
    ) -> Result<GuestExit, MonitorError>;
}
