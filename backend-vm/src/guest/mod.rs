//! What the guest boots besides its kernel: the image's root filesystem as an
//! initramfs (cached per image and isola-init), and the per-run spec archive.

mod cache;
mod initramfs;
mod merge;
mod newc;

pub use cache::{rootfs, GuestError};
pub use initramfs::{spec_archive, write_rootfs, ArchiveError, ArchiveStats};
