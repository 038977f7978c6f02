//! The in-kernel PIT (i8254), and turning off its lost-tick reinjection on
//! a thread of its own while the guest boots.
//!
//! With reinjection on (KVM's default), destroying the VM unregisters two
//! irq notifiers, each behind an SRCU grace period; the second follows the
//! first too closely for the kernel's expedited path and waits for timer
//! ticks: 4–16 ms on this host of a VM's 20-odd ms teardown. Turning it
//! off costs the same waits, but they can overlap the guest's run instead
//! of adding to its exit. Lost PIT ticks are then dropped, as with QEMU's
//! `lost_tick_policy=discard`: Linux under KVM keeps time by kvm-clock,
//! not by counting PIT ticks, and leaves the PIT once its APIC timer runs.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::thread::JoinHandle;

use kvm_bindings::{kvm_pit_config, kvm_reinject_control, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::VmFd;

use super::error::DeviceError;

// Not wrapped by kvm-ioctls. _IO, though it takes a pointer: the kernel's
// own definition carries no size.
vmm_sys_util::ioctl_io_nr!(KVM_REINJECT_CONTROL, kvm_bindings::KVMIO, 0x71);

/// The thread turning reinjection off. Dropping it waits for the thread,
/// so that its copy of the VM's fd is closed with the VM: declared after
/// the VM and its memory, it is dropped before them.
pub struct ReinjectOff(Option<JoinHandle<()>>);

/// Create the PIT and start turning its reinjection off.
pub fn create(vm: &VmFd) -> Result<ReinjectOff, DeviceError> {
    vm.create_pit2(kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    })
    .map_err(|source| DeviceError::Kvm {
        ioctl: "KVM_CREATE_PIT2",
        source,
    })?;
    // SAFETY: dup of a descriptor we own; the new one is owned by `file`.
    let fd = unsafe { libc::dup(vm.as_raw_fd()) };
    if fd < 0 {
        // Reinjection stays on: the teardown is slower, nothing else.
        tracing::debug!("dup of the VM fd: {}", std::io::Error::last_os_error());
        return Ok(ReinjectOff(None));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    let thread = std::thread::Builder::new()
        .name("isola-pit".into())
        .spawn(move || {
            let off = kvm_reinject_control {
                pit_reinject: 0,
                ..Default::default()
            };
            // SAFETY: KVM reads a kvm_reinject_control from the pointer
            // and keeps nothing; `file` is the VM's fd.
            let r =
                unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&file, KVM_REINJECT_CONTROL(), &off) };
            if r < 0 {
                tracing::debug!("KVM_REINJECT_CONTROL: {}", std::io::Error::last_os_error());
            }
        })
        .map_err(DeviceError::PitThread)?;
    Ok(ReinjectOff(Some(thread)))
}

impl Drop for ReinjectOff {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}
