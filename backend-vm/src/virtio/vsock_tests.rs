//! virtio-vsock against in-memory guest memory, with the test as both the
//! guest's driver and the host program on the unix socket: CONNECT, the
//! guest's RESPONSE and OK, data both ways, the host's close, and the
//! refusals (an unknown port, a bad CONNECT line, malformed packets).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use virtio_queue::{Queue, QueueT};

use super::testing::{memory, readable, writable, Driver, BUFFERS};
use super::vsock::{Vsock, GUEST_CID};
use super::vsock_header::{
    Header, HOST_CID, OP_REQUEST, OP_RESPONSE, OP_RST, OP_RW, OP_SHUTDOWN, TYPE_STREAM,
};
use super::VirtioDevice;

const HEADER: usize = 44;
const TX_AT: u64 = 0x8000;
/// Where the guest's receive buffers are: header and data, 8 of them.
const RX_BUFS: u64 = BUFFERS;
const TX_BUFS: u64 = BUFFERS + 0x10_0000;

/// A header as the guest writes it.
#[derive(Debug, Default, Clone, Copy)]
struct H {
    src_port: u32,
    dst_port: u32,
    len: u32,
    op: u16,
    flags: u32,
    buf_alloc: u32,
}

fn encode(h: H, src_cid: u64, dst_cid: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER);
    b.extend(src_cid.to_le_bytes());
    b.extend(dst_cid.to_le_bytes());
    b.extend(h.src_port.to_le_bytes());
    b.extend(h.dst_port.to_le_bytes());
    b.extend(h.len.to_le_bytes());
    b.extend(TYPE_STREAM.to_le_bytes());
    b.extend(h.op.to_le_bytes());
    b.extend(h.flags.to_le_bytes());
    b.extend(h.buf_alloc.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Header {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    Header {
        src_cid: u64_at(0),
        dst_cid: u64_at(8),
        src_port: u32_at(16),
        dst_port: u32_at(20),
        len: u32_at(24),
        type_: u16_at(28),
        op: u16_at(30),
        flags: u32_at(32),
        buf_alloc: u32_at(36),
        fwd_cnt: u32_at(40),
    }
}

struct Guest<'a> {
    rx: Driver<'a>,
    tx: Driver<'a>,
    queues: [Queue; 3],
    /// Receive buffers offered so far.
    offered: u16,
    sent: u16,
}

