//! A device and its queues as the device thread serves them, behind a lock
//! of their own: a vCPU reading the interrupt or device status never waits
//! for a device's I/O (a flush may take tens of milliseconds).

use std::os::fd::RawFd;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::interrupt::{Interrupt, USED_BUFFER};
use super::VirtioDevice;

pub struct Served {
    device: Box<dyn VirtioDevice>,
    pub(super) queues: Vec<Queue>,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    /// DRIVER_OK was accepted with every ready queue inside guest memory.
    active: bool,
}

impl Served {
    pub(super) fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
    ) -> Served {
        let queues = device
            .queue_max_sizes()
            .iter()
            // A size the crate refuses (not a power of two) becomes a
            // queue the driver sees as absent: QueueNumMax 0.
            .filter_map(|&max| Queue::new(max).ok())
            .collect();
        Served {
            device,
            queues,
            mem,
            interrupt,
            active: false,
        }
    }

    /// Serve queue `index`: for an ioeventfd, or a QueueNotify that reached
    /// the monitor as an MMIO exit.
    pub fn notify(&mut self, index: u32) {
        if !self.active {
            return;
        }
        let Ok(index) = usize::try_from(index) else {
            return;
        };
        if !self.queues.get(index).is_some_and(QueueT::ready) {
            return;
        }
        if self
            .device
            .process_queue(index, &mut self.queues, &self.mem)
        {
            self.interrupt.raise(USED_BUFFER);
        }
    }

    /// The device's host-side descriptor, for the device thread.
    pub fn host_fd(&self) -> Option<RawFd> {
        self.device.host_fd()
    }

    /// The device's host side is ready: the queues are its only once the
    /// driver made the device live.
    pub fn host_event(&mut self) {
        let queues: &mut [Queue] = if self.active {
            &mut self.queues
        } else {
            &mut []
        };
        if self.device.host_event(queues, &self.mem) {
            self.interrupt.raise(USED_BUFFER);
        }
    }

    pub(super) fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.device.read_config(offset, data);
    }

    /// DRIVER_OK: live if every ready queue lies in guest memory.
    pub(super) fn activate(&mut self) -> bool {
        self.active = self
            .queues
            .iter()
            .filter(|q| q.ready())
            .all(|q| q.is_valid(&self.mem));
        self.active
    }

    pub(super) fn reset(&mut self) {
        self.active = false;
        for q in &mut self.queues {
            q.reset();
        }
        self.device.reset();
    }
}
