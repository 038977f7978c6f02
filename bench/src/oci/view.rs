//! The cgroups the runtimes see. crun refuses a cgroup v1 hybrid host
//! whose cgroup2 tree holds controllers, as this benchmark's host may be;
//! hidden in a mount namespace of the benchmark's own, that tree is gone
//! for every runtime alike, crun runs, and the host is left as it was.

use std::ffi::CStr;
use std::io;

/// Where a hybrid host mounts its cgroup2 tree.
const UNIFIED: &CStr = c"/sys/fs/cgroup/unified";

/// What the tables say when the tree was hidden.
pub const HIDDEN: &str = "cgroup2 hidden for every runtime (crun refuses this hybrid host)";

/// Whether crun would refuse this host: a hybrid whose cgroup2 tree holds
/// controllers.
pub fn crun_refuses() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty())
}

/// Into a mount namespace of this process's own (and its children's),
/// where the cgroup2 tree is unmounted. Only while the process has one
/// thread: the kernel refuses a new mount namespace to a thread that
/// shares its filesystem context.
pub fn hide_cgroup2() -> io::Result<()> {
    isola_core::build::mount::private_namespace()?;
    // SAFETY: umount2(2) of a constant path.
    if unsafe { libc::umount2(UNIFIED.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
