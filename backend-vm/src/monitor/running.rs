//! What a sandbox shares with the thread running its monitor: the
//! deadline, the monitor's process, and the notice of a parked guest.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::deadline::Deadline;
use crate::notice::Notice;

/// What a sandbox shares with the thread running its monitor.
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// When the monitor must stop the guest if it has not ended.
    pub deadline: Deadline,
    /// The process running the guest once there is one (isola-vmm for
    /// isola's monitor, QEMU's for QEMU); 0 before.
    process: Arc<AtomicU32>,
    /// Set when isola-init says it is parked (see `Mark::Parked`), for a
    /// sandbox that asked it to park.
    parked: Option<Notice>,
}

impl Running {
    pub fn set_process(&self, pid: u32) {
        self.process.store(pid, Ordering::SeqCst);
    }

    pub fn process(&self) -> Option<u32> {
        Some(self.process.load(Ordering::SeqCst)).filter(|&pid| pid != 0)
    }

    /// Watch for isola-init's `Parked` mark: `notice` is set when it comes.
    pub(crate) fn watch_parked(&mut self, notice: Notice) {
        self.parked = Some(notice);
    }

    /// The guest is parked: what watches for it learns it.
    pub(crate) fn note_parked(&self) {
        if let Some(n) = &self.parked {
            n.set();
        }
    }
}
