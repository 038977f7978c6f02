//! virtio devices for isola's own monitor: the virtio-mmio transport, the
//! bus that routes MMIO exits to it, the thread that serves queue
//! notifications, and the device models behind it (virtio-blk,
//! virtio-net over a tap, virtio-vsock for host-initiated streams, and
//! virtio-console for the workload's output).

mod block;
mod block_file;
mod block_request;
#[cfg(test)]
mod block_tests;
mod bus;
mod console;
mod console_control;
#[cfg(test)]
mod console_tests;
mod event_loop;
#[cfg(test)]
mod fuzz_tests;
mod interrupt;
mod mmio;
#[cfg(test)]
mod mmio_tests;
mod net;
mod net_chain;
mod net_error;
mod net_tap;
#[cfg(test)]
mod net_tap_tests;
#[cfg(test)]
mod net_tests;
mod served;
#[cfg(test)]
mod testing;
mod vsock;
mod vsock_connection;
mod vsock_header;
mod vsock_muxer;
#[cfg(test)]
mod vsock_tests;

use std::os::fd::RawFd;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

pub use block::Block;
pub use bus::MmioBus;
pub use console::{Console, ConsolePort};
pub use event_loop::{EventLoop, Notifier, Wake};
pub use interrupt::Interrupt;
pub use mmio::{MmioTransport, MMIO_SIZE, QUEUE_NOTIFY};
pub use net::{Net, NetError};
pub use served::Served;
pub use vsock::{Vsock, GUEST_CID};

/// A device model behind the transport: what it offers the driver and what
/// it does with a queue the driver notified. Models know nothing of KVM.
pub trait VirtioDevice: Send {
    /// The virtio device ID (1 for a network card, 2 for a block device).
    fn device_type(&self) -> u32;
    /// Every feature bit the device offers, `VIRTIO_F_VERSION_1` included.
    fn features(&self) -> u64;
    /// The largest size of each queue, one entry per queue.
    fn queue_max_sizes(&self) -> &[u16];
    /// Bytes of the device-specific configuration space at `offset`;
    /// beyond its end reads as zeros.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Serve queue `index` after a notification. Returns whether the guest
    /// must be interrupted (buffers were put in a used ring).
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool;
    /// The driver reset the device: forget any state of the last session.
    fn reset(&mut self) {}
    /// A file descriptor the device thread also waits on, readable when
    /// the device's host side (a vsock's sockets, a tap) has work.
    fn host_fd(&self) -> Option<RawFd> {
        None
    }
    /// Its host side is ready: serve it. `queues` is empty while the
    /// driver has not made the device live. Returns whether the guest must
    /// be interrupted.
    fn host_event(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> bool {
        false
    }
}

/// Copy `config[offset..]` into `data`, zeros past the end: the config
/// read every device model shares.
pub(crate) fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(rest) = config.get(start..) {
        let n = rest.len().min(data.len());
        data[..n].copy_from_slice(&rest[..n]);
    }
}
