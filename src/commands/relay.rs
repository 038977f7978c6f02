//! What `exec` and `attach` share: the signals isola passes on to what
//! runs in a sandbox, and copying a descriptor's bytes to the caller.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// pidfd_send_signal(2): the process, not whoever has its PID now.
pub fn send_signal(pidfd: &OwnedFd, signal: Signal) -> nix::Result<()> {
    // SAFETY: a pidfd we hold, a valid signal, no siginfo, no flags.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as i32,
            std::ptr::null::<nix::libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

/// The signals passed on (the terminal's and a supervisor's) and SIGWINCH,
/// blocked and read from a signalfd while this lives.
pub struct Relayed {
    pub fd: SignalFd,
    old: SigSet,
}

impl Relayed {
    pub fn block() -> Result<Relayed> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGWINCH);
        for s in isola_core::backend::RELAYED_SIGNALS {
            mask.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .context("blocking signals")?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .context("signalfd")?;
        Ok(Relayed { fd, old })
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

/// One read from `from` written to `to`; false at its end.
pub fn copy_once(from: &OwnedFd, to: &mut impl Write, buf: &mut [u8]) -> bool {
    match nix::unistd::read(from, buf) {
        Ok(0) => false,
        Ok(n) => {
            let _ = to.write_all(&buf[..n]);
            let _ = to.flush();
            true
        }
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => true,
        Err(_) => false,
    }
}

/// What is left in `from`, without waiting for more.
pub fn drain(from: &OwnedFd, to: &mut impl Write, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(
        from,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while copy_once(from, to, buf) {
        let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::ZERO) != Ok(1) {
            break;
        }
    }
}
