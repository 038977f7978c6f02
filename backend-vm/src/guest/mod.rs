//! What the guest boots besides its kernel: the image's root filesystem as a
//! read-only disk (or, for kernels without virtio-blk, an initramfs), cached
//! per image, and the per-run spec archive.

mod archive_error;
mod cache;
mod disk;
mod initramfs;
mod merge;
mod newc;

pub use archive_error::ArchiveError;
pub use cache::{init_only, rootfs, GuestError};
pub use disk::{root_disk, MKFS_EROFS};
pub use initramfs::{spec_archive, write_rootfs, ArchiveStats};
