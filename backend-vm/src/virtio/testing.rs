//! A driver's side of a virtqueue for the device models' tests: guest
//! memory, descriptors written where virtio-queue's mock puts its rings,
//! chains offered and their used entries read back.

use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest RAM of the tests: 32 MiB, enough for an oversize request.
pub const MEM_BYTES: u64 = 32 << 20;
/// Where the tests put buffers: past the rings at 0.
pub const BUFFERS: u64 = 0x10_0000;
pub const QUEUE_LEN: u16 = 16;

pub fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_BYTES as usize)]).expect("test memory")
}

/// A device-readable buffer.
pub fn readable(addr: u64, len: u32) -> (u64, u32, u16) {
    (addr, len, 0)
}

/// A device-writable buffer.
pub fn writable(addr: u64, len: u32) -> (u64, u32, u16) {
    (addr, len, VRING_DESC_F_WRITE as u16)
}

pub struct Driver<'a> {
    pub mem: &'a GuestMemoryMmap,
    vq: MockSplitQueue<'a, GuestMemoryMmap>,
    next_desc: u16,
}

impl<'a> Driver<'a> {
    pub fn new(mem: &'a GuestMemoryMmap) -> Driver<'a> {
        Driver::at(mem, 0)
    }

    /// A queue whose rings start at `start` (a device with more than one
    /// queue has each elsewhere).
    pub fn at(mem: &'a GuestMemoryMmap, start: u64) -> Driver<'a> {
        Driver {
            mem,
            vq: MockSplitQueue::create(mem, GuestAddress(start), QUEUE_LEN),
            next_desc: 0,
        }
    }

    /// The descriptor table's, available and used rings' addresses.
    pub fn addresses(&self) -> [u64; 3] {
        [
            self.vq.desc_table_addr().0,
            self.vq.avail_addr().0,
            self.vq.used_addr().0,
        ]
    }

    /// The device's view of the queue, ready.
    pub fn queue(&self) -> Queue {
        self.vq.create_queue().expect("mock queue")
    }

    /// Write `descs` as one chain (each linked to the next) and offer it.
    /// The table is reused from its start when the chain would not fit: a
    /// test offers its next chain once the device returned the last.
    pub fn offer(&mut self, descs: &[(u64, u32, u16)]) -> u16 {
        if usize::from(self.next_desc) + descs.len() > usize::from(QUEUE_LEN) {
            self.next_desc = 0;
        }
        let head = self.next_desc;
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            let index = head + i as u16;
            let (flags, next) = if i + 1 < descs.len() {
                (flags | VRING_DESC_F_NEXT as u16, index + 1)
            } else {
                (flags, 0)
            };
            self.raw(index, addr, len, flags, next);
        }
        self.next_desc += descs.len() as u16;
        self.make_available(head);
        head
    }

    /// Write descriptor `index` as it is, links and all.
    pub fn raw(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
        self.vq.desc_table().store(index, desc).expect("descriptor");
    }

    /// Put `head` in the available ring.
    pub fn make_available(&self, head: u16) {
        let idx = self.vq.avail().idx().load();
        self.vq
            .avail()
            .ring()
            .ref_at(usize::from(idx % QUEUE_LEN))
            .expect("avail slot")
            .store(head);
        self.vq.avail().idx().store(idx.wrapping_add(1));
    }

    /// How many chains the device has returned.
    pub fn used_count(&self) -> u16 {
        self.vq.used().idx().load()
    }

    /// The `n`th used entry: its head and length.
    pub fn used(&self, n: u16) -> (u32, u32) {
        let elem = self
            .vq
            .used()
            .ring()
            .ref_at(usize::from(n % QUEUE_LEN))
            .expect("used slot")
            .load();
        (elem.id(), elem.len())
    }

    pub fn write(&self, addr: u64, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(addr))
            .expect("guest write");
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.mem
            .read_slice(&mut out, GuestAddress(addr))
            .expect("guest read");
        out
    }

    pub fn byte(&self, addr: u64) -> u8 {
        self.read(addr, 1)[0]
    }
}

/// A virtio-blk request header: type, reserved, sector.
pub fn blk_header(kind: u32, sector: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    h
}
