//! What can go wrong running a guest under QEMU, besides the guest itself.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("qemu-system-x86_64 is not installed: install qemu-system-x86, or use --vmm isola")]
    NotInstalled,
    #[error("cannot start qemu-system-x86_64")]
    Spawn(#[source] io::Error),
    #[error("waiting for qemu-system-x86_64")]
    Wait(#[source] io::Error),
    #[error("the guest could not be run by qemu-system-x86_64 (exit status {0})")]
    Failed(i32),
    #[error("qemu-system-x86_64 was killed by a signal")]
    Killed,
    #[error("a temporary initrd file")]
    TempInitrd(#[source] io::Error),
    #[error("writing the initrd")]
    WriteInitrd(#[source] io::Error),
    #[error("a temporary directory for the UARTs")]
    TempDir(#[source] io::Error),
    #[error("making the FIFO {}", path.display())]
    MakeFifo {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("opening {}", path.display())]
    OpenFifo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading isola-init's control channel")]
    Control(#[source] io::Error),
    #[error("starting the serial relay")]
    RelayThread(#[source] io::Error),
}
