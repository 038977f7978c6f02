//! Which signals reach the workload: one byte per signal from the host on
//! COM2 (the byte is the signal number), and those sent to PID 1 itself;
//! and, on the same channel with `-t`, the caller's new window sizes and,
//! to a parked isola-init, the go-ahead.

use isola_guest_spec::wire::{GO_AHEAD, WINDOW_SIZE};
use nix::sys::signal::{SigSet, Signal};

/// The host's byte as a signal number: 1..=64 (SIGRTMAX on x86_64); any
/// other byte is not a signal and is ignored.
pub fn from_byte(byte: u8) -> Option<libc::c_int> {
    (1..=64).contains(&byte).then_some(byte as libc::c_int)
}

/// One message of the host's on COM2.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    Signal(libc::c_int),
    WindowSize {
        rows: u16,
        cols: u16,
    },
    /// Start the workload (to a parked isola-init; dropped otherwise).
    GoAhead,
}

/// Reads the host's COM2 bytes into messages, across reads.
#[derive(Debug, Default)]
pub struct ControlParser {
    size: Option<Vec<u8>>,
}

impl ControlParser {
    pub fn feed(&mut self, byte: u8) -> Option<Control> {
        if let Some(size) = &mut self.size {
            size.push(byte);
            if size.len() < 4 {
                return None;
            }
            let s = self.size.take()?;
            return Some(Control::WindowSize {
                rows: u16::from_be_bytes([s[0], s[1]]),
                cols: u16::from_be_bytes([s[2], s[3]]),
            });
        }
        if byte == WINDOW_SIZE {
            self.size = Some(Vec::with_capacity(4));
            return None;
        }
        if byte == GO_AHEAD {
            return Some(Control::GoAhead);
        }
        from_byte(byte).map(Control::Signal)
    }
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

/// Whether `signal`'s default action ends a process: sent to a workload
/// that is not started yet (a parked isola-init), it ends the guest as it
/// would have ended the workload. The others (SIGCHLD, SIGWINCH, SIGCONT,
/// SIGURG and the stops) are dropped.
pub fn ends_by_default(signal: libc::c_int) -> bool {
    ![
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ]
    .contains(&signal)
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
    fn window_sizes_are_read_across_reads_between_signals() {
        let mut p = ControlParser::default();
        let got: Vec<Control> = [15, WINDOW_SIZE, 0, 40, 0x01]
            .into_iter()
            .chain([0x2c, 2, 255])
            .filter_map(|b| p.feed(b))
            .collect();
        assert_eq!(
            got,
            [
                Control::Signal(15),
                Control::WindowSize {
                    rows: 40,
                    cols: 300
                },
                Control::Signal(2),
            ]
        );
    }

    #[test]
    fn the_go_ahead_is_its_own_message_but_data_inside_a_window_size() {
        let mut p = ControlParser::default();
        let got: Vec<Control> = [GO_AHEAD, WINDOW_SIZE, GO_AHEAD, 1, GO_AHEAD, 2, 9, GO_AHEAD]
            .into_iter()
            .filter_map(|b| p.feed(b))
            .collect();
        assert_eq!(
            got,
            [
                Control::GoAhead,
                Control::WindowSize {
                    rows: 0xfd01,
                    cols: 0xfd02
                },
                Control::Signal(9),
                Control::GoAhead,
            ]
        );
    }

    #[test]
    fn signals_that_end_a_process_by_default_end_a_parked_guest() {
        for s in [
            libc::SIGKILL,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
        ] {
            assert!(ends_by_default(s), "{s}");
        }
        for s in [libc::SIGCHLD, libc::SIGWINCH, libc::SIGCONT, libc::SIGSTOP] {
            assert!(!ends_by_default(s), "{s}");
        }
    }

    #[test]
    fn sigchld_and_sigterm_are_handled_but_not_sigkill() {
        let set = handled();
        assert!(set.contains(Signal::SIGCHLD));
        assert!(set.contains(Signal::SIGTERM));
        assert!(!set.contains(Signal::SIGKILL));
    }
}
