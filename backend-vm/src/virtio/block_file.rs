//! The file behind a virtio-blk disk: its whole sectors, whether it may
//! be written, its ID (the serial), and the limits a request's range must
//! keep to.

use std::fs::File;

use virtio_bindings::virtio_blk::VIRTIO_BLK_ID_BYTES;

pub const SECTOR: u64 = 512;
/// Data segments per request (the header and the status take the other
/// two descriptors a request may use without indirect descriptors).
pub const SEG_MAX: u32 = 126;
/// Bytes per data segment.
pub const SIZE_MAX: u32 = 128 << 10;
/// The most data one request may carry: a driver that keeps to SEG_MAX
/// and SIZE_MAX never sends more, so more is a hostile request.
pub const MAX_REQUEST_BYTES: u64 = SEG_MAX as u64 * SIZE_MAX as u64;
pub const ID_BYTES: usize = VIRTIO_BLK_ID_BYTES as usize;

pub struct BlockFile {
    pub file: File,
    pub read_only: bool,
    /// In 512-byte sectors: a partial last sector is not part of the disk.
    pub capacity: u64,
    pub id: [u8; ID_BYTES],
}

impl BlockFile {
    /// The byte offset of `len` bytes at `sector`, if they are whole
    /// sectors, not too many, and all on the disk.
    pub fn range(&self, sector: u64, len: u64) -> Option<u64> {
        if !len.is_multiple_of(SECTOR) || len > MAX_REQUEST_BYTES {
            return None;
        }
        let end = sector.checked_add(len / SECTOR)?;
        // The guest picks the sector: past the end, or past what a byte
        // offset can hold, is refused rather than wrapped.
        (end <= self.capacity).then_some(())?;
        sector.checked_mul(SECTOR)
    }
}
