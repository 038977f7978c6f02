//! A disk as a VM's artifact lists it: a file, read-only or not, and the
//! serial the guest finds it by. Both monitors attach them.

use std::path::PathBuf;

/// A file the guest sees as a virtio-blk disk. isola-init finds it by its
/// serial (`/sys/block/vdX/serial`), not by its order: QEMU's microvm and
/// isola's monitor number their slots differently.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Disk {
    pub path: PathBuf,
    pub read_only: bool,
    /// At most [`Disk::SERIAL_MAX`] bytes (virtio-blk's ID).
    pub serial: String,
}

impl Disk {
    pub const SERIAL_MAX: usize = 20;
}
