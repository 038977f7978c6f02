//! virtio-blk backed by a file: what the device offers (flush, read-only,
//! the serial as its ID, size and segment limits) and its one request
//! queue; each request is served by `block_request`.

use std::fs::File;
use std::io;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX,
};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::block_file::SECTOR;
use super::block_file::{BlockFile, ID_BYTES, SEG_MAX, SIZE_MAX};
use super::block_request;
use super::VirtioDevice;

/// The request queue's size: as Firecracker's and QEMU's.
pub const QUEUE_SIZE: u16 = 256;

/// A virtio-blk disk over a file.
pub struct Block {
    pub(super) disk: BlockFile,
    config: [u8; 16],
}

impl Block {
    /// A disk over `file`, opened read-write unless `read_only`; `serial`
    /// is cut to its first [`ID_BYTES`] bytes.
    pub fn new(file: File, read_only: bool, serial: &[u8]) -> io::Result<Block> {
        let capacity = file.metadata()?.len() / SECTOR;
        let mut id = [0u8; ID_BYTES];
        let n = serial.len().min(ID_BYTES);
        id[..n].copy_from_slice(&serial[..n]);
        // virtio_blk_config: capacity (le64), size_max (le32), seg_max (le32).
        let mut config = [0u8; 16];
        config[0..8].copy_from_slice(&capacity.to_le_bytes());
        config[8..12].copy_from_slice(&SIZE_MAX.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        Ok(Block {
            disk: BlockFile {
                file,
                read_only,
                capacity,
                id,
            },
            config,
        })
    }

    pub fn capacity(&self) -> u64 {
        self.disk.capacity
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let mut features = 1u64 << VIRTIO_F_VERSION_1
            | 1 << VIRTIO_RING_F_INDIRECT_DESC
            | 1 << VIRTIO_BLK_F_FLUSH
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_BLK_F_SIZE_MAX;
        if self.disk.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let Some(queue) = queues.get_mut(index) else {
            return false;
        };
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let len = block_request::serve(&mut self.disk, chain, mem);
            // A head outside the table cannot be returned: the driver
            // made it up, and loses that slot.
            if let Err(e) = queue.add_used(mem, head, len) {
                tracing::debug!("virtio-blk: request {head} not returned: {e}");
                continue;
            }
            used = true;
        }
        used
    }
}
