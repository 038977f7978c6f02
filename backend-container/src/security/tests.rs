//! Real tests, as root: each forks a child that applies capabilities and the
//! seccomp filter to itself, checks what the kernel then says, and reports
//! the first failed check as its exit code (see [`explain`]).
//!
//! After `fork` the child of this multi-threaded test harness only makes
//! system calls (no allocation, no locks) and leaves with `_exit`.

use std::ffi::CString;

use ::caps::Capability;
use isola_test_support::root_user;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

use super::caps::{self, CapSet};
use super::{oci_profile, seccomp};

/// Docker's default capabilities as `/proc/<pid>/status` shows them.
const DOCKER_DEFAULT_MASK: u64 = 0x0000_0000_a804_25fb;

/// What a child's exit code means.
fn explain(code: i32) -> &'static str {
    match code {
        0 => "all checks passed",
        1 => "reading /proc/self/status failed",
        10 => "caps::apply(uid 0) failed",
        11 => "uid 0: CapEff is not Docker's default set",
        12 => "uid 0: CapPrm is not Docker's default set",
        13 => "uid 0: CapBnd is not Docker's default set",
        14 => "uid 0: CapInh is not empty",
        15 => "uid 0: CapAmb is not empty",
        20 => "caps::apply(uid 1000) failed",
        21 => "uid 1000: real/effective/saved uid is not 1000",
        22 => "uid 1000: real/effective/saved gid is not 1000",
        23 => "uid 1000: CapEff is not Docker's default set (keep-caps lost it?)",
        24 => "uid 1000: CapPrm is not Docker's default set (keep-caps lost it?)",
        25 => "uid 1000: CapBnd is not Docker's default set",
        26 => "uid 1000: CapInh or CapAmb is not empty",
        27 => "uid 1000: supplementary groups are not exactly [1000, 2000]",
        30 => "seccomp::set_no_new_privs failed",
        31 => "seccomp::install failed",
        32 => "getpid failed under the filter",
        33 => "write failed under the filter",
        34 => "keyctl did not fail with EPERM",
        35 => "unshare(CLONE_NEWUTS) did not fail with EPERM",
        36 => "mount did not fail with EPERM",
        37 => "clone(CLONE_NEWNS) did not fail with EPERM",
        38 => "clone3 did not fail with ENOSYS",
        39 => "a plain fork did not work",
        40 => "personality(0xffffffff) (query) did not work",
        41 => "personality(ADDR_NO_RANDOMIZE) did not fail with EPERM",
        42 => "socket(AF_VSOCK) did not fail with EPERM",
        43 => "socket(AF_UNIX) did not work",
        44 => "add_key did not fail with EPERM",
        45 => "the filter was not in force (Seccomp: 2, NoNewPrivs: 1)",
        50 => "with CAP_SYS_ADMIN: unshare(CLONE_NEWUTS) did not work",
        51 => "with CAP_SYS_ADMIN: clone3 still failed with ENOSYS",
        60 => "an i386 system call (int 0x80) was not stopped",
        70 => "execve failed after apply, no_new_privs and install",
        90 => "seccomp::install_with_flags failed for the OCI profile",
        91 => "mkdir did not fail with the profile's errno 13 (EACCES)",
        92 => "mkdirat did not fail with the profile's errno 13 (EACCES)",
        93 => "lseek to 2^32 + 5 did not fail with EOVERFLOW (a 64-bit GT rule)",
        94 => "lseek to 2^32 - 1 failed (the 64-bit GT rule must not hold)",
        95 => "getpid failed under the OCI profile",
        96 => "the OCI profile was not in force (Seccomp: 2, one more Seccomp_filters)",
        97 => "getppid was not stopped by SCMP_ACT_KILL_PROCESS",
        98 => "an i386 getpid (int 0x80) did not fail with the profile's errno 13",
        99 => "an i386 call was not killed by a profile that does not list SCMP_ARCH_X86",
        _ => "unknown check (a shell check failed or the child crashed)",
    }
}

