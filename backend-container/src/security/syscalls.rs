//! Docker's default seccomp profile as data: the x86_64 system calls a
//! container may make, unconditionally or when it holds a capability.
//!
//! Origin: moby's `profiles/seccomp/default.json` (github.com/moby/moby),
//! brought up to its 2025 state: io_uring removed (moby#46762), kernel
//! 5.17–6.6 calls added (moby#47341), kernel 6.8–6.13 calls added
//! (moby#50077) with the `lsm_*` calls gated on CAP_SYS_ADMIN (moby#50097).
//! Only x86_64 names are kept; the profile's 32-bit-only names (`chown32`,
//! `fcntl64`, `_llseek`, `mmap2`, `socketcall`, `ipc`, `*_time64`, `recv`,
//! `send`, `sigreturn`, `stime`, `umount`, `waitpid`, ...) have no x86_64
//! number and are left out. Arguments that the profile checks (`socket`,
//! `personality`, `clone`, `clone3`) are listed here and turned into rules in
//! `seccomp.rs`.

use ::caps::Capability;

/// One x86_64 system call: its name and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    pub name: &'static str,
    pub nr: i64,
}

/// Syscall numbers: libc's, plus the x86_64 numbers libc 0.2.191 does not
/// define yet (from the kernel's arch/x86/entry/syscalls/syscall_64.tbl).
#[allow(non_upper_case_globals)]
mod nr {
    pub use libc::*;

    pub const SYS_io_pgetevents: c_long = 333;
    pub const SYS_uretprobe: c_long = 335;
    pub const SYS_cachestat: c_long = 451;
    pub const SYS_map_shadow_stack: c_long = 453;
    pub const SYS_futex_wake: c_long = 454;
    pub const SYS_futex_wait: c_long = 455;
    pub const SYS_futex_requeue: c_long = 456;
    pub const SYS_statmount: c_long = 457;
    pub const SYS_listmount: c_long = 458;
    pub const SYS_lsm_get_self_attr: c_long = 459;
    pub const SYS_lsm_set_self_attr: c_long = 460;
    pub const SYS_lsm_list_modules: c_long = 461;
    pub const SYS_setxattrat: c_long = 463;
    pub const SYS_getxattrat: c_long = 464;
    pub const SYS_listxattrat: c_long = 465;
    pub const SYS_removexattrat: c_long = 466;
}

