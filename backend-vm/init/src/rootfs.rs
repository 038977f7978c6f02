//! The workload's root: the image's read-only disk under an overlay whose
//! upper layer is a tmpfs (or, for kernels without virtio-blk, the
//! initramfs itself), and `--read-only`.

use nix::mount::{mount, MsFlags};

use crate::fail::{describe_io, Failure};
use crate::mounts::make_dir;

/// Where the pieces of the new root are mounted in the initramfs; hidden
/// from the workload once the root moves.
const IMAGE: &str = "/.isola/image";
const WRITABLE: &str = "/.isola/rw";
const ROOT: &str = "/.isola/root";
/// Moved into the new root with what is under them; the disk has them as
/// real directories (isola makes sure when it builds it).
const MOVED: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Mount the disk `serial` (erofs) under an overlay with a tmpfs upper and
/// make that the root, as switch_root does: the initramfs cannot be
/// pivoted away from, so the new root is moved over it and chrooted into.
pub fn enter_disk(serial: &str) -> Result<(), Failure> {
    let dev = crate::disks::find(serial)?;
    make_dir(IMAGE)?;
    mount(
        Some(dev.as_str()),
        IMAGE,
        Some("erofs"),
        MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| Failure::errno(format!("cannot mount the image's disk {dev}"), e))?;
    make_dir(WRITABLE)?;
    mount(
        Some("tmpfs"),
        WRITABLE,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .map_err(|e| Failure::errno("cannot mount the root's writable tmpfs", e))?;
    make_dir(&format!("{WRITABLE}/upper"))?;
    make_dir(&format!("{WRITABLE}/work"))?;
    make_dir(ROOT)?;
    let layers = format!("lowerdir={IMAGE},upperdir={WRITABLE}/upper,workdir={WRITABLE}/work");
    mount(
        Some("overlay"),
        ROOT,
        Some("overlay"),
        MsFlags::empty(),
        Some(layers.as_str()),
    )
    .map_err(|e| Failure::errno("cannot mount the root overlay", e))?;
    for m in MOVED {
        let to = format!("{ROOT}{m}");
        mount(
            Some(m),
            to.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| Failure::errno(format!("cannot move {m} into the image's root"), e))?;
    }
    std::env::set_current_dir(ROOT)
        .map_err(|e| Failure::setup("cannot enter the image's root", describe_io(&e)))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| Failure::errno("cannot move the image's root over the initramfs", e))?;
    nix::unistd::chroot(".").map_err(|e| Failure::errno("cannot chroot into the image", e))?;
    std::env::set_current_dir("/")
        .map_err(|e| Failure::setup("cannot enter the image's root", describe_io(&e)))
}

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
