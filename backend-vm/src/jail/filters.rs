//! Each thread kind's seccomp filter as data: the syscalls it makes once
//! the guest runs (measured with `strace -f` on boots of the test guest
//! and of Linux; docs/vm.md lists them), ioctls by request number. Any
//! other syscall traps (see `sigsys`).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::ThreadKind;

#[derive(Debug, thiserror::Error)]
#[error("building the {kind} thread's seccomp filter")]
pub struct FilterError {
    kind: &'static str,
    #[source]
    source: seccompiler::BackendError,
}

/// KVM_RUN, _IO(KVMIO, 0x80): the one ioctl a vCPU thread makes.
const KVM_RUN: u64 = 0xae80;

/// Which calls of a syscall are allowed.
#[derive(Clone, Copy)]
enum Args {
    Any,
    /// Only with this argument (by index) equal to one of these values.
    OneOf(u8, &'static [u64]),
    /// Only with this argument the vCPU kick signal (see `kvm::kick`).
    KickSignal(u8),
}

/// What every kind does: allocate (glibc's per-thread arenas map and
/// protect), lock (futex), write (a UART's output, an irqfd, the SIGSYS
/// record), close what it drops (debug builds check the descriptor with
/// F_GETFD first), and end its thread (sigaltstack, munmap and madvise of
/// its stacks, the signal mask, exit).
const COMMON: &[(&str, i64, Args)] = &[
    ("futex", libc::SYS_futex, Args::Any),
    ("write", libc::SYS_write, Args::Any),
    ("close", libc::SYS_close, Args::Any),
    (
        "fcntl",
        libc::SYS_fcntl,
        Args::OneOf(1, &[libc::F_GETFD as u64]),
    ),
    ("mmap", libc::SYS_mmap, Args::Any),
    ("mprotect", libc::SYS_mprotect, Args::Any),
    ("munmap", libc::SYS_munmap, Args::Any),
    ("madvise", libc::SYS_madvise, Args::Any),
    ("brk", libc::SYS_brk, Args::Any),
    ("sigaltstack", libc::SYS_sigaltstack, Args::Any),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask, Args::Any),
    ("exit", libc::SYS_exit, Args::Any),
];

/// Kicking the vCPUs out of KVM_RUN (the kicker thread, of the main
/// kind): tgkill of the kick signal (with glibc's getpid), 1 ms sleeps.
const KICK: &[(&str, i64, Args)] = &[
    ("getpid", libc::SYS_getpid, Args::Any),
    ("tgkill", libc::SYS_tgkill, Args::KickSignal(2)),
    ("clock_nanosleep", libc::SYS_clock_nanosleep, Args::Any),
];

/// KVM_RUN, and the return from the kick signal's handler.
const VCPU: &[(&str, i64, Args)] = &[
    ("ioctl", libc::SYS_ioctl, Args::OneOf(1, &[KVM_RUN])),
    ("rt_sigreturn", libc::SYS_rt_sigreturn, Args::Any),
];

/// FIONBIO: a socket's set_nonblocking, as std makes it.
const FIONBIO: u64 = 0x5421;

/// The UART feeders: read the input, wait 1 ms while the guest's FIFO is
/// full. The virtio thread: wait on its epoll set (the queues'
/// ioeventfds, vsock's host sockets, the tap), read and write the disks at
/// an offset and flush them, take vsock's host streams (accept, make
/// them non-blocking, watch them, move their bytes, half-close them), and
/// move virtio-net's frames between guest memory and the tap, one readv
/// or writev a frame.
const DEVICE: &[(&str, i64, Args)] = &[
    ("read", libc::SYS_read, Args::Any),
    ("clock_nanosleep", libc::SYS_clock_nanosleep, Args::Any),
    ("epoll_wait", libc::SYS_epoll_wait, Args::Any),
    ("epoll_pwait", libc::SYS_epoll_pwait, Args::Any),
    ("epoll_ctl", libc::SYS_epoll_ctl, Args::Any),
    ("pread64", libc::SYS_pread64, Args::Any),
    ("pwrite64", libc::SYS_pwrite64, Args::Any),
    ("fdatasync", libc::SYS_fdatasync, Args::Any),
    ("accept4", libc::SYS_accept4, Args::Any),
    ("ioctl", libc::SYS_ioctl, Args::OneOf(1, &[FIONBIO])),
    ("recvfrom", libc::SYS_recvfrom, Args::Any),
    ("sendto", libc::SYS_sendto, Args::Any),
    ("shutdown", libc::SYS_shutdown, Args::Any),
    ("readv", libc::SYS_readv, Args::Any),
    ("writev", libc::SYS_writev, Args::Any),
];

