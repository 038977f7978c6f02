//! clone3(2) for the container's first process: new namespaces, a pidfd
//! for it from the start (signals never go to a recycled PID), and on
//! cgroup v2 its cgroup from birth (CLONE_INTO_CGROUP), so that nobody has
//! to move it there. Without CLONE_VM and a stack it is fork-like: the
//! child runs on a copy of isola's memory, so it may read isola's data
//! (the spec, the prepared policy) by reference. `exec` clones with it
//! too, twice (see `exec_in`).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub struct Spawned {
    pub pid: Pid,
    pub pidfd: OwnedFd,
}

/// Start `child` in a new process with `flags`; in the child, its return
/// value is the exit code and nothing returns into isola's frames.
///
/// # Safety
/// The calling process must be single-threaded: the child is a copy of
/// this thread alone, and a lock another thread held (malloc's, stdio's)
/// would stay locked in it forever.
pub unsafe fn spawn(
    flags: CloneFlags,
    cgroup: Option<BorrowedFd>,
    child: impl FnOnce() -> i32,
) -> Result<Spawned, Errno> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: clone_args is plain data; zeroed is its "nothing asked" value.
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    args.flags = flags.bits() as u64 | CLONE_PIDFD;
    args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    // CLONE_PARENT makes the child its caller's sibling, which the kernel
    // gives the caller's own exit signal: clone3 refuses one given then.
    if !flags.contains(CloneFlags::CLONE_PARENT) {
        args.exit_signal = libc::SIGCHLD as u64;
    }
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size given; with no
    // CLONE_VM and no stack the child gets a copy of this process, as
    // with fork, and returns here with 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => {
            // A panic must not unwind into the parent's frames, whose
            // destructors would run here (detaching its loop devices...).
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(127);
            // SAFETY: ends this process without running anything of isola's.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Spawned {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: the kernel returned a new pidfd, owned by no one else.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Send `signal` to the process behind `pidfd`: it can name no other
/// process, even after this one is gone and its PID reused.
pub fn send_signal(pidfd: &OwnedFd, signal: nix::sys::signal::Signal) -> Result<(), Errno> {
    // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if r == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// A pidfd for `pid`, a child of ours not yet reaped (so the PID cannot
/// have been reused).
pub fn open_pidfd(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open with no flags returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0u32) };
    if fd < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: the kernel just made this fd for us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// Whether the process behind `pidfd` has exited (its pidfd is readable
/// then), without waiting and without reaping it.
pub fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(pidfd),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_child_exits_with_its_code_and_its_pidfd_signals_it() {
        // SAFETY: test threads exist, but the child only calls _exit or pause.
        let quick = unsafe { spawn(CloneFlags::empty(), None, || 7) }.unwrap();
        let status = nix::sys::wait::waitpid(quick.pid, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(quick.pid, 7));
        // SAFETY: as above.
        let wait_for_a_signal = || {
            // SAFETY: pause only waits for a signal.
            unsafe { libc::pause() };
            0
        };
        // SAFETY: as above.
        let slow = unsafe { spawn(CloneFlags::empty(), None, wait_for_a_signal) }.unwrap();
        assert!(!exited(&slow.pidfd));
        send_signal(&slow.pidfd, nix::sys::signal::Signal::SIGKILL).unwrap();
        // Readable once it is gone, before it is reaped.
        while !exited(&slow.pidfd) {
            std::thread::yield_now();
        }
        let status = nix::sys::wait::waitpid(slow.pid, None).unwrap();
        assert!(matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
        ));
        // Reaped: the pidfd now names nothing, and says so.
        assert_eq!(
            send_signal(&slow.pidfd, nix::sys::signal::Signal::SIGTERM),
            Err(Errno::ESRCH)
        );
    }

    #[test]
    fn a_child_cloned_with_clone_parent_is_its_callers_sibling() {
        let (pid_in, pid_out) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let middle = || {
            // SAFETY: the middle child has one thread; its own child exits at once.
            match unsafe { spawn(CloneFlags::CLONE_PARENT, None, || 5) } {
                Ok(s) => {
                    let _ = nix::unistd::write(&pid_out, &s.pid.as_raw().to_ne_bytes());
                    0
                }
                Err(e) => e as i32,
            }
        };
        // SAFETY: test threads exist, but the child only clones, writes and exits.
        let middle = unsafe { spawn(CloneFlags::empty(), None, middle) }.unwrap();
        drop(pid_out);
        let status = nix::sys::wait::waitpid(middle.pid, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(middle.pid, 0));
        let mut bytes = [0u8; 4];
        assert_eq!(nix::unistd::read(&pid_in, &mut bytes), Ok(4));
        // Ours to wait for, with SIGCHLD as its exit signal (no __WALL needed).
        let sibling = Pid::from_raw(i32::from_ne_bytes(bytes));
        let status = nix::sys::wait::waitpid(sibling, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(sibling, 5));
    }
}
