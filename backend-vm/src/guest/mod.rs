//! What the guest boots besides its kernel: the image's root filesystem as an
//! initramfs (cached per image and isola-init), and the per-run spec archive.

mod archive_error;
mod cache;
mod initramfs;
mod merge;
mod newc;

pub use archive_error::ArchiveError;
pub use cache::{rootfs, GuestError};
pub use initramfs::{spec_archive, write_rootfs, ArchiveStats};
