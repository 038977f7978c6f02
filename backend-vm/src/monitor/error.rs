//! Why a monitor could not run a guest to an exit status: its own failures
//! (isola's KVM monitor's by stage, QEMU's), or the guest's.

use std::io;
use std::path::PathBuf;

use super::qemu_error::QemuError;
use crate::guest_exit::GuestFailed;
use crate::kvm::VmError;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot read the initramfs {}", path.display())]
    Initrd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Kvm(VmError),
    #[error(transparent)]
    Qemu(#[from] QemuError),
    /// isola's monitor process: starting it, its jail, its death.
    #[error(transparent)]
    Vmm(#[from] crate::vmm::VmmError),
    /// The guest ran, and ended without an exit status or was stopped.
    #[error(transparent)]
    Guest(#[from] GuestFailed),
}

impl From<VmError> for MonitorError {
    /// The guest's own failures are the guest's, whichever monitor ran it.
    fn from(e: VmError) -> MonitorError {
        match e {
            VmError::Guest(failed) => MonitorError::Guest(failed),
            other => MonitorError::Kvm(other),
        }
    }
}
