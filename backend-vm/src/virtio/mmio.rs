//! The virtio-mmio transport, version 2 (virtio 1.x, no legacy): the
//! register file a driver programs — feature negotiation, queue set-up,
//! device status, interrupt status and acknowledgement — in front of the
//! device's own configuration space at offset 0x100.

use std::sync::Arc;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::interrupt::{Interrupt, CONFIG_CHANGE, USED_BUFFER};
use super::VirtioDevice;

/// The size of one device's register window.
pub const MMIO_SIZE: u64 = 0x1000;
/// The offset of QueueNotify, where the monitor puts its ioeventfds.
pub const QUEUE_NOTIFY: u64 = reg::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0;
const CONFIG: u64 = reg::VIRTIO_MMIO_CONFIG as u64;
/// SHMLen's answer when there is no shared memory region (all ones).
const NO_SHM: u32 = u32::MAX;

pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    mem: GuestMemoryMmap,
    interrupt: Arc<Interrupt>,
    status: u32,
    /// DRIVER_OK was accepted with every ready queue inside guest memory.
    active: bool,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
}

impl MmioTransport {
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
    ) -> MmioTransport {
        let queues = device
            .queue_max_sizes()
            .iter()
            // A size the crate refuses (not a power of two) becomes a
            // queue the driver sees as absent: QueueNumMax 0.
            .filter_map(|&max| Queue::new(max).ok())
            .collect();
        MmioTransport {
            device,
            queues,
            mem,
            interrupt,
            status: 0,
            active: false,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
        }
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    /// A read of `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG {
            self.device.read_config(offset - CONFIG, data);
            return;
        }
        // Registers are 32 bits wide and read whole (virtio 1.2, 4.2.2.2).
        let value = if data.len() == 4 && offset.is_multiple_of(4) {
            self.register(offset)
        } else {
            0
        };
        let bytes = value.to_le_bytes();
        let n = data.len().min(4);
        data.fill(0);
        data[..n].copy_from_slice(&bytes[..n]);
    }

    fn register(&self, offset: u64) -> u32 {
        let Ok(offset) = u32::try_from(offset) else {
            return 0;
        };
        match offset {
            reg::VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            reg::VIRTIO_MMIO_VERSION => VERSION,
            reg::VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            reg::VIRTIO_MMIO_VENDOR_ID => VENDOR,
            reg::VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device.features() as u32,
                1 => (self.device.features() >> 32) as u32,
                _ => 0,
            },
            reg::VIRTIO_MMIO_QUEUE_NUM_MAX => self.queue().map_or(0, |q| u32::from(q.max_size())),
            reg::VIRTIO_MMIO_QUEUE_READY => self.queue().map_or(0, |q| u32::from(q.ready())),
            reg::VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            reg::VIRTIO_MMIO_STATUS => self.status,
            reg::VIRTIO_MMIO_QUEUE_DESC_LOW => self.queue().map_or(0, |q| q.desc_table() as u32),
            reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => {
                self.queue().map_or(0, |q| (q.desc_table() >> 32) as u32)
            }
            reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => self.queue().map_or(0, |q| q.avail_ring() as u32),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => {
                self.queue().map_or(0, |q| (q.avail_ring() >> 32) as u32)
            }
            reg::VIRTIO_MMIO_QUEUE_USED_LOW => self.queue().map_or(0, |q| q.used_ring() as u32),
            reg::VIRTIO_MMIO_QUEUE_USED_HIGH => {
                self.queue().map_or(0, |q| (q.used_ring() >> 32) as u32)
            }
            reg::VIRTIO_MMIO_SHM_LEN_LOW | reg::VIRTIO_MMIO_SHM_LEN_HIGH => NO_SHM,
            // The configuration space never changes under the driver.
            reg::VIRTIO_MMIO_CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    /// A write of `data` at `offset` in the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG {
            // No device here has a writable configuration field.
            return;
        }
        let Ok(value) = <[u8; 4]>::try_from(data).map(u32::from_le_bytes) else {
            tracing::debug!(
                offset,
                len = data.len(),
                "virtio-mmio: write of a width other than 32 bits ignored"
            );
            return;
        };
        let Ok(offset) = u32::try_from(offset) else {
            return;
        };
        match offset {
            reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::VIRTIO_MMIO_DRIVER_FEATURES => self.set_driver_features(value),
            reg::VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = value,
            reg::VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(value),
            reg::VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(value),
            reg::VIRTIO_MMIO_STATUS => self.set_status(value),
            reg::VIRTIO_MMIO_QUEUE_NUM => {
                if let (Some(q), Ok(size)) = (self.queue_to_set_up(), u16::try_from(value)) {
                    q.set_size(size);
                }
            }
            reg::VIRTIO_MMIO_QUEUE_READY => {
                if let Some(q) = self.queue_to_set_up() {
                    q.set_ready(value == 1);
                }
            }
            reg::VIRTIO_MMIO_QUEUE_DESC_LOW => {
                self.set_up(|q| q.set_desc_table_address(Some(value), None))
            }
            reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => {
                self.set_up(|q| q.set_desc_table_address(None, Some(value)))
            }
            reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => {
                self.set_up(|q| q.set_avail_ring_address(Some(value), None))
            }
            reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => {
                self.set_up(|q| q.set_avail_ring_address(None, Some(value)))
            }
            reg::VIRTIO_MMIO_QUEUE_USED_LOW => {
                self.set_up(|q| q.set_used_ring_address(Some(value), None))
            }
            reg::VIRTIO_MMIO_QUEUE_USED_HIGH => {
                self.set_up(|q| q.set_used_ring_address(None, Some(value)))
            }
            _ => tracing::debug!(
                offset,
                "virtio-mmio: write to a read-only or unknown register ignored"
            ),
        }
    }

    /// Serve queue `index`: called by the event loop for an ioeventfd, or
    /// here for a QueueNotify that reached the monitor as an MMIO exit.
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
    pub fn host_fd(&self) -> Option<std::os::fd::RawFd> {
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

    fn queue(&self) -> Option<&Queue> {
        usize::try_from(self.queue_sel)
            .ok()
            .and_then(|i| self.queues.get(i))
    }

    /// The selected queue while the driver may set it up: features agreed,
    /// the device not yet live, the queue not yet enabled.
    fn queue_to_set_up(&mut self) -> Option<&mut Queue> {
        let phase = self.status
            & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED);
        if phase != VIRTIO_CONFIG_S_FEATURES_OK {
            return None;
        }
        let index = usize::try_from(self.queue_sel).ok()?;
        self.queues.get_mut(index).filter(|q| !q.ready())
    }

    fn set_up(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.queue_to_set_up() {
            f(q);
        }
    }

    fn set_driver_features(&mut self, value: u32) {
        let negotiating = self.status & (VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK)
            == VIRTIO_CONFIG_S_DRIVER;
        if !negotiating {
            return;
        }
        let value = u64::from(value);
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (value << 32),
            _ => {}
        }
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // A driver only adds bits; clearing is a reset (virtio 1.2, 2.1.2).
        if value & self.status != self.status {
            tracing::debug!(
                from = self.status,
                to = value,
                "virtio-mmio: status change that clears bits ignored"
            );
            return;
        }
        let added = value & !self.status;
        let mut status = value;
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 && !self.features_acceptable() {
            // The driver reads the status back and gives up.
            status &= !VIRTIO_CONFIG_S_FEATURES_OK;
        }
        if added & VIRTIO_CONFIG_S_DRIVER_OK != 0 {
            if status & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
                status &= !VIRTIO_CONFIG_S_DRIVER_OK;
            } else if self
                .queues
                .iter()
                .filter(|q| q.ready())
                .all(|q| q.is_valid(&self.mem))
            {
                self.active = true;
            } else {
                // A ready queue outside guest memory: tell the driver the
                // device cannot go on (virtio 1.2, 2.1.2).
                status |= VIRTIO_CONFIG_S_NEEDS_RESET;
                self.interrupt.raise(CONFIG_CHANGE);
            }
        }
        self.status = status;
    }

    /// Only bits the device offered, and VERSION_1: a legacy driver is
    /// refused rather than half served.
    fn features_acceptable(&self) -> bool {
        let offered = self.device.features();
        self.driver_features & !offered == 0
            && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0
    }

    fn reset(&mut self) {
        self.status = 0;
        self.active = false;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.interrupt.clear();
        self.device.reset();
    }
}
