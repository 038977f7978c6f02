//! The filesystems every Linux program expects: the kernel's before
//! anything else runs, scratch space in the root the workload gets.

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::fail::{describe_io, Failure};

struct Mount {
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
    /// Skipped where the guest's kernel lacks the filesystem (ENODEV).
    optional: bool,
}

const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NODEV.union(MsFlags::MS_NOEXEC);

/// In order: each later target lies inside an earlier one or beside it.
/// The data strings are runc's defaults (gid 5 is "tty" by convention).
const MOUNTS: &[Mount] = &[
    Mount {
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        optional: false,
    },
    Mount {
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        optional: false,
    },
    Mount {
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
        optional: false,
    },
    Mount {
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "newinstance,ptmxmode=0666,mode=0620,gid=5",
        optional: false,
    },
    Mount {
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "mode=1777",
        optional: false,
    },
    // POSIX message queues, as runc's default spec mounts them (isola's
    // own kernel has no CONFIG_POSIX_MQUEUE: skipped there).
    Mount {
        target: "/dev/mqueue",
        fstype: "mqueue",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        optional: true,
    },
    Mount {
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=1777",
        optional: false,
    },
    Mount {
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: "mode=0755",
        optional: false,
    },
];

/// devtmpfs has device nodes only; these links are what runc adds and what
/// shells use (`<(...)` needs /dev/fd).
const DEV_LINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

/// Where the scratch mounts start in [`MOUNTS`]: /tmp and /run are mounted
/// in the root the workload gets (see [`kernel_filesystems`]).
const SCRATCH_FROM: usize = 6;

/// The kernel's filesystems, /proc, /sys and /dev with what is under it:
/// mounted before the run spec is read, and moved along when the root
/// becomes the image's disk.
pub fn kernel_filesystems() -> Result<(), Failure> {
    mount_each(&MOUNTS[..SCRATCH_FROM])?;
    for (to, link) in DEV_LINKS {
        // devtmpfs already has /dev/ptmx as a node: replace it with the link
        // into our own devpts instance, as runc does.
        if *link == "/dev/ptmx" {
            let _ = nix::unistd::unlink(*link);
        }
        match std::os::unix::fs::symlink(to, link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Failure::setup(
                    format!("cannot create {link}"),
                    describe_io(&e),
                ))
            }
        }
    }
    Ok(())
}

/// /tmp and /run, in the workload's root: through the image's own links
/// there (a /tmp that links elsewhere gets the tmpfs where it points).
pub fn scratch() -> Result<(), Failure> {
    mount_each(&MOUNTS[SCRATCH_FROM..])
}

fn mount_each(mounts: &[Mount]) -> Result<(), Failure> {
    for m in mounts {
        make_dir(m.target)?;
        let data = (!m.data.is_empty()).then_some(m.data);
        match mount(Some(m.fstype), m.target, Some(m.fstype), m.flags, data) {
            Ok(()) => {}
            Err(Errno::ENODEV) if m.optional => {}
            Err(e) => {
                return Err(Failure::errno(
                    format!("cannot mount {} on {}", m.fstype, m.target),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// `mkdir -p` as root with mode 0755, for a mount point or the workload's
/// working directory; an existing directory (or link to one) is fine.
pub fn make_dir(path: &str) -> Result<(), Failure> {
    let mut prefix = String::with_capacity(path.len());
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        match nix::unistd::mkdir(prefix.as_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(Failure::errno(
                    format!("cannot create the directory {prefix}"),
                    e,
                ))
            }
        }
    }
    Ok(())
}