/// Run `child` in a forked process; its return value becomes the exit code.
fn in_child(child: impl FnOnce() -> i32) -> WaitStatus {
    // SAFETY: the child only makes system calls and leaves with `_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = child();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

fn assert_passed(status: WaitStatus) {
    match status {
        WaitStatus::Exited(_, 0) => {}
        WaitStatus::Exited(_, code) => panic!("child check {code} failed: {}", explain(code)),
        other => panic!("child ended unexpectedly: {other:?}"),
    }
}

// ---- child-side helpers: system calls and stack buffers only ----

/// /proc/self/status into `buf`; the length read.
fn read_status(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: a NUL-terminated path; `buf` is writable for its length.
    unsafe {
        let fd = libc::open(
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let mut len = 0;
        while len < buf.len() {
            let n = libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len);
            if n <= 0 {
                break;
            }
            len += n as usize;
        }
        libc::close(fd);
        Some(len)
    }
}

/// The value after `key` on its line (e.g. `CapEff:`), leading blanks skipped.
fn field<'a>(status: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    status.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?;
        let start = rest.iter().position(|&b| b != b'\t' && b != b' ')?;
        Some(&rest[start..])
    })
}

/// A decimal field (absent before Linux 5.9 for Seccomp_filters).
fn decimal_field(status: &[u8], key: &[u8]) -> Option<u64> {
    field(status, key)?.iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(10)?;
        Some(acc * 10 + u64::from(digit))
    })
}

fn hex_field(status: &[u8], key: &[u8]) -> Option<u64> {
    field(status, key)?.iter().try_fold(0u64, |acc, &b| {
        let digit = (b as char).to_digit(16)?;
        Some(acc << 4 | u64::from(digit))
    })
}

/// Run a raw system call and say whether it failed with exactly `errno`.
fn fails_with(errno: Errno, rc: libc::c_long) -> bool {
    rc == -1 && Errno::last() == errno
}

/// Raw `clone(flags)` with no new stack (fork-like). A child it makes exits
/// at once.
fn raw_clone(flags: libc::c_long) -> libc::c_long {
    // SAFETY: without CLONE_VM the child gets a copy of this address space,
    // so the shared stack is safe; it `_exit`s immediately.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if rc == 0 {
        // SAFETY: leave the accidental child at once.
        unsafe { libc::_exit(0) };
    }
    if rc > 0 {
        // SAFETY: reap it; `rc` is its pid.
        unsafe { libc::waitpid(rc as libc::pid_t, std::ptr::null_mut(), 0) };
    }
    rc
}

#[test]
fn apply_as_root_leaves_exactly_dockers_default_set() {
    if !root_user() {
        return;
    }
    let set = caps::resolve(&[], &[], false).expect("resolve");
    assert_eq!(set.mask(), DOCKER_DEFAULT_MASK);
    // Read before the fork: the child must not allocate.
    let bounding = CapSet::bounding();
    assert_passed(in_child(|| {
        if caps::apply(&set, bounding, 0, 0, &[]).is_err() {
            return 10;
        }
        let mut buf = [0u8; 8192];
        let Some(len) = read_status(&mut buf) else {
            return 1;
        };
        let status = &buf[..len];
        let checks = [
            (b"CapEff:".as_slice(), DOCKER_DEFAULT_MASK, 11),
            (b"CapPrm:", DOCKER_DEFAULT_MASK, 12),
            (b"CapBnd:", DOCKER_DEFAULT_MASK, 13),
            (b"CapInh:", 0, 14),
            (b"CapAmb:", 0, 15),
        ];
        for (key, want, code) in checks {
            if hex_field(status, key) != Some(want) {
                return code;
            }
        }
        0
    }));
}

