//! Why isola's monitor could not run a guest: one error type per stage of
//! building and running the VM (memory, kernel, boot, devices, vCPUs), as
//! Firecracker's builder has, each keeping the error beneath it.

use std::io;
use std::path::PathBuf;

use linux_loader::{cmdline, configurator, loader};
use vm_memory::mmap::FromRangesError;
use vm_memory::GuestMemoryError;

use crate::guest_exit::GuestFailed;

/// Everything [`super::run`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Unavailable(#[from] KvmUnavailable),
    #[error("KVM_CREATE_VM() failed")]
    CreateVm(#[source] kvm_ioctls::Error),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    /// The guest ran, and ended without an exit status or was stopped.
    #[error(transparent)]
    Guest(#[from] GuestFailed),
}

/// /dev/kvm cannot be used: what the host lacks, in one sentence. The two
/// errnos the sentences explain are not kept as a cause: users would see
/// them twice.
#[derive(Debug, thiserror::Error)]
pub enum KvmUnavailable {
    #[error("there is no /dev/kvm: load kvm_intel or kvm_amd (and enable virtualization in the firmware)")]
    Missing,
    #[error("no permission to open /dev/kvm: run as root or join the kvm group")]
    Denied,
    #[error("cannot open /dev/kvm")]
    Open(#[source] kvm_ioctls::Error),
}

/// Guest memory: mapping it and handing it to KVM, and writing into it
/// what is not a boot table.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("guest memory of {mib} MiB is out of range: give 16 MiB to {max_mib} MiB")]
    OutOfRange { mib: u64, max_mib: u64 },
    #[error("mapping {mib} MiB of guest memory")]
    Map {
        mib: u64,
        #[source]
        source: FromRangesError,
    },
    #[error("finding guest memory in isola's address space")]
    HostAddress(#[source] GuestMemoryError),
    #[error("KVM_SET_USER_MEMORY_REGION() failed")]
    Register(#[source] kvm_ioctls::Error),
    #[error("writing the {what}")]
    Write {
        what: &'static str,
        #[source]
        source: GuestMemoryError,
    },
}

/// Loading the kernel, its command line and the initrd.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot open the kernel {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot load the ELF kernel {}", path.display())]
    Elf {
        path: PathBuf,
        #[source]
        source: loader::Error,
    },
    #[error("{} is neither an ELF vmlinux nor a bzImage isola can load; give a Linux kernel image", path.display())]
    NotAKernel {
        path: PathBuf,
        #[source]
        source: loader::Error,
    },
    #[error("preparing the kernel command line")]
    CmdlineBuffer(#[source] cmdline::Error),
    #[error("kernel command line {cmdline:?} (at most {max} bytes)")]
    Cmdline {
        cmdline: String,
        max: usize,
        #[source]
        source: cmdline::Error,
    },
    #[error("writing the kernel command line")]
    WriteCmdline(#[source] loader::Error),
    #[error("the initrd ({initrd_mib} MiB) and the kernel do not fit in {memory_mib} MiB of guest memory; give the VM more memory")]
    InitrdTooBig { initrd_mib: u64, memory_mib: u64 },
}

/// What the boot CPU starts with: registers, MSRs, CPUID, the GDT and page
/// tables, the boot information and the MP table.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{ioctl}() failed")]
    Kvm {
        ioctl: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("writing the {what}")]
    Table {
        what: &'static str,
        #[source]
        source: GuestMemoryError,
    },
    #[error("writing the {what}")]
    BootParams {
        what: &'static str,
        #[source]
        source: configurator::Error,
    },
    #[error("{cpus} vCPUs: isola's monitor runs 1 to {max}")]
    Cpus { cpus: u8, max: u8 },
    #[error("building the MSR list")]
    MsrList(#[source] vmm_sys_util::fam::Error),
    #[error("KVM took {set} of {of} boot MSRs (MSR {index:#x} refused)")]
    MsrRefused { set: usize, of: usize, index: u32 },
}

/// The devices: the in-kernel irqchip and PIT, the UARTs' and virtio
/// devices' interrupts, the virtio notifications and their thread.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{ioctl}() failed")]
    Kvm {
        ioctl: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("eventfd for IRQ {irq}")]
    EventFd {
        irq: u32,
        #[source]
        source: io::Error,
    },
    #[error("a thread for the PIT")]
    PitThread(#[source] io::Error),
    #[error("the virtio device thread")]
    VirtioThread(#[source] io::Error),
    #[error(transparent)]
    Net(#[from] crate::virtio::NetError),
    #[error("cannot listen on the vsock socket {}", path.display())]
    VsockSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files behind the guest's virtio-blk disks.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open the disk image {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the serial {serial:?} of the disk {} is longer than {max} bytes", path.display())]
    Serial {
        path: PathBuf,
        serial: String,
        max: usize,
    },
    #[error("{count} disks: isola's monitor attaches at most {max}")]
    TooMany { count: usize, max: usize },
}

/// Creating the vCPUs and running them.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("{ioctl}() failed")]
    Kvm {
        ioctl: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot install the vCPU kick signal handler")]
    KickHandler(#[source] io::Error),
    #[error("starting the thread of vCPU {id}")]
    Thread {
        id: usize,
        #[source]
        source: io::Error,
    },
}
