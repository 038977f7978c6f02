//! virtio-net over a tap: the guest's frames go out as one writev each
//! (see `net_chain`), the tap's come in with one readv each straight into
//! a receive buffer. No offloads: the guest checksums and segments, so
//! the device offers only its MAC. The tap is watched only while the
//! device waits for it: while the guest has no receive buffers, frames
//! stay in the tap's queue.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::net_chain::IoVecs;
pub use super::net_error::NetError;
pub use super::net_tap::HEADER_BYTES;
use super::VirtioDevice;

pub const RX: usize = 0;
pub const TX: usize = 1;
pub const QUEUE_SIZE: u16 = 256;
/// The largest frame either way: a 64 KiB IP packet and its Ethernet
/// header.
pub const MAX_FRAME: usize = 65_535 + 14;
/// Packets per queue per pass: a busy tap or a guest that keeps the
/// transmit queue full does not keep the thread from the other devices.
const BUDGET: usize = QUEUE_SIZE as usize;
/// A received packet's header: no flags (the device offered no checksum
/// offload, so the tap's DATA_VALID must not reach the guest), no GSO, and
/// the one buffer it takes.
const RX_HEADER: [u8; HEADER_BYTES] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

pub struct Net {
    tap: OwnedFd,
    /// The tap alone, for what the device waits on it for: the device
    /// thread waits on this set, which is ready only then.
    epoll: Epoll,
    watching: EventSet,
    /// Receiving stopped with frames still to come: at EAGAIN, or out of
    /// budget.
    rx_waits: bool,
    /// Transmitting stopped with packets left: the tap's EAGAIN, or out of
    /// budget.
    tx_waits: bool,
    /// The tap failed to read (or ended): nothing more is received.
    broken: bool,
    /// Where a frame too large for its receive buffer goes, so that it
    /// is seen as such and dropped, not given to the guest cut short.
    overflow: Vec<u8>,
    mac: [u8; 6],
}