#[test]
fn apply_as_uid_1000_keeps_the_set_across_the_uid_switch() {
    if !root_user() {
        return;
    }
    let set = CapSet::docker_default();
    // Read before the fork: the child must not allocate.
    let bounding = CapSet::bounding();
    assert_passed(in_child(|| {
        if caps::apply(&set, bounding, 1000, 1000, &[1000, 2000]).is_err() {
            return 20;
        }
        let (mut r, mut e, mut s) = (0, 0, 0);
        // SAFETY: three valid out-pointers.
        unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
        if (r, e, s) != (1000, 1000, 1000) {
            return 21;
        }
        // SAFETY: three valid out-pointers.
        unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
        if (r, e, s) != (1000, 1000, 1000) {
            return 22;
        }
        let mut groups = [0 as libc::gid_t; 8];
        // SAFETY: `groups` has room for 8 gids.
        let n = unsafe { libc::getgroups(8, groups.as_mut_ptr()) };
        if n != 2 || groups[..2] != [1000, 2000] {
            return 27;
        }
        let mut buf = [0u8; 8192];
        let Some(len) = read_status(&mut buf) else {
            return 1;
        };
        let status = &buf[..len];
        let checks = [
            (b"CapEff:".as_slice(), DOCKER_DEFAULT_MASK, 23),
            (b"CapPrm:", DOCKER_DEFAULT_MASK, 24),
            (b"CapBnd:", DOCKER_DEFAULT_MASK, 25),
            (b"CapInh:", 0, 26),
            (b"CapAmb:", 0, 26),
        ];
        for (key, want, code) in checks {
            if hex_field(status, key) != Some(want) {
                return code;
            }
        }
        0
    }));
}

#[test]
fn default_filter_denies_what_docker_denies() {
    if !root_user() {
        return;
    }
    // Capabilities are left whole here, so each EPERM below is the filter's
    // doing, not the kernel's.
    let program = seccomp::default_filter(&CapSet::docker_default()).expect("filter");
    let devnull = CString::new("/dev/null").unwrap();
    assert_passed(in_child(|| {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(devnull.as_ptr(), libc::O_WRONLY) };
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install(&program).is_err() {
            return 31;
        }
        // SAFETY (all calls below): raw system calls with integer arguments,
        // null pointers the kernel checks, or pointers to live locals.
        unsafe {
            if libc::getpid() <= 0 {
                return 32;
            }
            if libc::write(fd, b"x".as_ptr().cast(), 1) != 1 {
                return 33;
            }
            let rc = libc::syscall(libc::SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
            if !fails_with(Errno::EPERM, rc) {
                return 34;
            }
            let rc = libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS);
            if !fails_with(Errno::EPERM, rc) {
                return 35;
            }
            let none = c"none".as_ptr();
            let rc = libc::syscall(
                libc::SYS_mount,
                none,
                c"/mnt".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                0,
            );
            if !fails_with(Errno::EPERM, rc) {
                return 36;
            }
            let rc = raw_clone((libc::CLONE_NEWNS | libc::SIGCHLD) as libc::c_long);
            if !fails_with(Errno::EPERM, rc) {
                return 37;
            }
            // struct clone_args, zeroed: a plain fork if it were let through.
            let args = [0u64; 11];
            let rc = libc::syscall(
                libc::SYS_clone3,
                args.as_ptr(),
                std::mem::size_of_val(&args),
            );
            if rc == 0 {
                libc::_exit(0);
            }
            if !fails_with(Errno::ENOSYS, rc) {
                return 38;
            }
            match libc::fork() {
                0 => libc::_exit(7),
                pid if pid > 0 => {
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 7 {
                        return 39;
                    }
                }
                _ => return 39,
            }
            if libc::syscall(libc::SYS_personality, 0xffff_ffff_u64) < 0 {
                return 40;
            }
            let rc = libc::syscall(
                libc::SYS_personality,
                0x0040000, /* ADDR_NO_RANDOMIZE */
            );
            if !fails_with(Errno::EPERM, rc) {
                return 41;
            }
            let rc = libc::syscall(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0);
            if !fails_with(Errno::EPERM, rc) {
                return 42;
            }
            let rc = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if rc < 0 {
                return 43;
            }
            let rc = libc::syscall(libc::SYS_add_key, c"user".as_ptr(), c"k".as_ptr(), 0, 0, -3);
            if !fails_with(Errno::EPERM, rc) {
                return 44;
            }
        }
        let mut buf = [0u8; 8192];
        let Some(len) = read_status(&mut buf) else {
            return 1;
        };
        let status = &buf[..len];
        if field(status, b"Seccomp:") != Some(b"2") || field(status, b"NoNewPrivs:") != Some(b"1") {
            return 45;
        }
        0
    }));
}

