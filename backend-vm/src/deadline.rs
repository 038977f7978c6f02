//! When a running guest must be stopped, settable from another thread: after
//! isola passes a SIGTERM on (within [`SIGNAL_GRACE`]), or at teardown (now).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a guest has to end after a SIGTERM before its monitor stops
/// it: isola-init's own 10 s before it kills the workload, and time to
/// report (on PVM, seconds).
pub const SIGNAL_GRACE: Duration = Duration::from_secs(20);

/// A time by which the VM is stopped if it has not ended, set while it
/// runs: after isola passes a signal on, a guest that cannot take it
/// (its kernel or isola-init not up yet) must not outlive it for long.
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Deadline {
    /// Stop the VM `after` from now, unless an earlier stop is set.
    pub fn arm(&self, after: Duration) {
        let at = Instant::now() + after;
        if let Ok(mut d) = self.0.lock() {
            if d.is_none_or(|old| at < old) {
                *d = Some(at);
            }
        }
    }

    /// When the VM is to be stopped, if that is set.
    pub fn get(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|d| *d)
    }

    /// Whether the time to stop has come.
    pub fn passed(&self) -> bool {
        self.get().is_some_and(|at| Instant::now() >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_stop_wins() {
        let d = Deadline::default();
        assert_eq!(d.get(), None);
        assert!(!d.passed());
        d.arm(SIGNAL_GRACE);
        let first = d.get().unwrap();
        d.arm(Duration::from_secs(60));
        assert_eq!(d.get(), Some(first));
        d.clone().arm(Duration::ZERO);
        assert!(d.passed());
    }
}
