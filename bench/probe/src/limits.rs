//! Limits as observed rather than as configured: how much memory a child can
//! touch before something stops it, and how many processes can be started.

use std::os::fd::RawFd;
use std::time::Duration;

use serde::Serialize;

use crate::child::{self, Exit};
use crate::errno;

/// What this process's limits let it do, whatever they are configured as.
#[derive(Debug, Serialize)]
pub struct Observed {
    pub memory: Memory,
    pub pids: Pids,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub tried_mib: u64,
    pub touched_mib: u64,
    /// The signal that ended the child (9 for the OOM killer), if one did.
    pub killed_by: Option<i32>,
    /// Why the child stopped short other than by a signal (ENOMEM from mmap).
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Pids {
    pub tried: u32,
    pub started: u32,
    /// Why the next fork failed (EAGAIN at a pids limit).
    pub error: Option<String>,
}

pub const DEFAULT_MEMORY_MIB: u64 = 256;
pub const DEFAULT_PIDS: u32 = 256;

const MIB: usize = 1 << 20;
/// Touching memory that swaps can crawl; past this the child is stopped.
const MEMORY_TIME: Duration = Duration::from_secs(60);

pub fn observe(memory_mib: u64, pids: u32) -> Observed {
    Observed {
        memory: memory(memory_mib),
        pids: self::pids(pids),
    }
}

/// A child maps and writes 1 MiB at a time up to `mib`, telling us after
/// each, so that what it managed survives its being killed.
pub fn memory(mib: u64) -> Memory {
    let mut m = Memory {
        tried_mib: mib,
        touched_mib: 0,
        killed_by: None,
        error: None,
    };
    let report = match child::spawn(|out| touch(out, mib)).and_then(|c| c.wait(MEMORY_TIME)) {
        Ok(r) => r,
        Err(e) => {
            m.error = Some(format!("fork: {e}"));
            return m;
        }
    };
    let (progress, error) = match report.bytes.iter().position(|b| *b == b'E') {
        Some(i) => (&report.bytes[..i], Some(&report.bytes[i + 1..])),
        None => (&report.bytes[..], None),
    };
    m.touched_mib = progress.len() as u64;
    m.error = error.map(|e| String::from_utf8_lossy(e).into_owned());
    match report.exit {
        _ if report.timed_out => m.error = Some(format!("still touching after {MEMORY_TIME:?}")),
        Exit::Signal(sig) => m.killed_by = Some(sig),
        Exit::Code(0) => {}
        Exit::Code(code) if m.error.is_none() => m.error = Some(format!("exited {code}")),
        Exit::Code(_) => {}
    }
    m
}

fn touch(out: RawFd, mib: u64) -> i32 {
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    };
    for _ in 0..mib {
        // Never unmapped: the child keeps all it touched until it ends.
        // SAFETY: a fresh anonymous mapping, no address asked for.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MIB,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let _ = child::send(out, format!("E{}", errno::last()).as_bytes());
            return 1;
        }
        let p = p.cast::<u8>();
        for offset in (0..MIB).step_by(page) {
            // A write, not a read, so that each page gets memory of its own
            // rather than the shared zero page.
            // SAFETY: `offset` is inside the MIB-long writable mapping.
            unsafe { std::ptr::write_volatile(p.add(offset), 1) };
        }
        if child::send(out, b"+").is_err() {
            return 1;
        }
    }
    0
}

/// Fork children that wait on a pipe until `n` exist or fork fails; then
/// close the pipe, which lets them all go, and reap them.
pub fn pids(n: u32) -> Pids {
    let mut p = Pids {
        tried: n,
        started: 0,
        error: None,
    };
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        p.error = Some(format!("pipe: {}", errno::last()));
        return p;
    }
    let [hold, release] = fds;
    let mut kids = Vec::new();
    for _ in 0..n {
        // SAFETY: the child only makes async-signal-safe calls, then _exit.
        match unsafe { libc::fork() } {
            -1 => {
                p.error = Some(errno::last());
                break;
            }
            0 => wait_for_release(hold, release),
            pid => kids.push(pid),
        }
    }
    // SAFETY: both are ours, and closed once.
    unsafe {
        libc::close(release);
        libc::close(hold);
    }
    p.started = kids.len() as u32;
    for pid in kids {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is writable.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
    }
    p
}

/// A pids child: read until the parent closes the pipe's last write end.
fn wait_for_release(hold: RawFd, release: RawFd) -> ! {
    // SAFETY: close, read and _exit are async-signal-safe; `b` is writable.
    unsafe {
        libc::close(release);
        let mut b = 0u8;
        while libc::read(hold, (&mut b as *mut u8).cast(), 1) < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_within_reach_is_all_touched() {
        let m = memory(8);
        assert_eq!((m.tried_mib, m.touched_mib), (8, 8));
        assert_eq!(m.killed_by, None);
        assert_eq!(m.error, None);
    }

    #[test]
    fn a_refused_mapping_shows_its_errno() {
        // A child whose address space can grow by 16 MiB: mmap fails with ENOMEM.
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split(' ').next().unwrap().parse().unwrap();
        let room = pages * 4096 + (16 << 20);
        let child = child::spawn(|out| {
            let limit = libc::rlimit {
                rlim_cur: room,
                rlim_max: room,
            };
            // SAFETY: lowers this child's own limit.
            if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
                return 2;
            }
            let m = memory(128);
            let _ = child::send(
                out,
                serde_json::to_string(&m).unwrap_or_default().as_bytes(),
            );
            0
        })
        .unwrap();
        let r = child.wait(Duration::from_secs(60)).unwrap();
        assert_eq!(r.exit, Exit::Code(0));
        let m: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
        assert_eq!(m["error"], "ENOMEM", "{m}");
        assert!(m["touched_mib"].as_u64().unwrap() <= 16, "{m}");
        assert_eq!(m["killed_by"], serde_json::Value::Null);
    }

    #[test]
    fn children_are_started_and_all_reaped() {
        let p = pids(16);
        assert_eq!((p.tried, p.started, p.error), (16, 16, None));
    }
}