#[test]
fn filter_with_sys_admin_allows_namespaces_and_clone3() {
    if !root_user() {
        return;
    }
    let mut set = CapSet::docker_default();
    set.insert(Capability::CAP_SYS_ADMIN);
    let program = seccomp::default_filter(&set).expect("filter");
    assert_passed(in_child(|| {
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install(&program).is_err() {
            return 31;
        }
        // SAFETY: raw system calls; clone3 with a null, too-short argument
        // is refused by the kernel (EFAULT/EINVAL) if the filter lets it by.
        unsafe {
            if libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS) != 0 {
                return 50;
            }
            let rc = libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0);
            if rc == 0 {
                libc::_exit(0);
            }
            if fails_with(Errno::ENOSYS, rc) {
                return 51;
            }
        }
        0
    }));
}

#[test]
fn filter_kills_i386_system_calls() {
    if !root_user() {
        return;
    }
    let program = seccomp::default_filter(&CapSet::docker_default()).expect("filter");
    let status = in_child(|| {
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install(&program).is_err() {
            return 31;
        }
        let nr: u64 = 20; // getpid in the i386 table
                          // SAFETY: `int 0x80` runs the i386 getpid, which takes no arguments
                          // and touches no memory; the filter should kill us before it runs.
        unsafe {
            std::arch::asm!("int 0x80", inlateout("rax") nr => _, options(nostack));
        }
        60
    });
    match status {
        WaitStatus::Signaled(_, Signal::SIGSYS, _) => {}
        // Without IA-32 emulation the kernel refuses `int 0x80` itself.
        WaitStatus::Signaled(_, Signal::SIGSEGV, _) => {
            eprintln!("SKIPPED: this kernel has no IA-32 emulation, nothing to filter")
        }
        other => assert_passed(other),
    }
}

