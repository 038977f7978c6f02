//! virtio-net against in-memory guest memory, with a unix seqpacket pair
//! standing in for the tap (it keeps packets apart as a tap does): frames
//! both ways, a guest without receive buffers, a tap that is full or
//! ends, oversize frames, and malformed chains refused.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::net::{Net, NetError, HEADER_BYTES, MAX_FRAME, RX, TX};
use super::net_chain::MAX_SEGMENTS;
use super::testing::{memory, readable, writable, Driver, BUFFERS, MEM_BYTES};
use super::VirtioDevice;

pub const MAC: [u8; 6] = [0x02, 0x15, 0x01, 0xa, 0xb, 0xc];
const TX_AT: u64 = 0x8000;
/// Receive buffers and transmitted packets, 64 KiB apart.
pub const RX_BUFS: u64 = BUFFERS;
const TX_BUFS: u64 = BUFFERS + 0x10_0000;
/// Indirect descriptor tables.
const TABLES: u64 = BUFFERS + 0x30_0000;
/// What every received packet starts with: num_buffers 1, nothing else.
pub const RX_HEADER: [u8; HEADER_BYTES] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// A descriptor as the driver writes it: address, length, flags.
type Desc = (u64, u32, u16);

/// A pair of connected seqpacket sockets: the device's end, the host's.
pub fn seqpacket() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`.
    let made = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(made, 0, "socketpair");
    // SAFETY: both are new and ours.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Send one packet from the host's end.
pub fn host_send(host: &OwnedFd, packet: &[u8]) {
    // SAFETY: `packet` is a live buffer of its length.
    let n = unsafe { libc::send(host.as_raw_fd(), packet.as_ptr().cast(), packet.len(), 0) };
    assert_eq!(n, packet.len() as isize, "host send");
}

/// The next packet at the host's end, if one came.
fn host_recv(host: &OwnedFd) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2 * MAX_FRAME];
    // SAFETY: `buf` is a live buffer of its length.
    let n = unsafe {
        libc::recv(
            host.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Whether the device thread would be woken for the device's host side.
pub fn host_ready(dev: &Net) -> bool {
    let fd = dev.host_fd().expect("a host fd");
    // SAFETY: the device owns the descriptor for the length of the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).expect("poll") == 1
}

/// `len` bytes that tell frames apart by `seed`.
pub fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// A header and a frame as the tap gives them.
pub fn packet(header: [u8; HEADER_BYTES], frame: &[u8]) -> Vec<u8> {
    let mut p = header.to_vec();
    p.extend_from_slice(frame);
    p
}

fn net() -> (Net, OwnedFd) {
    let (device, host) = seqpacket();
    (Net::new(device, MAC).unwrap(), host)
}

pub struct Guest<'a> {
    pub rx: Driver<'a>,
    pub tx: Driver<'a>,
    queues: [Queue; 2],
}

impl<'a> Guest<'a> {
    pub fn new(mem: &'a GuestMemoryMmap) -> Guest<'a> {
        let rx = Driver::at(mem, 0);
        let tx = Driver::at(mem, TX_AT);
        let queues = [rx.queue(), tx.queue()];
        Guest { rx, tx, queues }
    }

    fn mem(&self) -> &'a GuestMemoryMmap {
        self.rx.mem
    }

    /// Offer receive buffer `k` (of 8), `len` bytes in one descriptor.
    pub fn offer_rx(&mut self, k: u64, len: u32) -> u16 {
        self.rx.offer(&[writable(RX_BUFS + k % 8 * 0x1_0000, len)])
    }

    pub fn process(&mut self, dev: &mut Net, queue: usize) -> bool {
        let mem = self.mem();
        dev.process_queue(queue, &mut self.queues, mem)
    }

    pub fn host_event(&mut self, dev: &mut Net) -> bool {
        let mem = self.mem();
        dev.host_event(&mut self.queues, mem)
    }

    /// Put `bytes` in transmit slot `k` (of 8) and offer them in one
    /// descriptor.
    pub fn offer_tx(&mut self, k: u64, bytes: &[u8]) {
        let at = TX_BUFS + k % 8 * 0x1_0000;
        self.tx.write(at, bytes);
        self.tx.offer(&[readable(at, bytes.len() as u32)]);
    }
}

/// Offer one indirect descriptor whose table (at TABLES) has `n`
/// descriptors of `len` bytes each, side by side from `at`.
fn offer_indirect(driver: &mut Driver, at: u64, n: u16, len: u32, flags: u16) {
    let mut table = Vec::with_capacity(usize::from(n) * 16);
    for i in 0..n {
        let next_flag = if i + 1 < n {
            VRING_DESC_F_NEXT as u16
        } else {
            0
        };
        table.extend((at + u64::from(i) * u64::from(len)).to_le_bytes());
        table.extend(len.to_le_bytes());
        table.extend((flags | next_flag).to_le_bytes());
        table.extend((i + 1).to_le_bytes());
    }
    driver.write(TABLES, &table);
    driver.offer(&[(TABLES, table.len() as u32, VRING_DESC_F_INDIRECT as u16)]);
}

#[test]
fn it_offers_its_mac_and_nothing_else() {
    let (dev, _host) = net();
    assert_eq!(dev.device_type(), 1);
    assert_eq!(
        dev.features(),
        1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_MAC
    );
    assert_eq!(dev.queue_max_sizes().len(), 2, "receive and transmit");
    let mut config = [0xffu8; 8];
    dev.read_config(0, &mut config);
    assert_eq!(config, [0x02, 0x15, 0x01, 0xa, 0xb, 0xc, 0, 0]);
    let mut byte = [0u8; 1];
    dev.read_config(5, &mut byte);
    assert_eq!(byte, [0xc]);
}

#[test]
fn group_and_zero_macs_are_refused() {
    for mac in [[0x01, 0, 0x5e, 0, 0, 1], [0xff; 6], [0; 6]] {
        let (device, _host) = seqpacket();
        assert!(matches!(Net::new(device, mac), Err(NetError::Mac(_))));
    }
}

#[test]
fn a_socket_is_not_a_tap() {
    let (device, _host) = seqpacket();
    assert!(matches!(
        Net::over_tap(device, MAC),
        Err(NetError::NotATap(_))
    ));
}

#[test]
fn a_packet_reaches_the_tap_whole_with_a_header_of_the_devices_own() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    // NEEDS_CSUM, GSO_TCPV4 and the rest: offloads the device never offered.
    let guest_header = [1u8, 1, 54, 0, 0xb4, 5, 34, 0, 16, 0, 9, 9];
    let f = frame(1000, 1);
    g.tx.write(TX_BUFS, &packet(guest_header, &f));
    // The header split, and the frame over three buffers.
    g.tx.offer(&[
        readable(TX_BUFS, 5),
        readable(TX_BUFS + 5, 307),
        readable(TX_BUFS + 312, 0),
        readable(TX_BUFS + 312, 700),
    ]);
    assert!(g.process(&mut dev, TX));
    assert_eq!(g.tx.used_count(), 1);
    assert_eq!(g.tx.used(0), (0, 0), "nothing written into the guest");
    assert!(host_recv(&host) == Some(packet([0; HEADER_BYTES], &f)));
    assert_eq!(host_recv(&host), None, "one packet");
}

#[test]
fn a_frame_from_the_tap_fills_a_receive_buffer() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.rx.offer(&[writable(RX_BUFS, 7), writable(RX_BUFS + 7, 2000)]);
    // DATA_VALID, and num_buffers as the tap leaves it.
    let f = frame(1200, 2);
    host_send(
        &host,
        &packet([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xee, 0xee], &f),
    );
    assert!(g.process(&mut dev, RX));
    assert_eq!(g.rx.used(0), (0, (HEADER_BYTES + f.len()) as u32));
    assert_eq!(g.rx.read(RX_BUFS, HEADER_BYTES), RX_HEADER);
    assert!(g.rx.read(RX_BUFS + HEADER_BYTES as u64, f.len()) == f);
}

#[test]
fn without_receive_buffers_frames_wait_in_the_tap() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (f1, f2) = (frame(60, 3), frame(70, 4));
    host_send(&host, &packet([0; HEADER_BYTES], &f1));
    host_send(&host, &packet([0; HEADER_BYTES], &f2));
    assert!(!g.process(&mut dev, RX), "no buffer to fill");
    assert!(
        !host_ready(&dev),
        "a tap with nowhere to put its frames is not watched"
    );
    g.offer_rx(0, 2048);
    assert!(g.process(&mut dev, RX));
    assert_eq!(g.rx.used_count(), 1);
    assert!(!host_ready(&dev), "out of buffers again");
    g.offer_rx(1, 2048);
    assert!(g.process(&mut dev, RX));
    assert_eq!(g.rx.used_count(), 2);
    assert!(g.rx.read(RX_BUFS + 12, 60) == f1);
    assert!(
        g.rx.read(RX_BUFS + 0x1_0000 + 12, 70) == f2,
        "nothing dropped"
    );
}

#[test]
fn buffers_waiting_for_frames_watch_the_tap() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.offer_rx(0, 2048);
    g.offer_rx(1, 2048);
    assert!(!g.process(&mut dev, RX), "the tap is empty");
    assert!(!host_ready(&dev));
    let f = frame(100, 5);
    host_send(&host, &packet([0; HEADER_BYTES], &f));
    assert!(
        host_ready(&dev),
        "a frame for a waiting buffer wakes the device"
    );
    assert!(g.host_event(&mut dev));
    assert_eq!(g.rx.used(0), (0, 112));
    assert!(g.rx.read(RX_BUFS + 12, 100) == f);
    assert!(!host_ready(&dev), "the tap is empty again");
}

#[test]
fn a_frame_larger_than_its_buffer_is_dropped_and_the_buffer_kept() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.offer_rx(0, 112);
    let fits = frame(100, 6);
    host_send(&host, &packet([0; HEADER_BYTES], &frame(101, 7)));
    host_send(
        &host,
        &packet([0; HEADER_BYTES], &frame(MAX_FRAME + 1000, 8)),
    );
    host_send(&host, &packet([0; HEADER_BYTES], &fits));
    assert!(g.process(&mut dev, RX));
    assert_eq!(g.rx.used_count(), 1);
    assert_eq!(g.rx.used(0), (0, 112), "exactly full");
    assert!(g.rx.read(RX_BUFS + 12, 100) == fits);
}

#[test]
fn short_packets_from_the_host_are_dropped() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.offer_rx(0, 2048);
    host_send(&host, &[1, 2, 3]);
    let f = frame(50, 9);
    host_send(&host, &packet([0; HEADER_BYTES], &f));
    assert!(g.process(&mut dev, RX));
    assert_eq!(g.rx.used(0), (0, 62));
    assert_eq!(g.rx.used_count(), 1);
}

#[test]
fn a_full_tap_holds_packets_until_it_drains() {
    let (device, host) = seqpacket();
    let small: libc::c_int = 4096;
    // SAFETY: SO_SNDBUF reads an int.
    let set = unsafe {
        libc::setsockopt(
            device.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(set, 0);
    let mut dev = Net::new(device, MAC).unwrap();
    let mem = memory();
    let mut g = Guest::new(&mem);
    // No more: the mock's available ring runs into its used ring.
    let count = 8u8;
    for k in 0..count {
        g.offer_tx(u64::from(k), &packet([0; HEADER_BYTES], &frame(1500, k)));
    }
    assert!(g.process(&mut dev, TX));
    let first = g.tx.used_count();
    assert!(
        0 < first && first < u16::from(count),
        "{first} sent at once"
    );
    assert!(!host_ready(&dev), "the tap cannot take more yet");
    let mut seen = Vec::new();
    for _ in 0..100 {
        while let Some(p) = host_recv(&host) {
            seen.push(p);
        }
        if host_ready(&dev) {
            g.host_event(&mut dev);
        }
        if g.tx.used_count() == u16::from(count) && seen.len() == usize::from(count) {
            break;
        }
    }
    assert_eq!(g.tx.used_count(), u16::from(count));
    for (k, p) in seen.iter().enumerate() {
        let expected = packet([0; HEADER_BYTES], &frame(1500, k as u8));
        assert!(*p == expected, "packet {k} is not the {k}th sent");
    }
    assert!(!host_ready(&dev), "nothing left to wait for");
}

#[test]
fn the_end_of_the_tap_stops_receiving_without_a_busy_loop() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.offer_rx(0, 2048);
    assert!(!g.process(&mut dev, RX));
    drop(host);
    assert!(host_ready(&dev));
    assert!(!g.host_event(&mut dev));
    assert_eq!(g.rx.used_count(), 0, "the buffer stays the guest's");
    assert!(!host_ready(&dev), "not woken again for the ended tap");
    assert!(!g.process(&mut dev, RX));
}

#[test]
fn a_reset_stops_watching_the_tap() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.offer_rx(0, 2048);
    g.process(&mut dev, RX);
    dev.reset();
    host_send(&host, &packet([0; HEADER_BYTES], &frame(60, 1)));
    assert!(!host_ready(&dev));
    // A device that is not live gets no queues.
    assert!(!dev.host_event(&mut [], &mem));
}

#[test]
fn malformed_receive_buffers_are_returned_empty_and_the_frame_kept() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    let f = frame(300, 10);
    host_send(&host, &packet([0; HEADER_BYTES], &f));
    let cases: [(&str, Vec<Desc>); 5] = [
        ("a readable buffer", vec![readable(RX_BUFS, 2048)]),
        (
            "readable after writable",
            vec![writable(RX_BUFS, 1024), readable(RX_BUFS + 1024, 1024)],
        ),
        ("outside memory", vec![writable(u64::MAX - 0xfff, 2048)]),
        (
            "past the end of memory",
            vec![writable(MEM_BYTES - 100, 2048)],
        ),
        ("no room for the header", vec![writable(RX_BUFS, 11)]),
    ];
    for (n, (what, descs)) in cases.iter().enumerate() {
        g.rx.offer(descs);
        assert!(g.process(&mut dev, RX), "{what}");
        assert_eq!(g.rx.used_count(), n as u16 + 1, "{what}");
        assert_eq!(g.rx.used(n as u16).1, 0, "{what}");
    }
    let n = MAX_SEGMENTS as u16 + 1;
    offer_indirect(&mut g.rx, RX_BUFS, n, 32, VRING_DESC_F_WRITE as u16);
    assert!(g.process(&mut dev, RX), "too many buffers");
    assert_eq!(g.rx.used(5).1, 0, "too many buffers");
    // 64 buffers are not too many.
    offer_indirect(&mut g.rx, RX_BUFS, n - 1, 32, VRING_DESC_F_WRITE as u16);
    assert!(g.process(&mut dev, RX));
    assert_eq!(
        g.rx.used(6).1,
        (HEADER_BYTES + f.len()) as u32,
        "the frame kept"
    );
    assert!(g.rx.read(RX_BUFS + 12, f.len()) == f);
}

#[test]
fn malformed_packets_are_dropped() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    g.tx.write(
        TX_BUFS,
        &packet([0; HEADER_BYTES], &frame(MAX_FRAME + 1, 11)),
    );
    let cases: [(&str, Vec<Desc>); 6] = [
        ("a writable buffer", vec![writable(TX_BUFS, 1012)]),
        (
            "writable after readable",
            vec![readable(TX_BUFS, 12), writable(TX_BUFS + 12, 1000)],
        ),
        ("no frame", vec![readable(TX_BUFS, 12)]),
        ("a short header", vec![readable(TX_BUFS, 8)]),
        (
            "outside memory",
            vec![readable(TX_BUFS, 12), readable(u64::MAX - 0xfff, 100)],
        ),
        (
            "oversize",
            vec![readable(TX_BUFS, (HEADER_BYTES + MAX_FRAME + 1) as u32)],
        ),
    ];
    for (n, (what, descs)) in cases.iter().enumerate() {
        g.tx.offer(descs);
        assert!(g.process(&mut dev, TX), "{what}");
        assert_eq!(g.tx.used_count(), n as u16 + 1, "{what}");
        assert_eq!(host_recv(&host), None, "{what}");
    }
    offer_indirect(&mut g.tx, TX_BUFS, MAX_SEGMENTS as u16 + 2, 16, 0);
    assert!(g.process(&mut dev, TX));
    assert_eq!(host_recv(&host), None, "too many buffers");
    // The largest frame goes.
    g.tx.offer(&[readable(TX_BUFS, (HEADER_BYTES + MAX_FRAME) as u32)]);
    assert!(g.process(&mut dev, TX));
    let sent = host_recv(&host).expect("the largest frame");
    assert_eq!(sent.len(), HEADER_BYTES + MAX_FRAME);
    assert!(sent[HEADER_BYTES..] == frame(MAX_FRAME + 1, 11)[..MAX_FRAME]);
}

#[test]
fn loops_and_bad_heads_do_not_hang_or_panic() {
    let (mut dev, host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    for _ in 0..3 {
        host_send(&host, &packet([0; HEADER_BYTES], &frame(64, 12)));
    }
    for (driver, flags) in [(&g.rx, VRING_DESC_F_WRITE as u16), (&g.tx, 0)] {
        let at = if flags == 0 { TX_BUFS } else { RX_BUFS };
        // 0 → 1 → 0 → ...: the chain ends after the queue size.
        let next = VRING_DESC_F_NEXT as u16;
        driver.raw(0, at, 16, flags | next, 1);
        driver.raw(1, at + 16, 16, flags | next, 0);
        driver.make_available(0);
        // A head past the table, and a next index past it.
        driver.make_available(200);
        driver.raw(2, at, 16, flags | next, 999);
        driver.make_available(2);
    }
    g.process(&mut dev, RX);
    g.process(&mut dev, TX);
    g.host_event(&mut dev);
    assert!(g.rx.used_count() <= 3);
    assert!(g.tx.used_count() <= 3);
    for n in 0..g.rx.used_count() {
        assert!(g.rx.used(n).0 < 16);
    }
}

#[test]
fn a_queue_index_it_does_not_have_is_ignored() {
    let (mut dev, _host) = net();
    let mem = memory();
    let mut g = Guest::new(&mem);
    assert!(!g.process(&mut dev, 2));
    assert!(!g.process(&mut dev, usize::MAX));
}
