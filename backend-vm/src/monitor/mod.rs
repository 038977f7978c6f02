//! What runs a guest artifact: isola's own KVM monitor (the product) or
//! QEMU's microvm (for comparison, and where isola's monitor cannot boot
//! Linux). Both see the same artifact and speak the same devices: COM1 is the
//! workload's stdin/stdout, COM2 its stderr and isola-init's control
//! channel, the exit port its exit status.

pub(crate) mod error;
mod isola;
pub mod qemu;
mod qemu_error;
mod qemu_serial;
pub(crate) mod running;

use std::fs::File;

use crate::guest_exit::GuestExit;

pub use error::MonitorError;
pub use isola::Isola;
pub use qemu_error::QemuError;
pub use running::Running;
// Where callers have always found them; modules of their own, so that
// what the monitors use (the KVM monitor, its process) need not use them.
pub use crate::artifact::{Artifact, Input};
pub use crate::disk::Disk;

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
