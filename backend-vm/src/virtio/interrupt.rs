//! A virtio-mmio device's interrupt: the InterruptStatus bits the driver
//! reads and acknowledges, and the eventfd KVM turns into the IRQ line.

use std::sync::atomic::{AtomicU32, Ordering};

use vmm_sys_util::eventfd::EventFd;

/// Buffers were used (VIRTIO_MMIO_INT_VRING).
pub const USED_BUFFER: u32 = 1;
/// The configuration space changed (VIRTIO_MMIO_INT_CONFIG).
pub const CONFIG_CHANGE: u32 = 2;

pub struct Interrupt {
    status: AtomicU32,
    trigger: EventFd,
}

impl Interrupt {
    /// `trigger` is registered as an irqfd by the monitor (any eventfd will
    /// do in tests).
    pub fn new(trigger: EventFd) -> Interrupt {
        Interrupt {
            status: AtomicU32::new(0),
            trigger,
        }
    }

    /// Set `bits` in the status and raise the line.
    pub fn raise(&self, bits: u32) {
        self.status.fetch_or(bits, Ordering::SeqCst);
        if let Err(e) = self.trigger.write(1) {
            // Only a full counter (2^64 - 1 raises unread) fails: the line
            // is raised already.
            tracing::debug!("virtio interrupt: {e}");
        }
    }

    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }

    pub fn trigger(&self) -> &EventFd {
        &self.trigger
    }
}
