//! isola's own KVM monitor: one VM with guest memory, an in-kernel irqchip
//! and PIT, a vCPU started in long mode by Linux's 64-bit boot protocol, and
//! the standard port devices. [`run`] boots a kernel and runs it to its end.

mod boot;
mod cpu;
mod devices;
mod error;
mod feed;
mod kick;
mod layout;
mod machine;
mod memory;
pub mod mptable;
mod pit;
mod shared_out;
mod vcpus;
mod virtio;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use isola_guest_spec::ports::Mark;

use crate::deadline::Deadline;
use crate::disk::Disk;
use crate::guest_exit::GuestExit;

pub use boot::{Loaded, Protocol};
pub use error::{
    BootError, DeviceError, DiskError, KernelError, KvmUnavailable, MemoryError, VcpuError, VmError,
};
pub use machine::Machine;
pub use virtio::MmioSlot;

/// What to boot and how.
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<Vec<u8>>,
    pub cmdline: String,
    pub memory_bytes: u64,
    /// vCPUs, 1 to [`mptable::MAX_CPUS`].
    pub vcpus: u8,
    /// Hold COM1 and COM2 input until the guest writes this boot-timer mark
    /// (isola-init's workload started: before that the guest's tty would
    /// echo the input); COM2's also opens at [`Mark::Parked`], where a
    /// parked isola-init reads it for the go-ahead. `None`: feed both at
    /// once.
    pub input_after_mark: Option<Mark>,
    /// PVH or Linux's 64-bit protocol (see [`Protocol`]).
    pub protocol: Protocol,
    /// Stop the guest after this long (`None`: let it run).
    pub timeout: Option<Duration>,
    /// A stop that can be set while the guest runs (see [`Deadline`]).
    pub deadline: Deadline,
    /// virtio-blk disks, on the virtio-mmio bus in this order.
    pub disks: Vec<Disk>,
    /// A virtio-net device, the guest's eth0, right after the disks on
    /// the bus.
    pub net: Option<NetDevice>,
    /// A virtio-vsock device (the guest's CID is [`crate::virtio::GUEST_CID`])
    /// whose guest ports the host reaches through a unix socket the monitor
    /// listens on here: connect, send `CONNECT <port>\n`, read `OK
    /// <hostport>\n`, and the stream is the guest's. After the disks and
    /// the network device on the bus.
    pub vsock: Option<PathBuf>,
    /// A virtio-console with the ports `isola.stdout` and `isola.stderr`
    /// (`isola_guest_spec::ports`), whose output goes where COM1's and
    /// COM2's does ([`GuestIo`]); last on the bus.
    pub console: bool,
}

/// The guest's network card: its frames go through `tap`.
pub struct NetDevice {
    /// A tap opened with IFF_TAP, IFF_NO_PI and IFF_VNET_HDR, its header
    /// 12 bytes (TUNSETVNETHDRSZ): checked when the VM is built.
    pub tap: OwnedFd,
    /// The guest's MAC address (unicast).
    pub mac: [u8; 6],
}

/// Where the guest's UARTs lead: COM1 out and in, COM2 out and in.
pub struct GuestIo {
    pub com1_out: Box<dyn Write + Send>,
    pub com2_out: Box<dyn Write + Send>,
    pub com1_in: Option<Box<dyn Read + Send>>,
    /// Into COM2: isola-init's control channel (a signal number a byte).
    pub com2_in: Option<Box<dyn Read + Send>>,
    /// What to call when the guest writes these boot-timer marks.
    pub on_mark: Vec<(Mark, OnMark)>,
}

/// Called on a vCPU's thread when its mark comes: it must not block.
pub type OnMark = Box<dyn Fn() + Send + Sync>;

/// An [`OnMark`] that sets `flag`.
pub fn set_flag(flag: &Arc<AtomicBool>) -> OnMark {
    let flag = Arc::clone(flag);
    Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
}

/// Boot `config.kernel` and run it until it exits, resets or fails. Its
/// marks are timed from this call.
pub fn run(config: &VmConfig, io: GuestIo) -> Result<GuestExit, VmError> {
    Machine::build(config, io)?.run()
}
