//! Which signals reach the workload: one byte per signal from the host on
//! COM2 (the byte is the signal number), and those sent to PID 1 itself.

use nix::sys::signal::{SigSet, Signal};

/// The host's byte as a signal number: 1..=64 (SIGRTMAX on x86_64); any
/// other byte is not a signal and is ignored.
pub fn from_byte(byte: u8) -> Option<libc::c_int> {
    (1..=64).contains(&byte).then_some(byte as libc::c_int)
}

/// Signals PID 1 takes from the kernel or from processes in the guest
/// (`kill 1`, Ctrl-Alt-Del's SIGINT) and passes on, as tini does.
pub const PASSED_ON: [Signal; 7] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// What PID 1 blocks and reads through a signalfd: the above and SIGCHLD.
pub fn handled() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in PASSED_ON {
        set.add(s);
    }
    set
}

/// Sends `signal` to the workload's process group (it is a session leader,
/// so its pid is its group). A group already gone is not an error: the
/// end of the workload is being reported anyway.
pub fn forward(workload: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes no pointers.
    unsafe { libc::kill(-workload, signal) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_map_to_signal_numbers() {
        assert_eq!(from_byte(0), None);
        assert_eq!(from_byte(1), Some(libc::SIGHUP));
        assert_eq!(from_byte(9), Some(libc::SIGKILL));
        assert_eq!(from_byte(15), Some(libc::SIGTERM));
        // Bytes a terminal would eat (^C, ^Q, ^S, CR) are plain signals here.
        assert_eq!(from_byte(3), Some(libc::SIGQUIT));
        assert_eq!(from_byte(13), Some(libc::SIGPIPE));
        assert_eq!(from_byte(17), Some(libc::SIGCHLD));
        assert_eq!(from_byte(19), Some(libc::SIGSTOP));
        assert_eq!(from_byte(64), Some(64));
        assert_eq!(from_byte(65), None);
        assert_eq!(from_byte(b'\n'), Some(10));
        assert_eq!(from_byte(255), None);
    }

    #[test]
    fn sigchld_and_sigterm_are_handled_but_not_sigkill() {
        let set = handled();
        assert!(set.contains(Signal::SIGCHLD));
        assert!(set.contains(Signal::SIGTERM));
        assert!(!set.contains(Signal::SIGKILL));
    }
}