/// The process's end, and vsock's socket removed from the jail with it.
const MAIN: &[(&str, i64, Args)] = &[
    ("exit_group", libc::SYS_exit_group, Args::Any),
    ("unlink", libc::SYS_unlink, Args::Any),
];

/// The syscalls `kind` may make, in order of number.
fn table(kind: ThreadKind) -> BTreeMap<i64, (&'static str, Args)> {
    let own: &[&[(&str, i64, Args)]] = match kind {
        ThreadKind::Vcpu => &[COMMON, VCPU],
        ThreadKind::Device => &[COMMON, DEVICE],
        ThreadKind::Main => &[COMMON, KICK, MAIN],
    };
    own.iter()
        .flat_map(|list| list.iter())
        .map(|&(name, nr, args)| (nr, (name, args)))
        .collect()
}

/// The names of the syscalls `kind` may make, in order of number.
pub fn allowed(kind: ThreadKind) -> Vec<&'static str> {
    table(kind).into_values().map(|(name, _)| name).collect()
}

pub(super) struct Compiled {
    vcpu: BpfProgram,
    device: BpfProgram,
    main: BpfProgram,
}

impl Compiled {
    pub(super) fn of(&self, kind: ThreadKind) -> &BpfProgram {
        match kind {
            ThreadKind::Vcpu => &self.vcpu,
            ThreadKind::Device => &self.device,
            ThreadKind::Main => &self.main,
        }
    }
}

pub(super) fn compile() -> Result<Compiled, FilterError> {
    Ok(Compiled {
        vcpu: program(ThreadKind::Vcpu)?,
        device: program(ThreadKind::Device)?,
        main: program(ThreadKind::Main)?,
    })
}

fn program(kind: ThreadKind) -> Result<BpfProgram, FilterError> {
    let failed = |source| FilterError {
        kind: kind.name(),
        source,
    };
    let mut rules = BTreeMap::new();
    for (nr, (_, args)) in table(kind) {
        let kick = [libc::SIGRTMIN() as u64];
        let (index, values): (u8, &[u64]) = match args {
            Args::Any => (0, &[]),
            Args::OneOf(index, values) => (index, values),
            Args::KickSignal(index) => (index, &kick),
        };
        let chain = values
            .iter()
            .map(|&v| {
                let cond =
                    SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)?;
                SeccompRule::new(vec![cond])
            })
            .collect::<Result<_, _>>()
            .map_err(failed)?;
        rules.insert(nr, chain);
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .map_err(failed)?;
    filter.try_into().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles_and_only_vcpus_may_run_the_guest() {
        let compiled = compile().unwrap();
        for kind in ThreadKind::ALL {
            assert!(!compiled.of(kind).is_empty());
            assert!(allowed(kind).contains(&"write"), "{kind:?}");
            assert!(!allowed(kind).contains(&"execve"), "{kind:?}");
            assert!(!allowed(kind).contains(&"openat"), "{kind:?}");
        }
        assert!(allowed(ThreadKind::Vcpu).contains(&"ioctl"));
        // No thread of the monitor starts another once the guest runs.
        for kind in ThreadKind::ALL {
            assert!(!allowed(kind).contains(&"clone3"), "{kind:?}");
        }
        // The device thread's one ioctl is a socket's FIONBIO: never KVM_RUN.
        match table(ThreadKind::Device).get(&libc::SYS_ioctl) {
            Some((_, Args::OneOf(1, values))) => assert_eq!(*values, &[FIONBIO][..]),
            _ => panic!("the device kind's ioctl is not limited to FIONBIO"),
        }
        assert!(!allowed(ThreadKind::Main).contains(&"ioctl"));
        // virtio-net's frames: on the device thread only.
        for call in ["readv", "writev"] {
            assert!(allowed(ThreadKind::Device).contains(&call));
            assert!(!allowed(ThreadKind::Vcpu).contains(&call));
            assert!(!allowed(ThreadKind::Main).contains(&call));
        }
    }
}
