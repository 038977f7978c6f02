//! One virtio-blk request: its descriptor chain checked (a readable
//! 16-byte header, the data, a writable status byte last; every address
//! in guest memory), then read, write, flush or get-ID done on the file.
//! The guest is hostile: a malformed chain gets VIRTIO_BLK_S_IOERR, or
//! nothing when it has no status byte to write.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::{DescriptorChain, Reader, Writer};
use vm_memory::GuestMemoryMmap;

use super::block_file::BlockFile;

const HEADER_BYTES: usize = 16;
/// File I/O goes through a buffer of this size: a request's size never
/// decides how much the monitor allocates.
const CHUNK: usize = 64 << 10;

/// Serve one request; the bytes written into the guest's buffers (the
/// used length).
pub fn serve(
    block: &mut BlockFile,
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
) -> u32 {
    let ordered = readable_first(&chain);
    let reader = Reader::new(mem, chain.clone());
    let Ok(mut writer) = Writer::new(mem, chain) else {
        return 0;
    };
    let Some(status_at) = writer.available_bytes().checked_sub(1) else {
        return 0;
    };
    let Ok(mut status) = writer.split_at(status_at) else {
        return 0;
    };
    let code = match reader {
        Ok(mut reader) if ordered => execute(block, &mut reader, &mut writer),
        _ => VIRTIO_BLK_S_IOERR,
    };
    let written = writer.bytes_written();
    if status.write_all(&[code as u8]).is_err() {
        return 0;
    }
    u32::try_from(written + 1).unwrap_or(u32::MAX)
}

/// Device-readable descriptors all come before the device-writable ones
/// (virtio 1.2, 2.7.4.2), and the chain ends within the queue size.
fn readable_first(chain: &DescriptorChain<&GuestMemoryMmap>) -> bool {
    let mut seen_writable = false;
    for desc in chain.clone() {
        if desc.is_write_only() {
            seen_writable = true;
        } else if seen_writable {
            return false;
        }
    }
    true
}

fn execute(block: &mut BlockFile, reader: &mut Reader<'_>, writer: &mut Writer<'_>) -> u32 {
    let mut header = [0u8; HEADER_BYTES];
    if reader.read_exact(&mut header).is_err() {
        return VIRTIO_BLK_S_IOERR;
    }
    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let sector = u64::from_le_bytes([
        header[8], header[9], header[10], header[11], header[12], header[13], header[14],
        header[15],
    ]);
    match kind {
        VIRTIO_BLK_T_IN => {
            // Only the header may be device-readable.
            if reader.available_bytes() != 0 {
                return VIRTIO_BLK_S_IOERR;
            }
            let len = writer.available_bytes() as u64;
            match block.range(sector, len) {
                Some(offset) => status(read(block, offset, len, writer)),
                None => VIRTIO_BLK_S_IOERR,
            }
        }
        VIRTIO_BLK_T_OUT => {
            if block.read_only || writer.available_bytes() != 0 {
                return VIRTIO_BLK_S_IOERR;
            }
            let len = reader.available_bytes() as u64;
            match block.range(sector, len) {
                Some(offset) => status(write(block, offset, len, reader)),
                None => VIRTIO_BLK_S_IOERR,
            }
        }
        VIRTIO_BLK_T_FLUSH => {
            if block.read_only {
                return VIRTIO_BLK_S_OK;
            }
            // fdatasync: what the guest's fsync waits for survives a kill
            // of the monitor (and a crash of the host).
            status(block.file.sync_data().is_ok())
        }
        VIRTIO_BLK_T_GET_ID => {
            let n = writer.available_bytes().min(block.id.len());
            status(writer.write_all(&block.id[..n]).is_ok())
        }
        _ => VIRTIO_BLK_S_UNSUPP,
    }
}

fn status(ok: bool) -> u32 {
    if ok {
        VIRTIO_BLK_S_OK
    } else {
        VIRTIO_BLK_S_IOERR
    }
}

fn read(block: &BlockFile, offset: u64, len: u64, writer: &mut Writer<'_>) -> bool {
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        if block
            .file
            .read_exact_at(&mut buf[..n], offset + done)
            .is_err()
            || writer.write_all(&buf[..n]).is_err()
        {
            return false;
        }
        done += n as u64;
    }
    true
}

fn write(block: &BlockFile, offset: u64, len: u64, reader: &mut Reader<'_>) -> bool {
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done = 0u64;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        if reader.read_exact(&mut buf[..n]).is_err()
            || block.file.write_all_at(&buf[..n], offset + done).is_err()
        {
            return false;
        }
        done += n as u64;
    }
    true
}
