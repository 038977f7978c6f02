//! The mount table a container sees, built inside its own mount namespace (so
//! it all goes away with the namespace): the overlay root, the kernel
//! filesystems, a minimal /dev, the runc-style masks, binds and volumes, then
//! pivot_root into it.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::Path;

use isola_core::fsutil::try_secure_join;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, pivot_root};

use crate::fail::Fail;
use crate::rootfs::Rootfs;

/// /proc and /sys entries hidden as runc's default spec hides them: they
/// leak host facts or let a root workload poke the host kernel.
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Those of [`MASKED`] that are directories on Linux.
const MASKED_DIRS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Read-only as in runc's default spec: knobs of the host kernel.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes a container gets: (name, major, minor).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// mount(2), its failure naming the filesystem (or source) and target.
pub(crate) fn m(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Fail> {
    mount(source, target, fstype, flags, data).map_err(|e| {
        let what = fstype
            .map(str::to_string)
            .or(source.map(|s| s.display().to_string()))
            .unwrap_or_else(|| "?".into());
        Fail::sys(format!("mounting {what} on {}", target.display()), e)
    })
}

/// Stop mounts and unmounts here from reaching the host.
pub fn make_private() -> Result<(), Fail> {
    m(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

/// The overlay root: `lower` is the `lowerdir=` list relative to `layers_dir`
/// (relative names keep the option under the kernel's one-page limit for
/// images of many layers).
///
/// `volatile` is for a sandbox whose upper dir goes at exit (as podman
/// mounts `--rm` containers): without it the overlay's unmount, when the
/// sandbox's init exits, syncs the whole filesystem under the upper dir
/// (`ovl_sync_fs`), 1 to 11 ms on the exit path here. The price: overlayfs
/// leaves `work/work/incompat/volatile/dirty` behind and refuses that work
/// dir until it is removed (see `isola_core::scratch`).
pub fn overlay(rootfs: &Rootfs) -> Result<(), Fail> {
    let layers_dir = &rootfs.layers_dir;
    chdir(layers_dir).map_err(|e| Fail::sys(format!("entering {}", layers_dir.display()), e))?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        rootfs.lower,
        rootfs.upper.display(),
        rootfs.work.display(),
        if rootfs.volatile { ",volatile" } else { "" }
    );
    if data.len() >= 4096 {
        return Err(Fail::msg(format!(
            "the image has too many layers for one overlay mount ({} bytes of options, the limit is 4095)",
            data.len()
        )));
    }
    mount(
        Some("overlay"),
        &rootfs.target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| {
        let hint = if e == nix::errno::Errno::ENODEV {
            "; the kernel has no overlayfs (modprobe overlay)"
        } else {
            ""
        };
        Fail::sys(format!("mounting the overlay root filesystem{hint}"), e)
    })
}

/// A directory to mount on. One mkdir in the common cases (fresh, or the
/// image has it); std's recursive create would stat it after EEXIST, and a
/// non-directory fails the mount itself with ENOTDIR.
fn mount_point(path: &Path) -> Result<(), Fail> {
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => mkdir_p(path),
    }
}

pub(crate) fn mkdir_p(path: &Path) -> Result<(), Fail> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| Fail::io(format!("creating {}", path.display()), e))
}

/// Where `target` is inside the root filesystem, its links followed within
/// it; a chain of more than 40 links (which the image may hold to lead a
/// mount out of it) is refused.
pub fn inside(rootfs: &Path, target: &str) -> Result<std::path::PathBuf, Fail> {
    try_secure_join(rootfs, target)
        .map_err(|e| Fail::io(format!("the mount target {target} in the image"), e))
}

/// Where a bind of `source` goes: a directory for a directory, an empty
/// file (and its directories) for anything else. `what` names the source
/// in an error.
pub(crate) fn bind_point(source: &Path, dest: &Path, what: &str) -> Result<(), Fail> {
    let meta =
        fs::metadata(source).map_err(|e| Fail::io(format!("{what} {}", source.display()), e))?;
    if meta.is_dir() {
        return mkdir_p(dest);
    }
    if let Some(p) = dest.parent() {
        mkdir_p(p)?;
    }
    if fs::symlink_metadata(dest).is_err() {
        fs::write(dest, b"").map_err(|e| Fail::io(format!("creating {}", dest.display()), e))?;
    }
    Ok(())
}

