//! The caller's own signals, passed on to the workload: blocked in the
//! calling thread before the monitor's threads start (they inherit the
//! mask, so none of them is interrupted or ended by one), read from a
//! signalfd while isola waits for the guest, unblocked again at teardown.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The relayed signals, blocked and readable, until dropped.
pub struct CallerSignals {
    fd: SignalFd,
    old: SigSet,
}

/// The signals to block and pass on: SIGWINCH as well with a terminal.
fn relayed(terminal: bool) -> SigSet {
    let mut mask = SigSet::empty();
    for s in isola_core::backend::RELAYED_SIGNALS {
        mask.add(s);
    }
    if terminal {
        mask.add(Signal::SIGWINCH);
    }
    mask
}

impl CallerSignals {
    /// Block the relayed signals in the calling thread (and so in every
    /// thread it starts from now on); `terminal` (-t) adds SIGWINCH.
    pub fn block(terminal: bool) -> nix::Result<CallerSignals> {
        let mask = relayed(terminal);
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))?;
        match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Ok(CallerSignals { fd, old }),
            Err(e) => {
                let _ =
                    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                Err(e)
            }
        }
    }

    /// Readable when a signal came.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The signals that came since the last call, without waiting.
    pub fn take(&self) -> Vec<Signal> {
        let mut came = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                came.push(signal);
            }
        }
        came
    }
}

impl Drop for CallerSignals {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_waits_to_be_taken_and_the_mask_comes_back() {
        // On a thread of its own: the mask is the thread's.
        std::thread::spawn(|| {
            let signals = CallerSignals::block(false).unwrap();
            // SAFETY: tgkill(2) on our own thread with a signal it blocks.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    libc::getpid(),
                    libc::gettid(),
                    libc::SIGUSR2,
                )
            };
            assert_eq!(r, 0);
            assert_eq!(signals.take(), [Signal::SIGUSR2]);
            assert_eq!(signals.take(), []);
            drop(signals);
            let now = SigSet::thread_get_mask().unwrap();
            assert!(!now.contains(Signal::SIGUSR2));
        })
        .join()
        .unwrap();
    }
}
