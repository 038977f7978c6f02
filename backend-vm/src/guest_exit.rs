//! How a guest's run ended, on either monitor: with what it wrote to the
//! exit port ([`GuestExit`]), or without an exit status ([`GuestFailed`]:
//! it crashed, or was stopped).

use std::fmt;
use std::time::Duration;

use isola_guest_spec::ports::Mark;

/// A guest that ended, and what was seen on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExit {
    /// What it wrote to the exit port; `None` when it reset the machine
    /// instead (the i8042 reset line: Linux with `reboot=k`, which with
    /// `panic=-1` is also how a kernel panic ends).
    pub status: Option<u8>,
    /// The bytes written to the boot timer (isola-init writes a [`Mark`]),
    /// each with its time since the monitor started; on QEMU, which has no
    /// boot timer, when isola-init's records came.
    pub marks: Vec<(u8, Duration)>,
    /// The guest's last console lines, when isola-init never said it runs
    /// (the kernel's log is held back until it does; see `console_tail`).
    pub console: Option<String>,
}

impl GuestExit {
    /// When `mark` came (since the monitor started), if it did.
    pub fn mark(&self, mark: Mark) -> Option<Duration> {
        self.marks
            .iter()
            .find(|(byte, _)| *byte == mark.byte())
            .map(|(_, at)| *at)
    }
}

/// A guest that ended without an exit status, or was stopped: "the guest"
/// and what it did, then its last console lines if its kernel never got
/// as far as isola-init (they say why).
#[derive(Debug)]
pub struct GuestFailed {
    pub what: Failure,
    pub console: Option<String>,
}

impl GuestFailed {
    pub fn new(what: Failure) -> GuestFailed {
        GuestFailed {
            what,
            console: None,
        }
    }
}

/// What a guest did instead of reporting an exit status (sent by the
/// monitor process to isola, hence serde).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Failure {
    /// It reset the machine before isola-init wrote a status.
    Reset,
    /// QEMU ended without the exit port written.
    NoStatus,
    Halted,
    TripleFault,
    /// KVM_EXIT_INTERNAL_ERROR.
    Unemulated {
        suberror: u32,
    },
    FailEntry {
        reason: u64,
    },
    SystemEvent {
        kind: u32,
    },
    /// A vCPU exit isola's monitor has no handler for.
    UnhandledExit(String),
    /// It ran past the monitor's fixed time limit.
    Timeout(Duration),
    /// It did not end within this long of a SIGTERM isola passed on.
    Unresponsive(Duration),
}

impl Failure {
    /// Whether the monitor stopped the guest (rather than the guest
    /// failing): its console would show only an unfinished boot.
    pub fn stopped(&self) -> bool {
        matches!(self, Failure::Timeout(_) | Failure::Unresponsive(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Reset => f.write_str(
                "reset itself before isola-init reported an exit status (with panic=-1, a kernel panic does that)",
            ),
            Failure::NoStatus => f.write_str(
                "stopped without reporting an exit status (a kernel panic, or isola-init never ran): `isola -v run ...` shows the kernel's whole log",
            ),
            Failure::Halted => f.write_str("halted with interrupts off"),
            Failure::TripleFault => f.write_str(
                "triple-faulted (KVM_EXIT_SHUTDOWN): it crashed before it could handle its own exceptions",
            ),
            Failure::Unemulated { suberror } => write!(
                f,
                "stopped on an instruction KVM could not emulate (KVM_EXIT_INTERNAL_ERROR, suberror {suberror}); on a PVM host this is expected for an unmodified Linux kernel"
            ),
            Failure::FailEntry { reason } => write!(
                f,
                "could not be entered (KVM_EXIT_FAIL_ENTRY, reason {reason:#x})"
            ),
            Failure::SystemEvent { kind } => write!(f, "raised system event {kind}"),
            Failure::UnhandledExit(exit) => {
                write!(f, "made an exit isola does not handle: {exit}")
            }
            Failure::Timeout(after) => {
                write!(f, "did not finish within {after:?}; it was stopped")
            }
            Failure::Unresponsive(after) => write!(
                f,
                "did not end within {after:?} of the signal isola passed on (its kernel or isola-init was not up to take it); it was stopped"
            ),
        }
    }
}

impl fmt::Display for GuestFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the guest {}", self.what)?;
        if let Some(lines) = &self.console {
            write!(f, "; the guest's last console lines:\n{lines}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GuestFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sentence_then_the_console_lines() {
        let failed = GuestFailed::new(Failure::Halted);
        assert_eq!(failed.to_string(), "the guest halted with interrupts off");
        let failed = GuestFailed {
            what: Failure::Reset,
            console: Some("  Kernel panic - not syncing".into()),
        };
        assert_eq!(
            failed.to_string(),
            "the guest reset itself before isola-init reported an exit status (with panic=-1, \
             a kernel panic does that); the guest's last console lines:\n  Kernel panic - not syncing"
        );
        assert!(Failure::Timeout(Duration::from_secs(1)).stopped());
        assert!(!Failure::NoStatus.stopped());
    }

    #[test]
    fn marks_are_found_by_their_byte() {
        let exit = GuestExit {
            status: Some(0),
            marks: vec![(1, Duration::from_millis(5)), (2, Duration::from_millis(9))],
            console: None,
        };
        assert_eq!(
            exit.mark(Mark::WorkloadStarted),
            Some(Duration::from_millis(9))
        );
        assert_eq!(
            GuestExit {
                marks: vec![],
                ..exit
            }
            .mark(Mark::InitUp),
            None
        );
    }
}