/// A bind mount of a host path (file or directory) at `target` inside `rootfs`.
pub fn bind(source: &Path, rootfs: &Path, target: &str, read_only: bool) -> Result<(), Fail> {
    let dest = inside(rootfs, target)?;
    bind_point(source, &dest, "volume source")?;
    m(
        Some(source),
        &dest,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if read_only {
        remount_ro(&dest, MsFlags::empty())?;
    }
    Ok(())
}

/// Mount an attached volume's ext4 filesystem at `target`.
pub fn volume(device: &Path, rootfs: &Path, target: &str, read_only: bool) -> Result<(), Fail> {
    let dest = inside(rootfs, target)?;
    mkdir_p(&dest)?;
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    m(Some(device), &dest, Some("ext4"), flags, None)
}

fn remount_ro(dest: &Path, extra: MsFlags) -> Result<(), Fail> {
    m(
        None,
        dest,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | extra,
        None,
    )
}

/// /proc, /sys, /dev and friends inside `rootfs`.
pub fn kernel_filesystems(rootfs: &Path, privileged: bool) -> Result<(), Fail> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    // An image's /proc, /sys or /dev may be a symlink: followed within
    // the image, never onto the host.
    let proc_dir = inside(rootfs, "/proc")?;
    mount_point(&proc_dir)?;
    m(
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        nosuid_noexec_nodev,
        None,
    )?;
    let sys = inside(rootfs, "/sys")?;
    mount_point(&sys)?;
    let sys_flags = nosuid_noexec_nodev
        | if privileged {
            MsFlags::empty()
        } else {
            MsFlags::MS_RDONLY
        };
    m(
        Some(Path::new("sysfs")),
        &sys,
        Some("sysfs"),
        sys_flags,
        None,
    )?;

    let dev = inside(rootfs, "/dev")?;
    mount_point(&dev)?;
    if privileged {
        m(
            Some(Path::new("/dev")),
            &dev,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
    } else {
        m(
            Some(Path::new("tmpfs")),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        // mknod's mode passes through the umask; the nodes must be 0666.
        // The workload gets the caller's umask back below.
        let umask = nix::sys::stat::umask(Mode::empty());
        let made = DEVICES.iter().try_for_each(|(name, major, minor)| {
            mknod(
                &dev.join(name),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(*major as u64, *minor as u64),
            )
            .map_err(|e| Fail::sys(format!("creating /dev/{name}"), e))
        });
        nix::sys::stat::umask(umask);
        made?;
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
            ("core", "/proc/kcore"),
        ] {
            symlink(target, dev.join(link))
                .map_err(|e| Fail::io(format!("creating /dev/{link}"), e))?;
        }
        let pts = dev.join("pts");
        mount_point(&pts)?;
        m(
            Some(Path::new("devpts")),
            &pts,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        )?;
    }
    let shm = dev.join("shm");
    mount_point(&shm)?;
    m(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        nosuid_noexec_nodev,
        Some("mode=1777,size=65536k"),
    )?;
    let mqueue = dev.join("mqueue");
    mount_point(&mqueue)?;
    m(
        Some(Path::new("mqueue")),
        &mqueue,
        Some("mqueue"),
        nosuid_noexec_nodev,
        None,
    )?;
    Ok(())
}

/// Hide and freeze what runc's default spec hides and freezes. Each path
/// is mounted on as what it is on Linux (a directory gets an empty
/// read-only tmpfs, a file /dev/null) without a stat first; ENOENT means
/// this kernel lacks it, and a path of the other kind is tried again as
/// that.
pub fn mask_paths(rootfs: &Path) -> Result<(), Fail> {
    // Only the image's /proc and /sys may be links (what is below them is
    // the kernel's, just mounted): resolved once, not once per path.
    let proc_dir = inside(rootfs, "/proc")?;
    let sys_dir = inside(rootfs, "/sys")?;
    let dest = |path: &str| match path.strip_prefix("/proc/") {
        Some(rest) => proc_dir.join(rest),
        None => sys_dir.join(path.strip_prefix("/sys/").unwrap_or(path)),
    };
    for path in MASKED {
        let dest = dest(path);
        let is_dir = MASKED_DIRS.contains(path);
        match mask(&dest, is_dir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR | Errno::EISDIR | Errno::EINVAL) => match mask(&dest, !is_dir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(Fail::sys(format!("masking {path}"), e)),
            },
            Err(e) => return Err(Fail::sys(format!("masking {path}"), e)),
        }
    }
    for path in READ_ONLY {
        let dest = dest(path);
        match mount(
            Some(&dest),
            &dest,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => remount_ro(
                &dest,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            )?,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Fail::sys(format!("making {path} read-only"), e)),
        }
    }
    Ok(())
}

/// An empty read-only tmpfs over a directory, /dev/null over a file.
fn mask(dest: &Path, dir: bool) -> nix::Result<()> {
    if dir {
        mount(
            Some("tmpfs"),
            dest,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=0"),
        )
    } else {
        mount(
            Some("/dev/null"),
            dest,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

/// Make `rootfs` the root and drop the host's root from this namespace.
/// `pivot_root(".", ".")` stacks the old root under the new one, and the
/// lazy unmount of "." then removes exactly the old root (runc's way: no
/// directory inside the image is needed).
pub fn pivot(rootfs: &Path, read_only: bool) -> Result<(), Fail> {
    chdir(rootfs).map_err(|e| Fail::sys("entering the root filesystem", e))?;
    pivot_root(".", ".").map_err(|e| Fail::sys("pivot_root", e))?;
    // Keep the old root's unmount from propagating anywhere.
    m(
        None,
        Path::new("."),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Fail::sys("unmounting the host's root", e))?;
    chdir("/").map_err(|e| Fail::sys("chdir /", e))?;
    if read_only {
        remount_ro(Path::new("/"), MsFlags::empty())?;
    }
    Ok(())
}

/// The workload's working directory, created if the image lacks it (as Docker does).
pub fn workdir(cwd: &str) -> Result<(), Fail> {
    let c = CString::new(cwd)
        .map_err(|_| Fail::msg(format!("working directory {cwd:?} contains a NUL byte")))?;
    if chdir(c.as_c_str()).is_err() {
        mkdir_p(Path::new(cwd))?;
        chdir(c.as_c_str())
            .map_err(|e| Fail::sys(format!("entering the working directory {cwd}"), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_and_read_only_paths_lie_under_proc_or_sys() {
        // mask_paths resolves only /proc and /sys within the image.
        for path in MASKED.iter().chain(READ_ONLY) {
            assert!(
                path.starts_with("/proc/") || path.starts_with("/sys/"),
                "{path}"
            );
        }
    }

    #[test]
    fn masked_dirs_are_masked_paths_and_are_dirs_here() {
        for dir in MASKED_DIRS {
            assert!(MASKED.contains(dir), "{dir}");
        }
        // Where this host has them, the kind guessed first is the right one.
        for path in MASKED {
            if let Ok(m) = fs::symlink_metadata(path) {
                assert_eq!(m.is_dir(), MASKED_DIRS.contains(path), "{path}");
            }
        }
    }
}
