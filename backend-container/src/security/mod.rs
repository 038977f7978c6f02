//! Capabilities and seccomp filters (Docker's default, or an OCI bundle's
//! profile): what the workload may still do.
//!
//! The defaults are Docker's: its 14 capabilities (tuned with `--cap-add`,
//! `--cap-drop` and `--privileged`) and its default seccomp profile, whose
//! capability-gated rules follow the resolved set.
//!
//! # Order
//!
//! In the parent, before the sandbox is created (this allocates; the child
//! must not):
//!
//! 1. [`caps::resolve`]`(&add, &drop, privileged)` → [`CapSet`]
//! 2. [`seccomp::default_filter`]`(&set)` → [`Program`],
//!    unless the sandbox is privileged: Docker runs privileged containers
//!    without seccomp, and so should we. A container made from an OCI
//!    bundle takes config.json's profile instead:
//!    [`oci_profile::compile`]`(&linux.seccomp)` → a program and its flags.
//!
//! In the child, after everything that needs privilege (mounts, pivot_root,
//! hostname, cgroup joins) and right before `execve`:
//!
//! 3. [`caps::apply`]`(&set, uid, gid, &groups)`: bounding set, groups, gid,
//!    uid and capability sets, in the one order that works (see [`caps`]).
//! 4. [`seccomp::set_no_new_privs`]`()`: required to install a filter once
//!    CAP_SYS_ADMIN is gone, and stops setuid/file-capability gains.
//! 5. [`seccomp::install`]`(&program)` (or [`seccomp::install_with_flags`]
//!    for an OCI profile's flags): last, so that the runtime's own set-up
//!    is not filtered; the filter allows what is left (`execve`, and `write`
//!    and `exit_group` to report a failed exec).
//! 6. `execve`.
//!
//! Steps 3–5 only make system calls: no allocation, no locks, so they are
//! safe in a child forked from a multi-threaded parent.

pub mod bpf;
pub mod caps;
pub mod oci_profile;
pub mod seccomp;
#[cfg(target_arch = "x86_64")]
pub mod syscall_table;
#[cfg(target_arch = "x86_64")]
pub mod syscalls;
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;

pub use self::caps::CapSet;
pub use seccomp::Program;

use nix::errno::Errno;

/// Why the workload could not be confined. The variants raised in the child
/// hold no heap data, so making one there does not allocate.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(
        "unknown capability {name:?}: name one from capabilities(7), with or without \
         the CAP_ prefix and in any case (for example NET_ADMIN or cap_net_admin), or ALL"
    )]
    UnknownCapability { name: String },

    #[error(
        "capability {name} is not available: the running kernel does not support it or \
         isola itself does not hold it; run isola as root with full capabilities, or \
         leave {name} out (--cap-drop)"
    )]
    UnavailableCapability { name: String },

    #[error("prctl({what}) failed: {errno}; this kernel lacks what isola's sandbox needs")]
    Prctl { what: &'static str, errno: Errno },

    #[error(
        "dropping {} from the bounding set failed: {errno}; isola needs CAP_SETPCAP \
         (run it as root)",
        self::caps::cap_label(*.cap)
    )]
    DropBounding { cap: u8, errno: Errno },

    #[error(
        "switching to uid {uid}, gid {gid} failed in {call}: {errno}; isola needs \
         CAP_SETUID and CAP_SETGID (run it as root), and the groups must number at most \
         NGROUPS_MAX"
    )]
    SwitchUser {
        call: &'static str,
        uid: u32,
        gid: u32,
        errno: Errno,
    },

    #[error(
        "setting the capability sets failed: {errno}; every capability given to the \
         workload must be one isola holds itself (resolve the set with caps::resolve)"
    )]
    SetCapabilities { errno: Errno },

    #[error("the seccomp filter has {0} instructions; the kernel takes 1 to 4096")]
    FilterLength(usize),

    #[error(transparent)]
    Compile(#[from] bpf::CompileError),

    #[error(
        "installing the seccomp filter failed: {errno}; call seccomp::set_no_new_privs \
         first, and check that the kernel has seccomp filters (CONFIG_SECCOMP_FILTER)"
    )]
    InstallFilter { errno: Errno },

    #[error(
        "installing the seccomp filter with SECCOMP_FILTER_FLAG_TSYNC failed: thread {tid} \
         could not take it (it has a filter of its own); install it before other threads start"
    )]
    ThreadSync { tid: libc::c_long },

    #[error(transparent)]
    OciSeccomp(#[from] oci_profile::OciSeccompError),

    #[error(
        "isola's default seccomp filter is for x86_64 only, not {0}; run without \
         seccomp on this architecture"
    )]
    UnsupportedArch(&'static str),
}