#[test]
fn the_whole_sequence_then_exec_as_uid_1000() {
    if !root_user() {
        return;
    }
    let sh = CString::new("/bin/sh").unwrap();
    if !std::path::Path::new("/bin/sh").exists() {
        eprintln!("SKIPPED: the_whole_sequence_then_exec_as_uid_1000 needs /bin/sh");
        return;
    }
    // After execve a non-root workload holds no capability but keeps the
    // bounding set; no_new_privs and the filter stay in force.
    let script = format!(
        "s=$(cat /proc/self/status) || exit 80
         case \"$s\" in *\"CapEff:\t0000000000000000\"*) ;; *) exit 81;; esac
         case \"$s\" in *\"CapPrm:\t0000000000000000\"*) ;; *) exit 82;; esac
         case \"$s\" in *\"CapBnd:\t{DOCKER_DEFAULT_MASK:016x}\"*) ;; *) exit 83;; esac
         case \"$s\" in *\"NoNewPrivs:\t1\"*) ;; *) exit 84;; esac
         case \"$s\" in *\"Seccomp:\t2\"*) ;; *) exit 85;; esac
         [ \"$(id -u)\" = 1000 ] || exit 86
         exit 0"
    );
    let args = [
        CString::new("sh").unwrap(),
        CString::new("-c").unwrap(),
        CString::new(script).unwrap(),
    ];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp = [c"PATH=/usr/bin:/bin".as_ptr(), std::ptr::null()];
    let set = caps::resolve(&[], &[], false).expect("resolve");
    let program = seccomp::default_filter(&set).expect("filter");

    // Read before the fork: the child must not allocate.
    let bounding = CapSet::bounding();
    let status = in_child(|| {
        if caps::apply(&set, bounding, 1000, 1000, &[]).is_err() {
            return 20;
        }
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install(&program).is_err() {
            return 31;
        }
        // SAFETY: NUL-terminated argv and envp of live CStrings.
        unsafe { libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        70
    });
    if let WaitStatus::Exited(_, code @ 80..=86) = status {
        panic!("shell check {code} failed (see the script: 81 CapEff, 82 CapPrm, 83 CapBnd, 84 NoNewPrivs, 85 Seccomp, 86 uid)");
    }
    assert_passed(status);
}

/// An OCI profile (config.json's `linux.seccomp`) compiled and installed,
/// with the flags it asks for.
fn oci_profile(syscalls: Vec<oci_spec::runtime::LinuxSyscall>) -> oci_profile::CompiledProfile {
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSeccompBuilder, LinuxSeccompFilterFlag};
    let profile = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .flags(vec![
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
        ])
        .syscalls(syscalls)
        .build()
        .expect("profile");
    oci_profile::compile(&profile).expect("compile")
}

#[test]
fn an_oci_profile_returns_its_errno_and_compares_64_bit_arguments() {
    use oci_spec::runtime::{
        LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompOperator, LinuxSyscallBuilder,
    };
    if !root_user() {
        return;
    }
    let mkdir = LinuxSyscallBuilder::default()
        .names(vec!["mkdir".to_owned(), "mkdirat".to_owned()])
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(13u32)
        .build()
        .expect("entry");
    let beyond_4_gib = LinuxSeccompArgBuilder::default()
        .index(1usize)
        .value(0xffff_ffffu64)
        .op(LinuxSeccompOperator::ScmpCmpGt)
        .build()
        .expect("arg");
    let lseek = LinuxSyscallBuilder::default()
        .names(vec!["lseek".to_owned()])
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EOVERFLOW as u32)
        .args(vec![beyond_4_gib])
        .build()
        .expect("entry");
    let profile = oci_profile(vec![mkdir, lseek]);
    assert_eq!(profile.flags, 0b101, "TSYNC | SPEC_ALLOW");

    // Made before the fork: the child must not allocate.
    let dir = tempfile::tempdir().expect("tempdir");
    // Filters this process already has (say, a container's): ours adds one.
    let mut buf = [0u8; 8192];
    let len = read_status(&mut buf).expect("/proc/self/status");
    let filters = decimal_field(&buf[..len], b"Seccomp_filters:");
    let target = CString::new(
        dir.path()
            .join("made")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("path");
    assert_passed(in_child(|| {
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install_with_flags(&profile.program, profile.flags).is_err() {
            return 90;
        }
        // SAFETY (all calls below): a NUL-terminated path of a live CString,
        // integer arguments, and an fd this child opened.
        unsafe {
            let rc = libc::syscall(libc::SYS_mkdir, target.as_ptr(), 0o755);
            if !fails_with(Errno::EACCES, rc) {
                return 91;
            }
            let rc = libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, target.as_ptr(), 0o755);
            if !fails_with(Errno::EACCES, rc) {
                return 92;
            }
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            let rc = libc::syscall(libc::SYS_lseek, fd, (1u64 << 32) + 5, libc::SEEK_SET);
            if !fails_with(Errno::EOVERFLOW, rc) {
                return 93;
            }
            if libc::syscall(libc::SYS_lseek, fd, 0xffff_ffffu64, libc::SEEK_SET) < 0 {
                return 94;
            }
            if libc::getpid() <= 0 {
                return 95;
            }
        }
        let mut buf = [0u8; 8192];
        let Some(len) = read_status(&mut buf) else {
            return 1;
        };
        let status = &buf[..len];
        let now = decimal_field(status, b"Seccomp_filters:");
        if field(status, b"Seccomp:") != Some(b"2") || now != filters.map(|n| n + 1) {
            return 96;
        }
        0
    }));
    assert!(!dir.path().join("made").exists());
}

