//! Starting the monitor process: cloned straight into new mount, pid, net,
//! ipc and uts namespaces (where isola may make them), its descriptors put
//! in place and everything else closed, then isola-vmm exec'd. Between
//! clone and exec the child only makes syscalls: isola has other threads.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::wire::{CONTROL_FD, REPORT_FD, TAP_FD};
use super::VmmError;

/// The descriptors the monitor process gets, at 0 to 4, and the tap at 5
/// (see `wire`).
pub struct Fds<'a> {
    pub com1_in: BorrowedFd<'a>,
    pub com1_out: BorrowedFd<'a>,
    pub com2_out: BorrowedFd<'a>,
    pub control: BorrowedFd<'a>,
    pub report: &'a OwnedFd,
    pub tap: Option<BorrowedFd<'a>>,
}

/// Namespaces need root; without them the monitor is still filtered.
pub fn namespaces(jailed: bool) -> CloneFlags {
    if jailed {
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
    } else {
        CloneFlags::empty()
    }
}

/// Start `binary --config JSON` with `fds`, in `flags`' namespaces.
pub fn spawn(binary: &Path, config: &str, fds: &Fds, flags: CloneFlags) -> Result<Pid, VmmError> {
    let cstr = |bytes: &[u8]| CString::new(bytes).map_err(|_| VmmError::Nul);
    let path = cstr(binary.as_os_str().as_bytes())?;
    let args = [path.clone(), cstr(b"--config")?, cstr(config.as_bytes())?];
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // Where each descriptor goes, in order: a source already at a lower
    // target is moved out of the way first (dup'd above them all).
    let mut sources = [
        fds.com1_in.as_raw_fd(),
        fds.com1_out.as_raw_fd(),
        fds.com2_out.as_raw_fd(),
        fds.control.as_raw_fd(),
        fds.report.as_raw_fd(),
        -1,
    ];
    debug_assert_eq!(CONTROL_FD, 3);
    debug_assert_eq!(TAP_FD, REPORT_FD + 1);
    let count = match fds.tap {
        Some(tap) => {
            sources[TAP_FD as usize] = tap.as_raw_fd();
            TAP_FD as usize + 1
        }
        None => REPORT_FD as usize + 1,
    };
    let mut stack = vec![0u8; 64 << 10];
    let child = Box::new(move || -> isize {
        // SAFETY: only syscalls, on memory prepared before the clone.
        unsafe {
            in_child(
                &sources[..count],
                path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        }
    });
    // SAFETY: the child runs `in_child` on its own stack and copy of the
    // address space, and execs or exits; it takes no lock isola holds.
    let pid = unsafe {
        nix::sched::clone(
            child,
            &mut stack,
            flags,
            Some(nix::sys::signal::Signal::SIGCHLD as i32),
        )
    }
    .map_err(VmmError::Clone)?;
    Ok(pid)
}

/// Between clone and exec: descriptors to their places, the rest closed,
/// signals unblocked (isola blocks its caller's), death with isola's
/// thread that waits for it, then exec. On failure: exit 127.
unsafe fn in_child(
    sources: &[i32],
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> isize {
    const ABOVE: i32 = 100;
    let mut moved = [0i32; 6];
    for (i, &fd) in sources.iter().enumerate() {
        let Some(slot) = moved.get_mut(i) else {
            libc::_exit(127);
        };
        *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, ABOVE);
        if *slot < 0 {
            libc::_exit(127);
        }
    }
    for (target, &fd) in moved[..sources.len()].iter().enumerate() {
        if libc::dup2(fd, target as i32) < 0 {
            libc::_exit(127);
        }
    }
    libc::syscall(
        libc::SYS_close_range,
        sources.len() as libc::c_uint,
        libc::c_uint::MAX,
        0,
    );
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    libc::execve(path, argv, envp);
    libc::_exit(127);
}
