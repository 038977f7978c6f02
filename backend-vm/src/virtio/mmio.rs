//! The virtio-mmio transport, version 2 (virtio 1.x, no legacy): the
//! register file a driver programs — feature negotiation, queue set-up,
//! device status, interrupt status and acknowledgement — in front of the
//! device's own configuration space at offset 0x100.

use std::sync::{Arc, Mutex, MutexGuard};

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio as reg;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::served::Served;

use super::interrupt::{Interrupt, CONFIG_CHANGE};
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
    served: Arc<Mutex<Served>>,
    interrupt: Arc<Interrupt>,
    device_type: u32,
    device_features: u64,
    status: u32,
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
        let (device_type, device_features) = (device.device_type(), device.features());
        MmioTransport {
            served: Arc::new(Mutex::new(Served::new(device, mem, Arc::clone(&interrupt)))),
            interrupt,
            device_type,
            device_features,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
        }
    }

    /// The device and its queues, for the device thread.
    pub fn served(&self) -> &Arc<Mutex<Served>> {
        &self.served
    }

    pub fn queue_count(&self) -> usize {
        self.lock().map_or(0, |s| s.queues.len())
    }

    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    /// The served half; `None` once a panic poisoned it (the device then
    /// reads as zeros and ignores writes).
    fn lock(&self) -> Option<MutexGuard<'_, Served>> {
        self.served.lock().ok()
    }

    /// A read of `data.len()` bytes at `offset` in the window.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG {
            match self.lock() {
                Some(served) => served.read_config(offset - CONFIG, data),
                None => data.fill(0),
            }
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
            reg::VIRTIO_MMIO_DEVICE_ID => self.device_type,
            reg::VIRTIO_MMIO_VENDOR_ID => VENDOR,
            reg::VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features as u32,
                1 => (self.device_features >> 32) as u32,
                _ => 0,
            },
            reg::VIRTIO_MMIO_QUEUE_NUM_MAX => self.with_queue(|q| u32::from(q.max_size())),
            reg::VIRTIO_MMIO_QUEUE_READY => self.with_queue(|q| u32::from(q.ready())),
            reg::VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            reg::VIRTIO_MMIO_STATUS => self.status,
            reg::VIRTIO_MMIO_QUEUE_DESC_LOW => self.with_queue(|q| q.desc_table() as u32),
            reg::VIRTIO_MMIO_QUEUE_DESC_HIGH => self.with_queue(|q| (q.desc_table() >> 32) as u32),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW => self.with_queue(|q| q.avail_ring() as u32),
            reg::VIRTIO_MMIO_QUEUE_AVAIL_HIGH => self.with_queue(|q| (q.avail_ring() >> 32) as u32),
            reg::VIRTIO_MMIO_QUEUE_USED_LOW => self.with_queue(|q| q.used_ring() as u32),
            reg::VIRTIO_MMIO_QUEUE_USED_HIGH => self.with_queue(|q| (q.used_ring() >> 32) as u32),
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
            reg::VIRTIO_MMIO_QUEUE_NOTIFY => {
                // Only when no ioeventfd took it (a test, or a write of
                // another width): served here, on the vCPU.
                if let Some(mut served) = self.lock() {
                    served.notify(value);
                }
            }
            reg::VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(value),
            reg::VIRTIO_MMIO_STATUS => self.set_status(value),
            reg::VIRTIO_MMIO_QUEUE_NUM => {
                if let Ok(size) = u16::try_from(value) {
                    self.set_up(|q| q.set_size(size));
                }
            }
            reg::VIRTIO_MMIO_QUEUE_READY => self.set_up(|q| q.set_ready(value == 1)),
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

    /// `f` of the selected queue, 0 when there is none.
    fn with_queue(&self, f: impl FnOnce(&Queue) -> u32) -> u32 {
        let Ok(index) = usize::try_from(self.queue_sel) else {
            return 0;
        };
        self.lock()
            .and_then(|s| s.queues.get(index).map(f))
            .unwrap_or(0)
    }

    /// `f` on the selected queue while the driver may set it up:
    /// features agreed, the device not yet live, the queue not enabled.
    fn set_up(&mut self, f: impl FnOnce(&mut Queue)) {
        let phase = self.status
            & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED);
        let Ok(index) = usize::try_from(self.queue_sel) else {
            return;
        };
        if phase != VIRTIO_CONFIG_S_FEATURES_OK {
            return;
        }
        if let Some(mut served) = self.lock() {
            if let Some(q) = served.queues.get_mut(index).filter(|q| !q.ready()) {
                f(q);
            }
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
            } else if !self.lock().is_some_and(|mut s| s.activate()) {
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
        let offered = self.device_features;
        self.driver_features & !offered == 0
            && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0
    }

    fn reset(&mut self) {
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        if let Some(mut served) = self.lock() {
            served.reset();
        }
        self.interrupt.clear();
    }
}
