//! `--read-only` in the guest: the initramfs root remounted read-only, after
//! isola-init made what it needs in it (the working directory).

use nix::mount::{mount, MsFlags};

use crate::fail::Failure;

pub fn make_read_only() -> Result<(), Failure> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| Failure::errno("cannot make the root filesystem read-only", e))
}