#[test]
fn an_oci_profile_kills_the_process_that_makes_a_killed_call() {
    use oci_spec::runtime::{LinuxSeccompAction, LinuxSyscallBuilder};
    if !root_user() {
        return;
    }
    let getppid = LinuxSyscallBuilder::default()
        .names(vec!["getppid".to_owned()])
        .action(LinuxSeccompAction::ScmpActKillProcess)
        .build()
        .expect("entry");
    let profile = oci_profile(vec![getppid]);
    let status = in_child(|| {
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install_with_flags(&profile.program, profile.flags).is_err() {
            return 90;
        }
        // SAFETY: getppid takes no arguments; the filter kills us in it.
        unsafe { libc::getppid() };
        97
    });
    match status {
        WaitStatus::Signaled(_, Signal::SIGSYS, _) => {}
        other => assert_passed(other),
    }
}

/// The i386 `getpid` (number 20 in its own table) by `int 0x80`: its
/// result, or -errno.
fn i386_getpid() -> i64 {
    let mut rax: u64 = 20;
    // SAFETY: `int 0x80` runs the i386 getpid, which takes no arguments and
    // touches no memory.
    unsafe {
        std::arch::asm!("int 0x80", inlateout("rax") rax, options(nostack));
    }
    // The i386 result is the low 32 bits, signed.
    i64::from(rax as u32 as i32)
}

#[test]
fn an_oci_profile_filters_i386_calls_by_their_own_numbers() {
    use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder};
    if !root_user() {
        return;
    }
    let compile = |arches: Vec<Arch>| {
        let getpid = LinuxSyscallBuilder::default()
            .names(vec!["getpid".to_owned()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(13u32)
            .build()
            .expect("entry");
        let profile = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .architectures(arches)
            .syscalls(vec![getpid])
            .build()
            .expect("profile");
        oci_profile::compile(&profile).expect("compile")
    };
    let listed = compile(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]);
    let status = in_child(|| {
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install_with_flags(&listed.program, listed.flags).is_err() {
            return 90;
        }
        if i386_getpid() != -13 {
            return 98;
        }
        0
    });
    if let WaitStatus::Signaled(_, Signal::SIGSEGV, _) = status {
        // Without IA-32 emulation the kernel refuses `int 0x80` itself.
        eprintln!("SKIPPED: this kernel has no IA-32 emulation, nothing to filter");
        return;
    }
    assert_passed(status);

    let unlisted = compile(vec![Arch::ScmpArchX86_64]);
    let status = in_child(|| {
        if seccomp::set_no_new_privs().is_err() {
            return 30;
        }
        if seccomp::install_with_flags(&unlisted.program, unlisted.flags).is_err() {
            return 90;
        }
        i386_getpid();
        99
    });
    match status {
        // SCMP_ACT_KILL_THREAD, libseccomp's bad-architecture action: this
        // child's only thread, so the process.
        WaitStatus::Signaled(_, Signal::SIGSYS, _) => {}
        other => assert_passed(other),
    }
}

#[test]
fn status_parsing() {
    let status = b"Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n";
    assert_eq!(hex_field(status, b"CapEff:"), Some(DOCKER_DEFAULT_MASK));
    assert_eq!(hex_field(status, b"CapInh:"), Some(0));
    assert_eq!(field(status, b"Seccomp:"), Some(&b"2"[..]));
    assert_eq!(hex_field(status, b"CapBnd:"), None);
    assert_eq!(
        decimal_field(b"Seccomp_filters:\t12\n", b"Seccomp_filters:"),
        Some(12)
    );
}