impl<'a> Guest<'a> {
    fn new(mem: &'a vm_memory::GuestMemoryMmap) -> Guest<'a> {
        let rx = Driver::at(mem, 0);
        let tx = Driver::at(mem, TX_AT);
        let queues = [rx.queue(), tx.queue(), Queue::new(64).unwrap()];
        let mut g = Guest {
            rx,
            tx,
            queues,
            offered: 0,
            sent: 0,
        };
        for _ in 0..8 {
            g.offer_rx();
        }
        g
    }

    fn offer_rx(&mut self) {
        let at = RX_BUFS + u64::from(self.offered % 8) * 0x2000;
        self.rx
            .offer(&[writable(at, HEADER as u32), writable(at + 0x100, 4096)]);
        self.offered += 1;
    }

    /// Send `h` with `data` on the transmit queue.
    fn send(&mut self, dev: &mut Vsock, h: H, data: &[u8]) {
        self.send_raw(
            dev,
            &encode(
                H {
                    len: data.len() as u32,
                    ..h
                },
                u64::from(GUEST_CID as u32),
                HOST_CID,
            ),
            data,
        );
    }

    fn send_raw(&mut self, dev: &mut Vsock, header: &[u8], data: &[u8]) {
        let at = TX_BUFS + u64::from(self.sent % 8) * 0x2000;
        self.tx.write(at, header);
        self.tx.write(at + 0x100, data);
        if data.is_empty() {
            self.tx.offer(&[readable(at, header.len() as u32)]);
        } else {
            self.tx.offer(&[
                readable(at, header.len() as u32),
                readable(at + 0x100, data.len() as u32),
            ]);
        }
        self.sent += 1;
        let mem = self.tx.mem;
        dev.process_queue(1, &mut self.queues, mem);
    }

    /// Serve the host side until a packet arrives for the guest: its
    /// header fields and data.
    fn receive(&mut self, dev: &mut Vsock, seen: &mut u16) -> (Header, Vec<u8>) {
        let mem = self.rx.mem;
        for _ in 0..200 {
            if self.rx.used_count() > *seen {
                break;
            }
            dev.host_event(&mut self.queues, mem);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(self.rx.used_count() > *seen, "a packet for the guest");
        let (id, len) = self.rx.used(*seen);
        *seen += 1;
        let at = RX_BUFS + u64::from(id as u16 / 2 % 8) * 0x2000;
        let header = decode(&self.rx.read(at, HEADER));
        let data = self.rx.read(at + 0x100, len as usize - HEADER);
        self.offer_rx();
        (header, data)
    }
}

fn device() -> (Vsock, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vsock.sock");
    (Vsock::bind(&path).unwrap(), dir, path)
}

/// A host connection to guest port 52, accepted by the guest: the host's
/// stream, past its OK line, and the header the guest answers with.
fn established(dev: &mut Vsock, guest: &mut Guest, path: &Path, seen: &mut u16) -> (UnixStream, H) {
    let mut host = UnixStream::connect(path).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    host.write_all(b"CONNECT 52\n").unwrap();

    let (h, _) = guest.receive(dev, seen);
    assert_eq!(
        (h.src_cid, h.dst_cid, h.dst_port, h.op),
        (HOST_CID, GUEST_CID, 52, OP_REQUEST)
    );
    let local = h.src_port;
    let reply = H {
        src_port: 52,
        dst_port: local,
        buf_alloc: 64 << 10,
        ..H::default()
    };
    guest.send(
        dev,
        H {
            op: OP_RESPONSE,
            ..reply
        },
        &[],
    );
    let mut ok = vec![0u8; format!("OK {local}\n").len()];
    host.read_exact(&mut ok).unwrap();
    assert_eq!(String::from_utf8(ok).unwrap(), format!("OK {local}\n"));
    (host, reply)
}

#[test]
fn a_host_connect_reaches_a_guest_port_and_carries_data_both_ways() {
    let (mut dev, _dir, path) = device();
    let mem = memory();
    let mut guest = Guest::new(&mem);
    let mut seen = 0;
    let (mut host, reply) = established(&mut dev, &mut guest, &path, &mut seen);
    let local = reply.dst_port;

    guest.send(&mut dev, H { op: OP_RW, ..reply }, b"from the guest");
    let mut got = [0u8; 14];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from the guest");

    host.write_all(b"from the host").unwrap();
    let (h, data) = guest.receive(&mut dev, &mut seen);
    assert_eq!(
        (h.src_port, h.dst_port, h.len, h.op),
        (local, 52, 13, OP_RW)
    );
    assert_eq!(data, b"from the host");

    host.shutdown(std::net::Shutdown::Write).unwrap();
    let (h, _) = guest.receive(&mut dev, &mut seen);
    assert_eq!((h.op, h.flags), (OP_SHUTDOWN, 2), "the host sends no more");
    // It still reads: the guest answers, then closes both ways.
    guest.send(&mut dev, H { op: OP_RW, ..reply }, b"late answer");
    let shutdown = H {
        op: OP_SHUTDOWN,
        flags: 3,
        ..reply
    };
    guest.send(&mut dev, shutdown, &[]);
    let (h, _) = guest.receive(&mut dev, &mut seen);
    assert_eq!(h.op, OP_RST, "the stream is over");
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"late answer", "then the host's end");
}

#[test]
fn a_guest_refusal_closes_the_host_stream() {
    let (mut dev, _dir, path) = device();
    let mem = memory();
    let mut guest = Guest::new(&mem);
    let mut seen = 0;
    let mut host = UnixStream::connect(&path).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    host.write_all(b"CONNECT 7\n").unwrap();
    let local = guest.receive(&mut dev, &mut seen).0.src_port;
    guest.send(
        &mut dev,
        H {
            op: OP_RST,
            src_port: 7,
            dst_port: local,
            ..H::default()
        },
        &[],
    );
    let mut rest = Vec::new();
    assert_eq!(host.read_to_end(&mut rest).unwrap(), 0, "no OK line");
}

#[test]
fn a_bad_connect_line_is_closed_unanswered() {
    let (mut dev, _dir, path) = device();
    let mem = memory();
    let mut guest = Guest::new(&mem);
    for line in [&b"CONNECT x\n"[..], b"HELLO 5\n", &[b'9'; 40]] {
        let mut host = UnixStream::connect(&path).unwrap();
        host.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        host.write_all(line).unwrap();
        for _ in 0..5 {
            dev.host_event(&mut guest.queues, &mem);
        }
        // Closed: at its end, or reset when it had sent more than read.
        let mut rest = Vec::new();
        match host.read_to_end(&mut rest) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
    assert_eq!(guest.rx.used_count(), 0, "the guest heard nothing");
}

#[test]
fn packets_for_no_stream_are_reset_and_malformed_ones_dropped() {
    let (mut dev, _dir, _path) = device();
    let mem = memory();
    let mut guest = Guest::new(&mem);
    let mut seen = 0;
    guest.send(
        &mut dev,
        H {
            op: OP_REQUEST,
            src_port: 1000,
            dst_port: 22,
            ..H::default()
        },
        &[],
    );
    let (h, _) = guest.receive(&mut dev, &mut seen);
    assert_eq!(
        (h.dst_cid, h.src_port, h.dst_port, h.op),
        (GUEST_CID, 22, 1000, OP_RST)
    );
    // A short header, a header claiming more data than there is, another
    // CID: each taken off the queue, none answered.
    let h = encode(
        H {
            op: OP_RW,
            src_port: 1,
            dst_port: 2,
            len: 5000,
            ..H::default()
        },
        GUEST_CID,
        HOST_CID,
    );
    guest.send_raw(&mut dev, &h[..20], &[]);
    guest.send_raw(&mut dev, &h, b"short");
    guest.send_raw(
        &mut dev,
        &encode(
            H {
                op: OP_RW,
                ..H::default()
            },
            9,
            HOST_CID,
        ),
        &[],
    );
    assert_eq!(guest.tx.used_count(), 4);
    dev.host_event(&mut guest.queues, &mem);
    assert_eq!(guest.rx.used_count(), 1);
}

fn port() -> impl Strategy<Value = u32> {
    prop_oneof![Just(52u32), Just(1 << 30), Just(0), any::<u32>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A live stream, then packets of any kind, ports, flags and credit
    /// from the guest, the host writing now and then, and chains that
    /// are no packet at all: nothing panics, and every transmit chain is
    /// returned.
    #[test]
    fn random_packets_do_not_panic_the_device(
        packets in proptest::collection::vec(
            (0..9u16, port(), port(), any::<u32>(), any::<u32>(), any::<u32>(),
             proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()),
            0..40),
        chains in proptest::collection::vec((any::<u64>(), any::<u32>(), 0..4u16), 0..8),
    ) {
        let (mut dev, _dir, path) = device();
        let mem = memory();
        let mut guest = Guest::new(&mem);
        let mut seen = 0;
        let (mut host, _) = established(&mut dev, &mut guest, &path, &mut seen);
        host.set_nonblocking(true).unwrap();
        for (op, src_port, dst_port, flags, buf_alloc, fwd_cnt, data, host_writes) in packets {
            let h = H { op, src_port, dst_port, flags, buf_alloc, ..H::default() };
            let mut header = encode(H { len: data.len() as u32, ..h }, GUEST_CID, HOST_CID);
            header[40..44].copy_from_slice(&fwd_cnt.to_le_bytes());
            guest.send_raw(&mut dev, &header, &data);
            if host_writes {
                let _ = host.write(b"host bytes");
            }
            dev.host_event(&mut guest.queues, &mem);
            // Give back as many receive buffers as the device used.
            while seen < guest.rx.used_count() {
                seen += 1;
                guest.offer_rx();
            }
        }
        for (addr, len, bits) in chains {
            let flags = if bits & 1 != 0 { virtio_bindings::virtio_ring::VRING_DESC_F_WRITE as u16 } else { 0 };
            let addr = if bits & 2 != 0 { addr } else { TX_BUFS + addr % 0x1000 };
            guest.tx.offer(&[(addr, len, flags)]);
            guest.sent += 1;
            dev.process_queue(1, &mut guest.queues, &mem);
        }
        prop_assert_eq!(guest.tx.used_count(), guest.sent);
    }
}
