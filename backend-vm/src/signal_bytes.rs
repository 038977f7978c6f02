//! The signals isola passes on to the workload, as isola-init reads them on
//! COM2: one byte, the signal's number. isola's own monitor feeds these
//! into COM2's receive side (the QEMU relay writes them itself).

use std::io::Read;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::kvm::VmError;

/// Reads the relayed signals as bytes, blocking until one comes. While it
/// lives, the creating thread (and every thread it starts) has them
/// blocked, so they wait in the signalfd instead of ending isola.
pub struct SignalBytes {
    fd: SignalFd,
}

/// Puts the calling thread's signal mask back when dropped.
pub struct Unblock(SigSet);

impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

impl SignalBytes {
    pub fn start() -> Result<(SignalBytes, Unblock), VmError> {
        let mut mask = SigSet::empty();
        for s in isola_core::backend::RELAYED_SIGNALS {
            mask.add(s);
        }
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .map_err(|e| VmError::Config(format!("blocking signals: {e}")))?;
        let unblock = Unblock(old);
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
            .map_err(|e| VmError::Config(format!("signalfd: {e}")))?;
        Ok((SignalBytes { fd }, unblock))
    }
}

impl Read for SignalBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    buf[0] = info.ssi_signo as u8;
                    return Ok(1);
                }
                Ok(None) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_signal_becomes_its_number() {
        // On a thread of its own: the mask is the thread's.
        std::thread::spawn(|| {
            let (mut bytes, unblock) = SignalBytes::start().unwrap();
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