/// `"SYS_read"` → `"read"`, at compile time.
const fn strip_sys(ident: &'static str) -> &'static str {
    let (_, name) = ident.as_bytes().split_at(4);
    match std::str::from_utf8(name) {
        Ok(name) => name,
        Err(_) => panic!("syscall identifiers are ASCII"),
    }
}

/// A table of [`Syscall`]s from `SYS_<name>` identifiers; a name with no
/// x86_64 number is a compile error.
macro_rules! syscalls {
    ($($sys:ident),* $(,)?) => {
        &[$(Syscall { name: strip_sys(stringify!($sys)), nr: nr::$sys as i64 }),*]
    };
}

/// The profile's first, unconditional rule, plus the x86_64-only
/// `arch_prctl` and `modify_ldt` rules. Everything here is allowed with any
/// arguments, whatever the capabilities.
pub const ALLOWED: &[Syscall] = syscalls![
    SYS_accept,
    SYS_accept4,
    SYS_access,
    SYS_adjtimex,
    SYS_alarm,
    SYS_arch_prctl,
    SYS_bind,
    SYS_brk,
    SYS_cachestat,
    SYS_capget,
    SYS_capset,
    SYS_chdir,
    SYS_chmod,
    SYS_chown,
    SYS_clock_adjtime,
    SYS_clock_getres,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_close,
    SYS_close_range,
    SYS_connect,
    SYS_copy_file_range,
    SYS_creat,
    SYS_dup,
    SYS_dup2,
    SYS_dup3,
    SYS_epoll_create,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_ctl_old,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_epoll_wait,
    SYS_epoll_wait_old,
    SYS_eventfd,
    SYS_eventfd2,
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_fadvise64,
    SYS_fallocate,
    SYS_fanotify_mark,
    SYS_fchdir,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchmodat2,
    SYS_fchown,
    SYS_fchownat,
    SYS_fcntl,
    SYS_fdatasync,
    SYS_fgetxattr,
    SYS_flistxattr,
    SYS_flock,
    SYS_fork,
    SYS_fremovexattr,
    SYS_fsetxattr,
    SYS_fstat,
    SYS_fstatfs,
    SYS_fsync,
    SYS_ftruncate,
    SYS_futex,
    SYS_futex_requeue,
    SYS_futex_wait,
    SYS_futex_waitv,
    SYS_futex_wake,
    SYS_futimesat,
    SYS_getcpu,
    SYS_getcwd,
    SYS_getdents,
    SYS_getdents64,
    SYS_getegid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getgroups,
    SYS_getitimer,
    SYS_getpeername,
    SYS_getpgid,
    SYS_getpgrp,
    SYS_getpid,
    SYS_getppid,
    SYS_getpriority,
    SYS_getrandom,
    SYS_getresgid,
    SYS_getresuid,
    SYS_getrlimit,
    SYS_get_robust_list,
    SYS_getrusage,
    SYS_getsid,
    SYS_getsockname,
    SYS_getsockopt,
    SYS_get_thread_area,
    SYS_gettid,
    SYS_gettimeofday,
    SYS_getuid,
    SYS_getxattr,
    SYS_getxattrat,
    SYS_inotify_add_watch,
    SYS_inotify_init,
    SYS_inotify_init1,
    SYS_inotify_rm_watch,
    SYS_io_cancel,
    SYS_ioctl,
    SYS_io_destroy,
    SYS_io_getevents,
    SYS_io_pgetevents,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_io_setup,
    SYS_io_submit,
    SYS_kill,
    SYS_landlock_add_rule,
    SYS_landlock_create_ruleset,
    SYS_landlock_restrict_self,
    SYS_lchown,
    SYS_lgetxattr,
    SYS_link,
    SYS_linkat,
    SYS_listen,
    SYS_listmount,
    SYS_listxattr,
    SYS_listxattrat,
    SYS_llistxattr,
    SYS_lremovexattr,
    SYS_lseek,
    SYS_lsetxattr,
    SYS_lstat,
    SYS_madvise,
    SYS_map_shadow_stack,
    SYS_membarrier,
    SYS_memfd_create,
    SYS_memfd_secret,
    SYS_mincore,
    SYS_mkdir,
    SYS_mkdirat,
    SYS_mknod,
    SYS_mknodat,
    SYS_mlock,
    SYS_mlock2,
    SYS_mlockall,
    SYS_mmap,
    SYS_modify_ldt,
    SYS_mprotect,
    SYS_mq_getsetattr,
    SYS_mq_notify,
    SYS_mq_open,
    SYS_mq_timedreceive,
    SYS_mq_timedsend,
    SYS_mq_unlink,
    SYS_mremap,
    SYS_mseal,
    SYS_msgctl,
    SYS_msgget,
    SYS_msgrcv,
    SYS_msgsnd,
    SYS_msync,
    SYS_munlock,
    SYS_munlockall,
    SYS_munmap,
    SYS_name_to_handle_at,
    SYS_nanosleep,
    SYS_newfstatat,
    SYS_open,
    SYS_openat,
    SYS_openat2,
    SYS_pause,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_pipe,
    SYS_pipe2,
    SYS_pkey_alloc,
    SYS_pkey_free,
    SYS_pkey_mprotect,
    SYS_poll,
    SYS_ppoll,
    SYS_prctl,
    SYS_pread64,
    SYS_preadv,
    SYS_preadv2,
    SYS_prlimit64,
    SYS_process_mrelease,
    SYS_pselect6,
    SYS_pwrite64,
    SYS_pwritev,
    SYS_pwritev2,
    SYS_read,
    SYS_readahead,
    SYS_readlink,
    SYS_readlinkat,
    SYS_readv,
    SYS_recvfrom,
    SYS_recvmmsg,
    SYS_recvmsg,
    SYS_remap_file_pages,
    SYS_removexattr,
    SYS_removexattrat,
    SYS_rename,
    SYS_renameat,
    SYS_renameat2,
    SYS_restart_syscall,
    SYS_rmdir,
    SYS_rseq,
    SYS_rt_sigaction,
    SYS_rt_sigpending,
    SYS_rt_sigprocmask,
    SYS_rt_sigqueueinfo,
    SYS_rt_sigreturn,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_rt_tgsigqueueinfo,
    SYS_sched_getaffinity,
    SYS_sched_getattr,
    SYS_sched_getparam,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_getscheduler,
    SYS_sched_rr_get_interval,
    SYS_sched_setaffinity,
    SYS_sched_setattr,
    SYS_sched_setparam,
    SYS_sched_setscheduler,
    SYS_sched_yield,
    SYS_seccomp,
    SYS_select,
    SYS_semctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_sendfile,
    SYS_sendmmsg,
    SYS_sendmsg,
    SYS_sendto,
    SYS_setfsgid,
    SYS_setfsuid,
    SYS_setgid,
    SYS_setgroups,
    SYS_setitimer,
    SYS_setpgid,
    SYS_setpriority,
    SYS_setregid,
    SYS_setresgid,
    SYS_setresuid,
    SYS_setreuid,
    SYS_setrlimit,
    SYS_set_robust_list,
    SYS_setsid,
    SYS_setsockopt,
    SYS_set_thread_area,
    SYS_set_tid_address,
    SYS_setuid,
    SYS_setxattr,
    SYS_setxattrat,
    SYS_shmat,
    SYS_shmctl,
    SYS_shmdt,
    SYS_shmget,
    SYS_shutdown,
    SYS_sigaltstack,
    SYS_signalfd,
    SYS_signalfd4,
    SYS_socketpair,
    SYS_splice,
    SYS_stat,
    SYS_statfs,
    SYS_statmount,
    SYS_statx,
    SYS_symlink,
    SYS_symlinkat,
    SYS_sync,
    SYS_sync_file_range,
    SYS_syncfs,
    SYS_sysinfo,
    SYS_tee,
    SYS_tgkill,
    SYS_time,
    SYS_timer_create,
    SYS_timer_delete,
    SYS_timer_getoverrun,
    SYS_timer_gettime,
    SYS_timer_settime,
    SYS_timerfd_create,
    SYS_timerfd_gettime,
    SYS_timerfd_settime,
    SYS_times,
    SYS_tkill,
    SYS_truncate,
    SYS_umask,
    SYS_uname,
    SYS_unlink,
    SYS_unlinkat,
    SYS_uretprobe,
    SYS_utime,
    SYS_utimensat,
    SYS_utimes,
    SYS_vfork,
    SYS_vmsplice,
    SYS_wait4,
    SYS_waitid,
    SYS_write,
    SYS_writev,
];

/// Allowed on kernels from 4.8 on, where seccomp runs again after a tracer
/// changes a system call, so ptrace can no longer be used to get around it.
pub const ALLOWED_SINCE_4_8: &[Syscall] =
    syscalls![SYS_process_vm_readv, SYS_process_vm_writev, SYS_ptrace];

/// The first kernel with [`ALLOWED_SINCE_4_8`] safe to allow.
pub const PTRACE_MIN_KERNEL: (u32, u32) = (4, 8);

/// Allowed only when the container holds the capability: without it the
/// kernel would refuse them anyway, and the filter shrinks what of the
/// kernel a container can reach.
pub const BY_CAPABILITY: &[(Capability, &[Syscall])] = &[
    (
        Capability::CAP_DAC_READ_SEARCH,
        syscalls![SYS_open_by_handle_at],
    ),
    (
        Capability::CAP_SYS_ADMIN,
        syscalls![
            SYS_bpf,
            SYS_clone,
            SYS_clone3,
            SYS_fanotify_init,
            SYS_fsconfig,
            SYS_fsmount,
            SYS_fsopen,
            SYS_fspick,
            SYS_lookup_dcookie,
            SYS_lsm_get_self_attr,
            SYS_lsm_list_modules,
            SYS_lsm_set_self_attr,
            SYS_mount,
            SYS_mount_setattr,
            SYS_move_mount,
            SYS_open_tree,
            SYS_perf_event_open,
            SYS_quotactl,
            SYS_quotactl_fd,
            SYS_setdomainname,
            SYS_sethostname,
            SYS_setns,
            SYS_syslog,
            SYS_umount2,
            SYS_unshare,
        ],
    ),
    (Capability::CAP_SYS_BOOT, syscalls![SYS_reboot]),
    (Capability::CAP_SYS_CHROOT, syscalls![SYS_chroot]),
    (
        Capability::CAP_SYS_MODULE,
        syscalls![SYS_delete_module, SYS_init_module, SYS_finit_module],
    ),
    (Capability::CAP_SYS_PACCT, syscalls![SYS_acct]),
    (
        Capability::CAP_SYS_PTRACE,
        syscalls![
            SYS_kcmp,
            SYS_pidfd_getfd,
            SYS_process_madvise,
            SYS_process_vm_readv,
            SYS_process_vm_writev,
            SYS_ptrace,
        ],
    ),
    (Capability::CAP_SYS_RAWIO, syscalls![SYS_iopl, SYS_ioperm]),
    (
        Capability::CAP_SYS_TIME,
        syscalls![SYS_settimeofday, SYS_clock_settime],
    ),
    (Capability::CAP_SYS_TTY_CONFIG, syscalls![SYS_vhangup]),
    (
        Capability::CAP_SYS_NICE,
        syscalls![
            SYS_get_mempolicy,
            SYS_mbind,
            SYS_set_mempolicy,
            SYS_set_mempolicy_home_node,
        ],
    ),
    (Capability::CAP_SYSLOG, syscalls![SYS_syslog]),
    (Capability::CAP_BPF, syscalls![SYS_bpf]),
    (Capability::CAP_PERFMON, syscalls![SYS_perf_event_open]),
];

/// `socket`: any address family but `AF_VSOCK` (which reaches the host).
pub const SOCKET: Syscall = syscalls![SYS_socket][0];
pub const SOCKET_DENIED_FAMILY: u64 = libc::AF_VSOCK as u64;

/// `personality`: only these personas (Linux, `PER_LINUX32`,
/// `UNAME26`, both, and the 0xffffffff query).
pub const PERSONALITY: Syscall = syscalls![SYS_personality][0];
pub const PERSONALITY_ALLOWED: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `clone` without CAP_SYS_ADMIN: only when its flags (argument 0) ask for
/// no new namespace (mask 0x7E020000).
pub const CLONE: Syscall = syscalls![SYS_clone][0];
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `clone3` without CAP_SYS_ADMIN fails with ENOSYS (its flags live in
/// memory a filter cannot read), so glibc and others fall back to `clone`.
pub const CLONE3: Syscall = syscalls![SYS_clone3][0];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_match_numbers() {
        let known = [
            ("read", 0),
            ("write", 1),
            ("clone", 56),
            ("execve", 59),
            ("io_pgetevents", 333),
            ("uretprobe", 335),
            ("clone3", 435),
            ("cachestat", 451),
            ("fchmodat2", 452),
            ("futex_requeue", 456),
            ("mseal", 462),
            ("removexattrat", 466),
        ];
        let all: Vec<Syscall> = ALLOWED
            .iter()
            .chain(BY_CAPABILITY.iter().flat_map(|(_, s)| s.iter()))
            .copied()
            .collect();
        for (name, nr) in known {
            let found = all.iter().find(|s| s.name == name).expect(name);
            assert_eq!(found.nr, nr, "{name}");
        }
        assert_eq!(CLONE_NAMESPACE_FLAGS, 0x7E02_0000);
        assert_eq!(CLONE3.nr, 435);
    }

    #[test]
    fn allowed_list_has_no_duplicates_and_no_gated_call() {
        let mut seen = HashSet::new();
        for s in ALLOWED {
            assert!(seen.insert(s.nr), "{} twice", s.name);
        }
        assert!(ALLOWED.len() > 300, "{} names", ALLOWED.len());
        let gated = BY_CAPABILITY.iter().flat_map(|(_, s)| s.iter());
        let conditional = [SOCKET, PERSONALITY, CLONE, CLONE3];
        for s in gated.chain(ALLOWED_SINCE_4_8).chain(conditional.iter()) {
            assert!(
                !seen.contains(&s.nr),
                "{} is both unconditional and restricted",
                s.name
            );
        }
    }

    #[test]
    fn dangerous_calls_are_not_unconditional() {
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "mount",
            "reboot",
            "kexec_load",
            "kexec_file_load",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "userfaultfd",
            "setns",
            "init_module",
            "ptrace",
        ] {
            assert!(
                ALLOWED.iter().all(|s| s.name != name),
                "{name} must not be allowed unconditionally"
            );
        }
    }
}
