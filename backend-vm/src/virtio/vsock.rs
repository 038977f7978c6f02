//! virtio-vsock with the guest at CID 3 and host-initiated streams only,
//! reached through a unix socket (see `vsock_muxer`): packets are read
//! from the transmit queue and written into the receive queue's buffers
//! by the virtio-vsock crate; the event queue is never used.

use std::io;
use std::os::fd::RawFd;
use std::path::Path;

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK;
use virtio_queue::{Queue, QueueT};
use virtio_vsock::packet::{VsockPacket, PKT_HEADER_SIZE};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::vsock_header::Header;
use super::vsock_muxer::Muxer;
use super::VirtioDevice;

/// The guest's CID (2 is the host's; 3 is the first a guest may have).
pub const GUEST_CID: u64 = 3;
const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZES: [u16; 3] = [256, 256, 64];
/// The largest packet the guest's driver sends (64 KiB).
const MAX_PACKET_DATA: u32 = 64 << 10;

pub struct Vsock {
    muxer: Muxer,
    config: [u8; 8],
}

impl Vsock {
    /// A device whose host side listens on `path`.
    pub fn bind(path: &Path) -> io::Result<Vsock> {
        Ok(Vsock {
            muxer: Muxer::bind(path, GUEST_CID)?,
            config: GUEST_CID.to_le_bytes(),
        })
    }

    /// Take every packet the guest queued for sending.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(mut chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            match VsockPacket::from_tx_virtq_chain(mem, &mut chain, MAX_PACKET_DATA) {
                Ok(packet) => {
                    let mut data = vec![0u8; packet.len() as usize];
                    let copied = match packet.data_slice() {
                        Some(slice) => slice.read_slice(&mut data, 0).is_ok(),
                        None => data.is_empty(),
                    };
                    if copied {
                        self.muxer.guest_packet(&header_of(&packet), &data);
                    }
                }
                Err(e) => tracing::debug!("vsock: a malformed packet from the guest: {e}"),
            }
            if queue.add_used(mem, head, 0).is_ok() {
                used = true;
            }
        }
        used
    }

    /// Fill the guest's receive buffers with what the host has for it.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while self.muxer.has_rx() {
            let Some(mut chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let mut packet =
                match VsockPacket::from_rx_virtq_chain(mem, &mut chain, MAX_PACKET_DATA) {
                    Ok(p) => p,
                    Err(e) => {
                        // An unusable buffer goes back empty.
                        tracing::debug!("vsock: a malformed receive buffer: {e}");
                        used |= queue.add_used(mem, head, 0).is_ok();
                        continue;
                    }
                };
            let room = packet.data_slice().map_or(0, |s| s.len());
            let Some((h, data)) = self.muxer.next_rx(room) else {
                // Nothing to send after all: the buffer stays the guest's.
                queue.set_next_avail(queue.next_avail().wrapping_sub(1));
                break;
            };
            set_header(&mut packet, &h);
            let written = match packet.data_slice() {
                Some(slice) if !data.is_empty() => slice.write_slice(&data, 0).is_ok(),
                _ => data.is_empty(),
            };
            let len = if written {
                PKT_HEADER_SIZE + data.len()
            } else {
                0
            };
            used |= queue.add_used(mem, head, len as u32).is_ok();
        }
        used
    }
}

fn header_of(p: &VsockPacket<'_, ()>) -> Header {
    Header {
        src_cid: p.src_cid(),
        dst_cid: p.dst_cid(),
        src_port: p.src_port(),
        dst_port: p.dst_port(),
        len: p.len(),
        type_: p.type_(),
        op: p.op(),
        flags: p.flags(),
        buf_alloc: p.buf_alloc(),
        fwd_cnt: p.fwd_cnt(),
    }
}

fn set_header(p: &mut VsockPacket<'_, ()>, h: &Header) {
    p.set_src_cid(h.src_cid)
        .set_dst_cid(h.dst_cid)
        .set_src_port(h.src_port)
        .set_dst_port(h.dst_port)
        .set_len(h.len)
        .set_type(h.type_)
        .set_op(h.op)
        .set_flags(h.flags)
        .set_buf_alloc(h.buf_alloc)
        .set_fwd_cnt(h.fwd_cnt);
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_VSOCK
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        if index == TX {
            if let Some(tx) = queues.get_mut(TX) {
                used |= tx.ready() && self.transmit(tx, mem);
            }
        }
        // Whatever was notified, answers and host data may now fit.
        if let Some(rx) = queues.get_mut(RX).filter(|q| q.ready()) {
            used |= self.receive(rx, mem);
        }
        used
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.muxer.fd())
    }

    fn host_event(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        self.muxer.poll();
        match queues.get_mut(RX).filter(|q| q.ready()) {
            Some(rx) => self.receive(rx, mem),
            None => false,
        }
    }

    fn reset(&mut self) {
        self.muxer.forget_guest();
    }
}
