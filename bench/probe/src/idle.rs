//! `idle`: a process that says what memory it sees and then does nothing
//! until told to stop, so that a sandbox's idle cost can be measured.

use std::io::{self, Write};
use std::sync::atomic::{AtomicI32, Ordering};

use serde::Serialize;

use crate::facts;

#[derive(Debug, Serialize)]
pub struct Hello {
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
    pub pid: u32,
}

const STOP: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(sig: libc::c_int) {
    STOPPED_BY.store(sig, Ordering::SeqCst);
}

/// Write the hello line to `out`, then wait for SIGTERM, SIGINT or SIGHUP;
/// the signal that came.
pub fn run(out: &mut impl Write) -> io::Result<libc::c_int> {
    // Blocked before the line goes out, so that a signal sent as soon as it
    // is read waits for sigsuspend rather than being lost.
    // SAFETY: sigset_t is plain old data, filled by sigemptyset.
    let mut stop: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigsets; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut stop);
        for sig in STOP {
            libc::sigaddset(&mut stop, sig);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &stop, &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // As PID 1 of a namespace, a signal left at its default action is
    // dropped, SIGTERM included: a handler is what makes it count.
    for sig in STOP {
        // SAFETY: sigaction is plain old data; the handler only stores to an atomic.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_stop as *const () as libc::sighandler_t;
        // SAFETY: a valid sigaction for a catchable signal.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let hello = Hello {
        mem_total_kib: facts::meminfo("MemTotal"),
        mem_available_kib: facts::meminfo("MemAvailable"),
        pid: std::process::id(),
    };
    let line = serde_json::to_string(&hello).map_err(io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()?;
    let mut waiting = old;
    for sig in STOP {
        // SAFETY: `waiting` is a valid sigset.
        unsafe { libc::sigdelset(&mut waiting, sig) };
    }
    while STOPPED_BY.load(Ordering::SeqCst) == 0 {
        // SAFETY: `waiting` is a valid sigset; sigsuspend returns after a handler ran.
        unsafe { libc::sigsuspend(&waiting) };
    }
    Ok(STOPPED_BY.load(Ordering::SeqCst))
}
