//! What a VM boots, as either monitor takes it: kernel, initramfs
//! archives, command line, memory, vCPUs, disks, the agent's socket, and
//! what the caller's stdin is to the guest.

use std::path::PathBuf;

use crate::disk::Disk;

/// What a VM boots (sent to isola's monitor process as JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// Where isola's monitor process makes its jail (the instance's
    /// `jail`), removed when it ends; `None`: a temporary directory.
    pub jail: Option<PathBuf>,
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
    /// A virtio-net device on a bridge network's tap; None without one.
    #[serde(default)]
    pub net: Option<NetLink>,
}

/// The guest's eth0: its MAC, and the tap the host put on the bridge. The
/// tap's descriptor does not travel in the JSON: the monitor inherits it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NetLink {
    pub mac: [u8; 6],
    #[serde(skip)]
    pub tap: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl NetLink {
    /// `02:69:0a:59:00:02`, as QEMU and `ip link` write a MAC.
    pub fn mac_text(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
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
