//! A syscall outside a thread's filter traps (SIGSYS): the handler writes
//! one record naming the thread's kind and the syscall to the monitor's
//! report pipe, then the process dies of SIGSYS, so that isola can say
//! which thread broke its filter and not only that the monitor died.

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, Ordering};

use super::ThreadKind;

/// The report pipe's write end (-1: none).
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

thread_local! {
    /// This thread's kind, as its index in `ThreadKind::ALL` (none: 255).
    static KIND: Cell<u8> = const { Cell::new(u8::MAX) };
}

/// The syscall the handler traps on a second time, with SIGSYS back at
/// its default action, so that the process dies of it: one no filter
/// allows (and a harmless one where none is installed).
const NEVER_ALLOWED: libc::c_long = libc::SYS_reboot;

/// Install the handler; `report_fd` stays open for the process's life.
pub fn install(report_fd: i32) -> std::io::Result<()> {
    REPORT_FD.store(report_fd, Ordering::SeqCst);
    // SAFETY: a sigaction with a handler that only writes to a pipe and
    // makes a syscall, both async-signal-safe.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        // Not one-shot (SA_RESETHAND): two threads of one kind (the device
        // threads) may trap at once, and the second, finding SIGSYS back at
        // its default, would end the process before the first's record is
        // written. Each trapping thread writes its record; the trap the
        // handler makes then, with SIGSYS blocked in it, is forced through
        // at the default action, which ends the process.
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn set_thread_kind(kind: ThreadKind) {
    let index = ThreadKind::ALL.iter().position(|k| *k == kind);
    KIND.with(|k| k.set(index.map_or(u8::MAX, |i| i as u8)));
}

/// The test hook: a syscall no thread's filter allows.
pub(super) fn forbidden_syscall() {
    // SAFETY: reboot(0, 0, 0, 0) has no effect even where it is allowed:
    // the magic numbers are wrong and the monitor has no CAP_SYS_BOOT.
    unsafe { libc::syscall(NEVER_ALLOWED, 0, 0, 0, 0) };
}

/// A thread that could not take its filter: say so and end the process.
pub(super) fn abort_unconfined(kind: ThreadKind, error: &seccompiler::Error) -> ! {
    let line = format!(
        "error the monitor's {} thread could not take its seccomp filter: {error}\n",
        kind.name()
    );
    write_record(line.as_bytes());
    std::process::exit(125);
}

/// One report record, written whole (a pipe write under PIPE_BUF is).
pub(crate) fn write_record(bytes: &[u8]) {
    let fd = REPORT_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write from a live buffer; async-signal-safe.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    }
}

/// Where Linux's x86-64 siginfo keeps a SIGSYS's syscall number
/// (`_sigsys._syscall`, after the three ints and the call address).
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a full siginfo for an SA_SIGINFO handler;
    // for SIGSYS the int at this offset is the trapped syscall's number.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read_unaligned()
    };
    let kind = KIND.with(Cell::get);
    let name = ThreadKind::ALL
        .get(usize::from(kind))
        .map_or("unknown", |k| k.name());
    // "sigsys <kind> <nr>\n", formatted without allocating.
    let mut buf = [0u8; 48];
    let mut len = 0;
    for part in [b"sigsys ".as_slice(), name.as_bytes(), b" "] {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    let mut digits = [0u8; 12];
    let mut n = nr.unsigned_abs();
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &digits[d..];
    buf[len..len + digits.len()].copy_from_slice(digits);
    len += digits.len();
    buf[len] = b'\n';
    len += 1;
    write_record(&buf[..len]);
    // SIGSYS is blocked in here: the kernel forces this trap's SIGSYS
    // through at its default action, and the process dies of it.
    // SAFETY: reboot with wrong magic numbers does nothing if it runs.
    unsafe { libc::syscall(NEVER_ALLOWED, 0, 0, 0, 0) };
}
