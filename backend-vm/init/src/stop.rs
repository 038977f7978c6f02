//! Stopping a workload that ignores SIGTERM: as with `docker stop`, it gets
//! SIGKILL after a grace period, and at once on the third SIGINT or SIGTERM
//! (like isola's container backend), so a stuck guest never hangs isola.

use std::time::{Duration, Instant};

use crate::report;
use crate::signals;

/// How long a workload has between SIGTERM (or SIGINT) and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Stop {
    asked: u32,
    deadline: Option<Instant>,
    killed: bool,
}

impl Stop {
    /// Forward `signal`, noting a request to stop.
    pub fn forward(&mut self, workload: libc::pid_t, signal: libc::c_int) {
        signals::forward(workload, signal);
        if signal == libc::SIGTERM || signal == libc::SIGINT {
            self.asked += 1;
            self.deadline.get_or_insert_with(|| Instant::now() + GRACE);
            if self.asked >= 3 {
                self.kill(workload, "a third SIGINT or SIGTERM came");
            }
        }
    }

    /// How long poll may sleep before the grace period ends.
    pub fn timeout(&self) -> Option<Duration> {
        match (self.killed, self.deadline) {
            (false, Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            _ => None,
        }
    }

    /// Kill the workload if its grace period is over.
    pub fn check(&mut self, workload: libc::pid_t) {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.kill(
                workload,
                &format!("it did not stop within {} s of SIGTERM", GRACE.as_secs()),
            );
        }
    }

    fn kill(&mut self, workload: libc::pid_t, why: &str) {
        if !self.killed {
            self.killed = true;
            report::say(&format!("killing the workload (SIGKILL): {why}"));
            signals::forward(workload, libc::SIGKILL);
        }
    }
}
