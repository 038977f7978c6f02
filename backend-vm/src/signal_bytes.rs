//! The signals isola passes on to the workload, as isola-init reads them on
//! COM2: one byte, the signal's number; and with `-t`, each new window size
//! of the caller's terminal (SIGWINCH), as [`window_size_message`]. isola's
//! own monitor feeds these into COM2's receive side (the QEMU relay writes
//! them itself).

use std::io::Read;
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::deadline::{Deadline, SIGNAL_GRACE};

/// The COM2 message for the caller's current window size, if stdin is a
/// terminal.
pub fn window_size_message() -> Option<[u8; 5]> {
    let ws = isola_core::terminal::window_size(std::io::stdin().as_fd())?;
    Some(isola_guest_spec::wire::window_size(ws.ws_row, ws.ws_col))
}

/// The signals to block and pass on: SIGWINCH as well with a terminal.
pub fn relayed(terminal: bool) -> SigSet {
    let mut mask = SigSet::empty();
    for s in isola_core::backend::RELAYED_SIGNALS {
        mask.add(s);
    }
    if terminal {
        mask.add(nix::sys::signal::Signal::SIGWINCH);
    }
    mask
}

/// Reads the relayed signals as bytes, blocking until one comes. While it
/// lives, the creating thread (and every thread it starts) has them
/// blocked, so they wait in the signalfd instead of ending isola.
pub struct SignalBytes {
    fd: SignalFd,
    pending: Vec<u8>,
    /// Armed by SIGTERM: the guest must end within [`SIGNAL_GRACE`].
    deadline: Deadline,
}

/// Puts the calling thread's signal mask back when dropped.
pub struct Unblock(SigSet);

impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

impl SignalBytes {
    /// `terminal`: pass on window-size changes too (-t). A SIGTERM arms
    /// `deadline`: isola-init ends the workload within its grace period,
    /// and a guest with no isola-init up yet to take the signal is stopped.
    pub fn start(terminal: bool, deadline: Deadline) -> Result<(SignalBytes, Unblock), Errno> {
        let mask = relayed(terminal);
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))?;
        let unblock = Unblock(old);
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;
        Ok((
            SignalBytes {
                fd,
                pending: Vec::new(),
                deadline,
            },
            unblock,
        ))
    }
}

impl Read for SignalBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pending.is_empty() {
            match self.fd.read_signal() {
                Ok(Some(info)) if info.ssi_signo == libc::SIGWINCH as u32 => {
                    self.pending
                        .extend(window_size_message().unwrap_or_default());
                }
                Ok(Some(info)) => {
                    if info.ssi_signo == libc::SIGTERM as u32 {
                        self.deadline.arm(SIGNAL_GRACE);
                    }
                    self.pending.push(info.ssi_signo as u8)
                }
                Ok(None) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_signal_becomes_its_number() {
        // On a thread of its own: the mask is the thread's.
        std::thread::spawn(|| {
            let (mut bytes, unblock) = SignalBytes::start(false, Deadline::default()).unwrap();
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
            let mut b = [0u8; 4];
            assert_eq!(bytes.read(&mut b).unwrap(), 1);
            assert_eq!(b[0], libc::SIGUSR2 as u8);
            drop(unblock);
        })
        .join()
        .unwrap();
    }
}
