//! A signal that would end the benchmark (Ctrl-C's SIGINT, SIGTERM, SIGHUP,
//! SIGPIPE on a closed output) while a dimension holds daemons, containers
//! and sandboxes (the lifecycle's containerd, the distribution's
//! registries): noted instead, so that the runs stop and everything is
//! removed first. The caller raises it again once its
//! own scratch is gone too ([`end_if_interrupted`]), with the old
//! disposition back, so the process ends as it would have.

use std::sync::atomic::{AtomicI32, Ordering};

const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE];

/// The last such signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Has one of [`SIGNALS`] come since the guard was installed?
pub fn interrupted() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The signal noted, if one was, raised again: once the guard is gone its
/// old disposition decides (for SIGINT, SIGTERM, SIGHUP and SIGPIPE by
/// default, the end of the process).
pub fn end_if_interrupted() {
    let signal = RECEIVED.swap(0, Ordering::SeqCst);
    if signal != 0 {
        // SAFETY: raise sends the signal to this process only.
        unsafe { libc::raise(signal) };
    }
}

/// The handlers while it lives: drop it after everything it protects. A
/// signal noted stays noted after it is dropped.
pub struct Guard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Guard {
    pub fn install() -> Guard {
        RECEIVED.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for &signal in &SIGNALS {
            // SAFETY: sigaction with a zeroed struct, a handler that only
            // stores into an atomic (async-signal-safe), and SA_RESTART so
            // the waits it interrupts carry on; a handler (unlike SIG_IGN)
            // is reset to the default in the programs we start.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut previous) != 0 {
                    continue;
                }
                if previous.sa_sigaction == libc::SIG_IGN {
                    // Ignored by whoever started us (nohup, a background
                    // job): it stays ignored.
                    libc::sigaction(signal, &previous, std::ptr::null_mut());
                    continue;
                }
                old.push((signal, previous));
            }
        }
        Guard { old }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for (signal, previous) in &self.old {
            // SAFETY: restoring the disposition sigaction gave back.
            unsafe { libc::sigaction(*signal, previous, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" fn counted(_: libc::c_int) {
        COUNTED.fetch_add(1, Ordering::SeqCst);
    }
    static COUNTED: AtomicI32 = AtomicI32::new(0);

    #[test]
    fn a_signal_is_noted_the_old_disposition_comes_back_and_an_ignored_one_stays_so() {
        // SAFETY: plain signal calls on this test process, with a handler
        // that only counts.
        unsafe {
            libc::signal(
                libc::SIGHUP,
                counted as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
        {
            let _guard = Guard::install();
            assert!(!interrupted());
            // SAFETY: as above.
            unsafe { libc::raise(libc::SIGINT) };
            assert!(!interrupted(), "an ignored signal is noted");
            unsafe { libc::raise(libc::SIGHUP) };
            assert!(interrupted());
            assert_eq!(COUNTED.load(Ordering::SeqCst), 0);
        }
        // Noted until raised again, now to the old handler.
        assert!(interrupted());
        end_if_interrupted();
        assert!(!interrupted());
        assert_eq!(COUNTED.load(Ordering::SeqCst), 1);
        // SAFETY: the dispositions back to the defaults.
        unsafe {
            assert_eq!(libc::signal(libc::SIGINT, libc::SIG_DFL), libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
        }
    }
}