impl Net {
    /// A device over `tap` (made non-blocking here), whose frames carry a
    /// virtio 1.x header: a tap opened with IFF_TAP, IFF_NO_PI,
    /// IFF_VNET_HDR and a 12-byte header (see `net_tap::check`), or any
    /// descriptor that keeps packets apart as a tap does.
    pub fn new(tap: OwnedFd, mac: [u8; 6]) -> Result<Net, NetError> {
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(NetError::Mac(mac));
        }
        set_nonblocking(tap.as_raw_fd()).map_err(NetError::Tap)?;
        Ok(Net {
            tap,
            epoll: Epoll::new().map_err(NetError::Tap)?,
            watching: EventSet::empty(),
            rx_waits: false,
            tx_waits: false,
            broken: false,
            overflow: vec![0u8; MAX_FRAME + HEADER_BYTES],
            mac,
        })
    }

    /// A device over a tap, which must be one it can use as it is (see
    /// `net_tap`).
    pub fn over_tap(tap: OwnedFd, mac: [u8; 6]) -> Result<Net, NetError> {
        super::net_tap::check(tap.as_fd())?;
        Net::new(tap, mac)
    }

    /// Fill the guest's receive buffers with the tap's frames, one each,
    /// until either runs out.
    fn receive(&mut self, rx: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        self.rx_waits = false;
        let mut used = false;
        if self.broken {
            return false;
        }
        for _ in 0..BUDGET {
            // None: the guest's buffers ran out, and its next ones come
            // with a notification.
            let Some(chain) = rx.pop_descriptor_chain(mem) else {
                return used;
            };
            let head = chain.head_index();
            let mut iov = IoVecs::new();
            let usable = iov
                .push_chain(chain, mem, true, 0, usize::MAX)
                .and_then(|()| iov.push_host(&mut self.overflow));
            if let Err(e) = usable.as_ref() {
                tracing::debug!("virtio-net: an unusable receive buffer: {e}");
            }
            if usable.is_err() || iov.chain_bytes() < HEADER_BYTES {
                used |= rx.add_used(mem, head, 0).is_ok();
                continue;
            }
            let room = iov.chain_bytes();
            match iov.readv(self.tap.as_fd()) {
                Ok(0) => {
                    tracing::error!("virtio-net: the tap ended; the guest receives no more");
                    self.broken = true;
                }
                Ok(n) if n > room || n < HEADER_BYTES => {
                    tracing::debug!("virtio-net: a {n}-byte packet dropped (buffer of {room})");
                }
                Ok(n) => {
                    if iov.write_chain_start(mem, &RX_HEADER) {
                        // n <= room, a chain's bytes: no more than u32.
                        let len = u32::try_from(n).unwrap_or(0);
                        used |= rx.add_used(mem, head, len).is_ok();
                        continue;
                    }
                    tracing::debug!("virtio-net: a packet dropped: its header not written");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.rx_waits = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("virtio-net: reading the tap: {e}; the guest receives no more");
                    self.broken = true;
                }
            }
            // The buffer was not used: it stays the guest's, for the next
            // frame.
            rx.set_next_avail(rx.next_avail().wrapping_sub(1));
            if self.rx_waits || self.broken {
                return used;
            }
        }
        self.rx_waits = true;
        used
    }

    /// Write each packet the guest queued to the tap, behind a zeroed
    /// header of the device's own: the guest's may ask for offloads the
    /// device never offered, and the host kernel is not to act on them.
    fn transmit(&mut self, tx: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        self.tx_waits = false;
        let mut used = false;
        for _ in 0..BUDGET {
            let Some(chain) = tx.pop_descriptor_chain(mem) else {
                return used;
            };
            let head = chain.head_index();
            let mut header = [0u8; HEADER_BYTES];
            let mut iov = IoVecs::new();
            let built = iov
                .push_host(&mut header)
                .and_then(|()| iov.push_chain(chain, mem, false, HEADER_BYTES, MAX_FRAME));
            let sent = match built {
                Err(e) => {
                    tracing::debug!("virtio-net: a malformed packet dropped: {e}");
                    true
                }
                Ok(()) if iov.chain_bytes() == 0 => true,
                Ok(()) => self.write(&iov),
            };
            if !sent {
                tx.set_next_avail(tx.next_avail().wrapping_sub(1));
                self.tx_waits = true;
                return used;
            }
            used |= tx.add_used(mem, head, 0).is_ok();
        }
        self.tx_waits = true;
        used
    }

    /// Write one packet; false if the tap cannot take it yet. A packet the
    /// tap refuses is dropped, as a wire would.
    fn write(&self, iov: &IoVecs<'_>) -> bool {
        loop {
            match iov.writev(self.tap.as_fd()) {
                Ok(_) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    tracing::debug!("virtio-net: the tap refused a packet: {e}");
                    return true;
                }
            }
        }
    }

    /// Watch the tap for what the device now waits on it for, nothing
    /// else: a readable tap whose frames have nowhere to go would wake the
    /// device thread again and again.
    fn watch(&mut self) {
        let mut want = EventSet::empty();
        if self.rx_waits && !self.broken {
            want |= EventSet::IN;
        }
        if self.tx_waits {
            want |= EventSet::OUT;
        }
        if want == self.watching {
            return;
        }
        let fd = self.tap.as_raw_fd();
        let op = match (self.watching.is_empty(), want.is_empty()) {
            (true, _) => ControlOperation::Add,
            (false, true) => ControlOperation::Delete,
            (false, false) => ControlOperation::Modify,
        };
        match self.epoll.ctl(op, fd, EpollEvent::new(want, 0)) {
            Ok(()) => self.watching = want,
            Err(e) => tracing::error!("virtio-net: cannot watch the tap: {e}"),
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller owns, no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_MAC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.mac, offset, data);
    }

    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let used = match (index, queues.get_mut(index)) {
            (RX, Some(rx)) if rx.ready() => self.receive(rx, mem),
            (TX, Some(tx)) if tx.ready() => self.transmit(tx, mem),
            _ => false,
        };
        self.watch();
        used
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    fn host_event(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        if self.tx_waits {
            match queues.get_mut(TX).filter(|q| q.ready()) {
                Some(tx) => used |= self.transmit(tx, mem),
                None => self.tx_waits = false,
            }
        }
        if self.rx_waits {
            match queues.get_mut(RX).filter(|q| q.ready()) {
                Some(rx) => used |= self.receive(rx, mem),
                None => self.rx_waits = false,
            }
        }
        self.watch();
        used
    }

    fn reset(&mut self) {
        self.rx_waits = false;
        self.tx_waits = false;
        self.watch();
    }
}
