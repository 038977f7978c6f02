//! Getting vCPU threads out of KVM_RUN: a signal with a do-nothing handler
//! (no SA_RESTART) makes the ioctl return EINTR, and the loop then sees the
//! stop flag. Used when one vCPU ends the VM and when the deadline passes,
//! by a kicker thread started with the vCPUs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::error::VcpuError;

extern "C" fn ignore(_: libc::c_int) {}

fn signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// Install the handler; call once before any vCPU thread runs.
pub fn install() -> Result<(), VcpuError> {
    // SAFETY: sigaction with a zeroed struct and a handler that does nothing.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as *const () as usize;
        libc::sigaction(signal(), &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(VcpuError::KickHandler(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The stop flag, the threads to kick, and the kicker's wake-up.
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    threads: Mutex<Vec<libc::pthread_t>>,
    wake: Condvar,
}

impl Stop {
    /// Register the calling thread as a vCPU thread.
    pub fn register(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        if let Ok(mut t) = self.threads.lock() {
            t.push(me);
        }
    }

    /// Forget the calling thread: it is leaving its loop.
    pub fn unregister(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        if let Ok(mut t) = self.threads.lock() {
            // SAFETY: pthread_equal compares two thread ids.
            t.retain(|x| unsafe { libc::pthread_equal(*x, me) } == 0);
        }
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Set the flag and wake the kicker ([`Stop::kick_until_clear`]).
    /// The flag is set under the lock the kicker waits with, so that the
    /// wake-up cannot fall between its look at the flag and its wait.
    pub fn stop_all(&self) {
        let _threads = self.threads.lock();
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// The kicker's life, on a thread started with the vCPUs' (so that no
    /// vCPU thread ever needs to start one, nor its seccomp filter allow
    /// it): wait for the flag, then kick every registered thread until
    /// none is left. A kick that lands between two KVM_RUN calls is lost,
    /// hence the loop.
    pub fn kick_until_clear(&self) {
        let Ok(mut threads) = self.threads.lock() else {
            return;
        };
        while !self.is_set() {
            threads = match self.wake.wait(threads) {
                Ok(t) => t,
                Err(_) => return,
            };
        }
        loop {
            if threads.is_empty() {
                return;
            }
            for t in threads.iter() {
                // SAFETY: a thread unregisters (under this lock, which we
                // hold) before it exits, so `t` names a live thread.
                unsafe { libc::pthread_kill(*t, signal()) };
            }
            drop(threads);
            std::thread::sleep(Duration::from_millis(1));
            threads = match self.threads.lock() {
                Ok(t) => t,
                Err(_) => return,
            };
        }
    }
}
