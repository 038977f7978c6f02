//! The system call surface: which x86_64 system call numbers reach the kernel
//! from this process and which a seccomp filter it is under turns away, found
//! without running the body of any of them.
//!
//! A child stacks a filter of its own that hands each call carrying COOKIE
//! as its sixth argument to a supervisor (SECCOMP_RET_USER_NOTIF), which
//! answers ANSWER without running it. Stacked filters combine by precedence
//! (KILL, TRAP, ERRNO, then USER_NOTIF, then TRACE, LOG, ALLOW), so ANSWER
//! comes back exactly when every filter above allowed the call; anything else
//! is their refusal. Every other argument is -1, so a call a filter allows
//! only for some arguments (`clone` without namespace flags, `personality`)
//! counts as blocked; and a filter above that itself notifies a supervisor
//! is outranked by ours, so its calls count as reached.

use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;

use crate::child::{self, Exit};
use crate::errno;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Surface {
    pub tested: usize,
    pub reached: usize,
    pub blocked: usize,
    pub blocked_nrs: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Forking or waiting for a scanning child.
    #[error("running the scan's child")]
    Child(#[source] io::Error),
    /// The child could not stack its filter; the child's own words (they
    /// crossed from the child as text).
    #[error("stacking the scan's filter: {0}")]
    Setup(String),
    /// The child ended before its filter was in place.
    #[error("the scan ended before its filter was in place ({0:?})")]
    Died(Exit),
    /// No answer within LIMIT before the first number was tried.
    #[error("the scan did not start within {LIMIT:?}")]
    NotStarted,
    /// No answer within LIMIT at this number.
    #[error("no answer within {LIMIT:?} at system call {0}")]
    Hung(u32),
    /// The child left the scan at this number other than by being killed.
    #[error("the scan ended at system call {1} ({0:?})")]
    Ended(Exit, u32),
}

/// Why the scanning thread could not put its filter in place; sent to the
/// parent as text, as [`ScanError::Setup`].
#[derive(Debug, thiserror::Error)]
enum FilterError {
    #[error("prctl(PR_SET_NO_NEW_PRIVS): {}", errno_name(.0))]
    NoNewPrivs(#[source] io::Error),
    // EBUSY: a filter above has a listener already, and one is allowed.
    #[error("seccomp(NEW_LISTENER): {}", errno_name(.0))]
    Listener(#[source] io::Error),
}

fn errno_name(e: &io::Error) -> String {
    errno::name(e.raw_os_error().unwrap_or(0))
}

/// In a sixth argument, marks the calls our filter hands to the supervisor;
/// 64 bits, so that no other call carries it by chance.
const COOKIE: u64 = 0x5eed_1503_c0ff_ee42;
/// What the supervisor makes a call return: not an error, and not a value
/// an allowed call's refusal could take.
const ANSWER: libc::c_long = 0x1503_1ab0;
/// A child that hangs this long is killed and the scan fails.
const LIMIT: Duration = Duration::from_secs(5);
/// The supervisor's exit status when the scanning thread vanished: a filter
/// above killed the thread alone (SECCOMP_RET_KILL_THREAD).
const THREAD_KILLED: i32 = 86;

// The ioctl numbers are the kernel's _IOWR('!', 0 and 1, ...): these sizes.
const _: () = assert!(std::mem::size_of::<libc::seccomp_notif>() == 80);
const _: () = assert!(std::mem::size_of::<libc::seccomp_notif_resp>() == 24);
const _: () = assert!(libc::SECCOMP_IOCTL_NOTIF_RECV == 0xc050_2100);
const _: () = assert!(libc::SECCOMP_IOCTL_NOTIF_SEND == 0xc018_2101);

/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// The numbers of x86_64's table (arch/x86/entry/syscalls/syscall_64.tbl):
/// 0..=334, then the numbers all architectures share from 424 on, up to
/// `mseal` (462). 335..=423 are unused on x86_64.
pub fn tested() -> Vec<u32> {
    (0..=334).chain(424..=462).collect()
}

pub fn scan() -> Result<Surface, ScanError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(ScanError::Setup("the table scanned is x86_64's".into()));
    }
    scan_numbers(&tested())
}

/// A child scans `nrs` in order; when a filter above kills it, the number
/// it was trying is blocked and a new child goes on after it. The child
/// writes `!` once its filter is in place, then `+` (reached) or `-`
/// (blocked) for each number; or `E` and why it could not stack the filter.
fn scan_numbers(nrs: &[u32]) -> Result<Surface, ScanError> {
    let mut blocked_nrs = Vec::new();
    let mut reached = 0;
    let mut rest = nrs;
    while !rest.is_empty() {
        let todo = rest;
        let child = child::spawn(|out| scan_child(out, todo)).map_err(ScanError::Child)?;
        let report = child.wait(LIMIT).map_err(ScanError::Child)?;
        let results = match report.bytes.split_first() {
            Some((b'!', results)) => results,
            Some((b'E', msg)) => {
                return Err(ScanError::Setup(String::from_utf8_lossy(msg).into_owned()))
            }
            _ if report.timed_out => return Err(ScanError::NotStarted),
            _ => return Err(ScanError::Died(report.exit)),
        };
        let done = results.len().min(todo.len());
        for (nr, result) in todo.iter().zip(results) {
            if *result == b'+' {
                reached += 1;
            } else {
                blocked_nrs.push(*nr);
            }
        }
        if done == todo.len() {
            break;
        }
        let at = todo[done];
        if report.timed_out {
            return Err(ScanError::Hung(at));
        }
        match report.exit {
            Exit::Signal(_) | Exit::Code(THREAD_KILLED) => {
                blocked_nrs.push(at);
                rest = &todo[done + 1..];
            }
            exit => return Err(ScanError::Ended(exit, at)),
        }
    }
    Ok(Surface {
        tested: nrs.len(),
        reached,
        blocked: blocked_nrs.len(),
        blocked_nrs,
    })
}

/// The child: a second thread stacks the filter and makes the calls while
/// this one, under no filter of ours, supervises. The scanning thread is not
/// the leader so that, killed alone, it releases the filter at once and the
/// listener reports the hang-up; a dead leader lingers until the whole
/// process ends.
fn scan_child(out: RawFd, nrs: &[u32]) -> i32 {
    // Killed by a filter's KILL or TRAP, the child must not dump core.
    // SAFETY: prctl with these arguments only changes a flag of this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let (tx, rx) = mpsc::sync_channel(1);
    let nrs = nrs.to_vec();
    if let Err(e) = std::thread::Builder::new().spawn(move || scan_thread(out, &nrs, tx)) {
        let _ = child::send(out, format!("Ethread: {e}").as_bytes());
        return 1;
    }
    match rx.recv() {
        Ok(Ok(listener)) => supervise(listener),
        Ok(Err(msg)) => {
            let _ = child::send(out, format!("E{msg}").as_bytes());
            1
        }
        Err(_) => {
            let _ = child::send(out, b"Ethe scanning thread ended before its filter");
            1
        }
    }
}

fn scan_thread(out: RawFd, nrs: &[u32], tx: mpsc::SyncSender<Result<RawFd, FilterError>>) {
    const NONE: libc::c_long = -1;
    let listener = match stack_filter() {
        Ok(fd) => fd,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    if tx.send(Ok(listener)).is_err() {
        return;
    }
    // From here COOKIE may linger in r9, the register of a sixth argument,
    // and libc's wrappers leave it as they find it: every call but the
    // tested ones is made raw, all six arguments set.
    raw(
        libc::SYS_write,
        out as libc::c_long,
        b"!".as_ptr() as libc::c_long,
        1,
    );
    for &nr in nrs {
        // SAFETY: whatever `nr` is, its body does not run: a filter above
        // refuses it, or ours hands it to the supervisor, which answers.
        let r = unsafe { libc::syscall(nr as libc::c_long, NONE, NONE, NONE, NONE, NONE, COOKIE) };
        let result: &[u8; 1] = if r == ANSWER { b"+" } else { b"-" };
        raw(
            libc::SYS_write,
            out as libc::c_long,
            result.as_ptr() as libc::c_long,
            1,
        );
    }
    raw(libc::SYS_exit_group, 0, 0, 0);
}

/// A system call with its last three arguments zero.
fn raw(nr: libc::c_long, a: libc::c_long, b: libc::c_long, c: libc::c_long) {
    // SAFETY: the callers pass write(2) a buffer valid for its length, or
    // exit_group(2), which needs nothing.
    unsafe { libc::syscall(nr, a, b, c, 0, 0, 0) };
}

/// no_new_privs, then our filter on this thread; the listener's descriptor.
fn stack_filter() -> Result<RawFd, FilterError> {
    // SAFETY: prctl with these arguments only sets a flag of this thread.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(FilterError::NoNewPrivs(io::Error::last_os_error()));
    }
    let filter = filter();
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filter`, both alive across the call; the
    // kernel copies the program.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(FilterError::Listener(io::Error::last_os_error()));
    }
    Ok(fd as RawFd)
}

/// x86_64 calls whose sixth argument is COOKIE go to the supervisor; the
/// rest, and other architectures' calls, are ours to allow.
fn filter() -> [libc::sock_filter; 8] {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    // In `struct seccomp_data { int nr; __u32 arch; __u64 ip; __u64 args[6]; }`,
    // little-endian.
    const ARCH: u32 = 4;
    const ARG5_LOW: u32 = 16 + 5 * 8;
    const ARG5_HIGH: u32 = ARG5_LOW + 4;
    let op = |code, jf, k| libc::sock_filter { code, jt: 0, jf, k };
    [
        op(LD_W_ABS, 0, ARCH),
        op(JEQ_K, 5, AUDIT_ARCH_X86_64),
        op(LD_W_ABS, 0, ARG5_LOW),
        op(JEQ_K, 3, COOKIE as u32),
        op(LD_W_ABS, 0, ARG5_HIGH),
        op(JEQ_K, 1, (COOKIE >> 32) as u32),
        op(RET_K, 0, libc::SECCOMP_RET_USER_NOTIF),
        op(RET_K, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Answer every notification ANSWER, until the scanning thread is gone.
fn supervise(listener: RawFd) -> i32 {
    loop {
        let mut pfd = libc::pollfd {
            fd: listener,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return 3;
        }
        if pfd.revents & libc::POLLIN != 0 {
            // The kernel wants the request zeroed.
            // SAFETY: seccomp_notif is plain old data.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: `req` is a writable seccomp_notif, the size the ioctl number says.
            if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
                // ENOENT: the caller went away before we read it.
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENOENT | libc::EINTR) => continue,
                    _ => return 3,
                }
            }
            let resp = libc::seccomp_notif_resp {
                id: req.id,
                val: ANSWER,
                error: 0,
                flags: 0,
            };
            // An error here means the caller went away: nothing to answer.
            // SAFETY: `resp` is a seccomp_notif_resp, the size the ioctl number says.
            unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
        } else if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return THREAD_KILLED;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn under_a_filter() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| crate::status::field(&s, "Seccomp").map(|v| v != "0"))
            .unwrap_or(true)
    }

    /// Scan in a child that first stacks a filter doing `actions`.
    fn scan_under(actions: &[(libc::c_long, u32)]) -> serde_json::Value {
        let actions = actions.to_vec();
        let child = child::spawn(move |out| {
            const LD_NR: u16 = 0x20;
            const JEQ_K: u16 = 0x15;
            const RET_K: u16 = 0x06;
            let mut prog = vec![libc::sock_filter {
                code: LD_NR,
                jt: 0,
                jf: 0,
                k: 0,
            }];
            for (nr, action) in &actions {
                prog.push(libc::sock_filter {
                    code: JEQ_K,
                    jt: 0,
                    jf: 1,
                    k: *nr as u32,
                });
                prog.push(libc::sock_filter {
                    code: RET_K,
                    jt: 0,
                    jf: 0,
                    k: *action,
                });
            }
            prog.push(libc::sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ALLOW,
            });
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_mut_ptr(),
            };
            // SAFETY: a flag, then a filter copied by the kernel, on this test child.
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) != 0
                {
                    return 2;
                }
            }
            let json = match scan() {
                Ok(s) => serde_json::to_string(&s),
                Err(e) => serde_json::to_string(&e.to_string()),
            };
            match json.map(|j| child::send(out, j.as_bytes())) {
                Ok(Ok(())) => 0,
                _ => 1,
            }
        })
        .unwrap();
        let r = child.wait(Duration::from_secs(60)).unwrap();
        assert_eq!(
            r.exit,
            Exit::Code(0),
            "{}",
            String::from_utf8_lossy(&r.bytes)
        );
        serde_json::from_slice(&r.bytes).unwrap()
    }

    #[test]
    fn the_table_has_its_two_runs() {
        let t = tested();
        assert_eq!(t.len(), 335 + 39);
        assert!(t.contains(&250) && t.contains(&424) && !t.contains(&335));
    }

    #[test]
    fn with_no_filter_every_number_reaches_the_kernel() {
        if under_a_filter() {
            eprintln!("SKIPPED: these tests run under a seccomp filter");
            return;
        }
        let s = scan().unwrap();
        assert_eq!(s.tested, tested().len());
        assert_eq!(s.reached, s.tested, "blocked: {:?}", s.blocked_nrs);
        assert_eq!(s.blocked, 0);
    }

    #[test]
    fn numbers_a_filter_refuses_are_blocked_and_the_rest_reach() {
        let before = match scan() {
            Ok(s) => s.blocked_nrs,
            Err(e) => panic!("{e}"),
        };
        let s = scan_under(&[
            (
                libc::SYS_getppid,
                libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            ),
            (
                libc::SYS_uname,
                libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            ),
        ]);
        let mut want = before.clone();
        want.extend([libc::SYS_uname as u32, libc::SYS_getppid as u32]);
        want.sort();
        want.dedup();
        assert_eq!(s["blocked_nrs"], serde_json::json!(want), "{s}");
        assert_eq!(s["reached"], tested().len() - want.len());
    }

    #[test]
    fn numbers_that_kill_the_scan_are_blocked_and_the_scan_goes_on() {
        let before = match scan() {
            Ok(s) => s.blocked_nrs,
            Err(e) => panic!("{e}"),
        };
        let s = scan_under(&[
            (libc::SYS_keyctl, libc::SECCOMP_RET_KILL_PROCESS),
            (libc::SYS_acct, libc::SECCOMP_RET_TRAP),
            (libc::SYS_sysfs, libc::SECCOMP_RET_KILL_THREAD),
        ]);
        let mut want = before.clone();
        want.extend([
            libc::SYS_sysfs as u32,
            libc::SYS_acct as u32,
            libc::SYS_keyctl as u32,
        ]);
        want.sort();
        want.dedup();
        assert_eq!(s["blocked_nrs"], serde_json::json!(want), "{s}");
        assert_eq!(s["tested"], tested().len());
        assert_eq!(s["reached"], tested().len() - want.len());
    }
}
