//! The one byte the exit port carries: the workload's exit code, 128+N for
//! a signal, 137 for the guest's OOM killer (Docker's conventions).

/// How the workload ended, from its raw wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(i32),
}

impl Ended {
    /// `None` for a stop or continue report, which is not an end.
    pub fn from_wait_status(status: libc::c_int) -> Option<Ended> {
        if libc::WIFEXITED(status) {
            Some(Ended::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Ended::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The guest's OOM killer, not someone's `kill -9`: SIGKILL while the
    /// kernel's oom_kill count went up.
    pub fn is_oom_kill(self, oom_kills_before: u64, oom_kills_after: u64) -> bool {
        self == Ended::Signaled(libc::SIGKILL) && oom_kills_after > oom_kills_before
    }

    /// The status byte; an OOM kill is SIGKILL's 137 too, told apart by the
    /// message isola-init prints.
    pub fn code(self) -> u8 {
        match self {
            // The kernel keeps only the low 8 bits of an exit code anyway.
            Ended::Exited(code) => (code & 0xff) as u8,
            Ended::Signaled(signal) => 128u8.saturating_add((signal & 0x7f) as u8),
        }
    }
}

/// The `oom_kill` counter of /proc/vmstat, 0 if it cannot be read (a
/// kernel without it reports no OOM kill rather than a failure).
pub fn oom_kills() -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .map(|s| parse_oom_kills(&s))
        .unwrap_or(0)
}

fn parse_oom_kills(vmstat: &str) -> u64 {
    vmstat
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals_encode_as_docker_does() {
        assert_eq!(Ended::Exited(0).code(), 0);
        assert_eq!(Ended::Exited(42).code(), 42);
        assert_eq!(Ended::Exited(255).code(), 255);
        assert_eq!(Ended::Signaled(libc::SIGKILL).code(), 137);
        assert_eq!(Ended::Signaled(libc::SIGTERM).code(), 143);
        assert_eq!(Ended::Signaled(64).code(), 192);
    }

    #[test]
    fn raw_wait_statuses_decode() {
        // Linux's encoding: exit code in bits 8-15; signal in bits 0-6.
        assert_eq!(Ended::from_wait_status(42 << 8), Some(Ended::Exited(42)));
        assert_eq!(Ended::from_wait_status(9), Some(Ended::Signaled(9)));
        // SIGSEGV with a core dump.
        assert_eq!(
            Ended::from_wait_status(11 | 0x80),
            Some(Ended::Signaled(11))
        );
        // A real-time signal, which nix's Signal enum cannot name.
        assert_eq!(Ended::from_wait_status(34), Some(Ended::Signaled(34)));
        // Stopped by SIGSTOP, continued.
        assert_eq!(Ended::from_wait_status((19 << 8) | 0x7f), None);
        assert_eq!(Ended::from_wait_status(0xffff), None);
    }

    #[test]
    fn only_a_sigkill_with_a_new_oom_kill_is_oom() {
        assert!(Ended::Signaled(9).is_oom_kill(3, 4));
        assert!(!Ended::Signaled(9).is_oom_kill(4, 4));
        assert!(!Ended::Signaled(15).is_oom_kill(3, 4));
        assert!(!Ended::Exited(137).is_oom_kill(3, 4));
    }

    #[test]
    fn vmstat_counter_parses() {
        assert_eq!(parse_oom_kills("pgfault 10\noom_kill 3\nnuma_hit 1\n"), 3);
        assert_eq!(parse_oom_kills("pgfault 10\n"), 0);
    }
}
