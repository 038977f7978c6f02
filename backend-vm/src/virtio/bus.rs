//! Guest-physical MMIO addresses to virtio-mmio devices: one window of
//! [`MMIO_SIZE`] bytes per device, side by side from a base address.

use std::sync::{Arc, Mutex};

use super::mmio::{MmioTransport, MMIO_SIZE};

pub struct MmioBus {
    base: u64,
    devices: Vec<Arc<Mutex<MmioTransport>>>,
}

impl MmioBus {
    pub fn new(base: u64) -> MmioBus {
        MmioBus {
            base,
            devices: Vec::new(),
        }
    }

    /// Where the next device's window will be.
    pub fn next_address(&self) -> u64 {
        self.base + self.devices.len() as u64 * MMIO_SIZE
    }

    pub fn add(&mut self, device: Arc<Mutex<MmioTransport>>) {
        self.devices.push(device);
    }

    pub fn devices(&self) -> &[Arc<Mutex<MmioTransport>>] {
        &self.devices
    }

    /// Whether `addr` is on this bus: the vCPU loop answers the rest itself.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((device, offset)) => {
                match device.lock() {
                    Ok(mut d) => d.read(offset, data),
                    Err(_) => data.fill(0xff),
                }
                true
            }
            None => false,
        }
    }

    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((device, offset)) => {
                if let Ok(mut d) = device.lock() {
                    d.write(offset, data);
                }
                true
            }
            None => false,
        }
    }

    /// The device whose window holds all of `addr..addr + len`, and the
    /// offset in it; an access across two windows belongs to neither.
    fn find(&self, addr: u64, len: usize) -> Option<(&Arc<Mutex<MmioTransport>>, u64)> {
        let rel = addr.checked_sub(self.base)?;
        let index = usize::try_from(rel / MMIO_SIZE).ok()?;
        let offset = rel % MMIO_SIZE;
        let device = self.devices.get(index)?;
        (offset + len as u64 <= MMIO_SIZE).then_some((device, offset))
    }
}
