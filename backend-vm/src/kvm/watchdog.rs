//! Stops a guest that runs too long: after the deadline it kicks the vCPU
//! thread out of KVM_RUN with a signal until the loop sees the flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::VmError;

pub struct Watchdog {
    fired: Arc<AtomicBool>,
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

extern "C" fn ignore(_: libc::c_int) {}

fn kick_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

impl Watchdog {
    /// Watch the calling thread (the vCPU's).
    pub fn start(timeout: Duration) -> Result<Watchdog, VmError> {
        // A handler, not SIG_IGN, and no SA_RESTART: the signal must make
        // KVM_RUN return EINTR.
        // SAFETY: sigaction with a zeroed struct and a handler that does nothing.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore as *const () as usize;
            if libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) != 0 {
                return Err(VmError::Config(
                    "cannot install the vCPU kick signal handler".into(),
                ));
            }
        }
        // SAFETY: pthread_self has no preconditions.
        let target = unsafe { libc::pthread_self() };
        let fired = Arc::new(AtomicBool::new(false));
        let (done, wait) = mpsc::channel::<()>();
        let flag = Arc::clone(&fired);
        let thread = std::thread::Builder::new()
            .name("isola-vm-watchdog".into())
            .spawn(move || {
                if wait.recv_timeout(timeout) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
                flag.store(true, Ordering::SeqCst);
                // Kick until the vCPU loop is gone (it drops us, closing `done`).
                while wait.recv_timeout(Duration::from_millis(1))
                    == Err(mpsc::RecvTimeoutError::Timeout)
                {
                    // SAFETY: the target thread outlives us: it joins us when dropping the Watchdog.
                    unsafe { libc::pthread_kill(target, kick_signal()) };
                }
            })
            .map_err(|e| VmError::Config(format!("starting the watchdog thread: {e}")))?;
        Ok(Watchdog {
            fired,
            done: Some(done),
            thread: Some(thread),
        })
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
