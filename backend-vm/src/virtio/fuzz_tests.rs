//! Random guests: descriptor tables, available rings and register writes a
//! hostile driver could make, thrown at virtio-blk, virtio-console,
//! virtio-net and the transport. The monitor must not panic, and what the
//! device writes must be sane.

use std::sync::Arc;

use proptest::prelude::*;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::block::Block;
use super::console_tests::console;
use super::net::{Net, HEADER_BYTES, MAX_FRAME};
use super::net_tests::{host_send, seqpacket};
use super::testing::{blk_header, memory, Driver, BUFFERS, MEM_BYTES, QUEUE_LEN};
use super::{Interrupt, MmioTransport, VirtioDevice};

/// Bytes no device writes: where the guest's buffers start out.
const FILL: u8 = 0xee;
const BUFFER_SPAN: u64 = 32 * 0x200;

/// One descriptor: where, how long, flags (NEXT, WRITE, INDIRECT), next.
#[derive(Debug, Clone)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0..32u64).prop_map(|k| BUFFERS + k * 0x200),
        1 => Just(0u64),
        1 => (0..4096u64).prop_map(|k| MEM_BYTES - k),
        1 => (0..4096u64).prop_map(|k| u64::MAX - k),
        1 => any::<u64>(),
    ]
}

fn len() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(16),
        Just(20),
        Just(512),
        Just(4096),
        (0..64u32).prop_map(|k| k * 16),
        any::<u32>(),
    ]
}

fn desc() -> impl Strategy<Value = Desc> {
    (
        addr(),
        len(),
        0..8u16,
        prop_oneof![0..QUEUE_LEN, any::<u16>()],
    )
        .prop_map(|(addr, len, bits, next)| {
            let mut flags = 0;
            for (bit, flag) in [
                (1, VRING_DESC_F_NEXT),
                (2, VRING_DESC_F_WRITE),
                (4, VRING_DESC_F_INDIRECT),
            ] {
                if bits & bit != 0 {
                    flags |= flag as u16;
                }
            }
            Desc {
                addr,
                len,
                flags,
                next,
            }
        })
}

/// Headers the buffers may hold: each request type, at a sector on or
/// off the disk.
fn header() -> impl Strategy<Value = [u8; 16]> {
    (
        prop_oneof![0..16u32, any::<u32>()],
        prop_oneof![0..300u64, any::<u64>()],
    )
        .prop_map(|(kind, sector)| blk_header(kind, sector))
}

/// The last byte of the last non-empty writable descriptor of the chain at
/// `head` (where the device puts the status), when the chain stays in the
/// table, uses no indirect table and ends in guest buffers.
fn status_address(table: &[Desc], head: u16) -> Option<u64> {
    let mut index = head;
    let mut last = None;
    for _ in 0..QUEUE_LEN {
        let d = table.get(usize::from(index))?;
        if d.flags & VRING_DESC_F_INDIRECT as u16 != 0 {
            return None;
        }
        if d.flags & VRING_DESC_F_WRITE as u16 != 0 && d.len > 0 {
            last = d.addr.checked_add(u64::from(d.len) - 1);
        }
        if d.flags & VRING_DESC_F_NEXT as u16 == 0 {
            break;
        }
        index = d.next;
    }
    last.filter(|a| (BUFFERS..BUFFERS + BUFFER_SPAN).contains(a))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn block_survives_random_descriptor_tables(
        table in proptest::collection::vec(desc(), QUEUE_LEN as usize),
        heads in proptest::collection::vec(prop_oneof![4 => 0..QUEUE_LEN, 1 => any::<u16>()], 0..24),
        headers in proptest::collection::vec(header(), 32),
        read_only in any::<bool>(),
    ) {
        // A disk whose every byte is one a status may be (0, 1, 2), as
        // is the serial: whatever the device writes, a status byte ends
        // up 0, 1 or 2.
        let file = tempfile::tempfile().unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[1u8; 128 * 512], 0).unwrap();
        let mut block = Block::new(file, read_only, b"\x01\x02\x01").unwrap();
        let mem = memory();
        let driver = Driver::new(&mem);
        driver.write(BUFFERS, &vec![FILL; BUFFER_SPAN as usize]);
        for (k, h) in headers.iter().enumerate() {
            driver.write(BUFFERS + k as u64 * 0x200, h);
        }
        for (i, d) in table.iter().enumerate() {
            driver.raw(i as u16, d.addr, d.len, d.flags, d.next);
        }
        // Offered in rounds no larger than the queue: more at once is a
        // broken available index, which the queue refuses as a whole.
        let mut offered = 0u16;
        let mut queues = [driver.queue()];
        for round in heads.chunks(usize::from(QUEUE_LEN)) {
            for &h in round {
                driver.make_available(h);
            }
            offered += round.len() as u16;
            block.process_queue(0, &mut queues, &mem);
        }
        let used = driver.used_count();
        prop_assert!(used <= offered);
        // A buffer over the rings lets the device's writes rewrite the
        // table under the model's feet: then only "no panic" is checked.
        let rings_written = table
            .iter()
            .any(|d| d.flags & VRING_DESC_F_WRITE as u16 != 0 && d.addr < BUFFERS);
        for n in 0..used {
            let (id, len) = driver.used(n);
            prop_assert!(id < u32::from(QUEUE_LEN), "used id {id}");
            if len == 0 || rings_written {
                continue;
            }
            if let Some(at) = status_address(&table, id as u16) {
                let status = driver.byte(at);
                prop_assert!(status <= 2, "status {status:#x} at {at:#x}");
            }
        }
    }

    #[test]
    fn console_survives_random_descriptor_tables_on_each_queue(
        table in proptest::collection::vec(desc(), QUEUE_LEN as usize),
        // At most 8: the mock's available ring has room for no more
        // before it runs into the used ring the checks read.
        heads in proptest::collection::vec(prop_oneof![4 => 0..QUEUE_LEN, 1 => any::<u16>()], 0..=8),
        messages in proptest::collection::vec(any::<[u8; 8]>(), 32),
        index in 0..6usize,
    ) {
        let (mut dev, _out, _err) = console();
        let mem = memory();
        let driver = Driver::new(&mem);
        driver.write(BUFFERS, &vec![FILL; BUFFER_SPAN as usize]);
        for (k, m) in messages.iter().enumerate() {
            driver.write(BUFFERS + k as u64 * 0x200, m);
        }
        for (i, d) in table.iter().enumerate() {
            driver.raw(i as u16, d.addr, d.len, d.flags, d.next);
        }
        // The queue under test, and (unless it is the one) a working
        // control receive queue of its own for the answers.
        let mut answers = Driver::at(&mem, 0x8000);
        for k in 0..4 {
            answers.offer(&[(BUFFERS + BUFFER_SPAN + k * 0x1000, 4096, VRING_DESC_F_WRITE as u16)]);
        }
        let mut queues: Vec<Queue> = (0..6)
            .map(|i| match i {
                _ if i == index => driver.queue(),
                2 => answers.queue(),
                _ => Queue::new(16).unwrap(),
            })
            .collect();
        let mut offered = 0u16;
        for round in heads.chunks(usize::from(QUEUE_LEN)) {
            for &h in round {
                driver.make_available(h);
            }
            offered += round.len() as u16;
            dev.process_queue(index, &mut queues, &mem);
        }
        let used = driver.used_count();
        prop_assert!(used <= offered);
        // Answers written over the rings rewrite them: then only "no
        // panic" is checked.
        let rings_written = table
            .iter()
            .any(|d| d.flags & VRING_DESC_F_WRITE as u16 != 0 && d.addr < BUFFERS);
        for n in 0..used {
            if rings_written {
                break;
            }
            let (id, _) = driver.used(n);
            prop_assert!(id < u32::from(QUEUE_LEN), "used id {id}");
        }
    }

    #[test]
    fn net_survives_random_descriptor_tables_on_each_queue(
        table in proptest::collection::vec(desc(), QUEUE_LEN as usize),
        heads in proptest::collection::vec(prop_oneof![4 => 0..QUEUE_LEN, 1 => any::<u16>()], 0..=8),
        frames in proptest::collection::vec(0..3000usize, 0..4),
        oversize in any::<bool>(),
        index in 0..2usize,
        host_events in any::<bool>(),
    ) {
        let (device, host) = seqpacket();
        let mut dev = Net::new(device, [2, 0, 0, 0, 0, 1]).unwrap();
        for len in &frames {
            host_send(&host, &vec![0x5a; *len]);
        }
        if oversize {
            host_send(&host, &vec![0x5b; MAX_FRAME + 100]);
        }
        let mem = memory();
        let driver = Driver::new(&mem);
        driver.write(BUFFERS, &vec![FILL; BUFFER_SPAN as usize]);
        for (i, d) in table.iter().enumerate() {
            driver.raw(i as u16, d.addr, d.len, d.flags, d.next);
        }
        let mut queues: Vec<Queue> = (0..2)
            .map(|i| if i == index { driver.queue() } else { Queue::new(16).unwrap() })
            .collect();
        let mut offered = 0u16;
        for round in heads.chunks(usize::from(QUEUE_LEN)) {
            for &h in round {
                driver.make_available(h);
            }
            offered += round.len() as u16;
            dev.process_queue(index, &mut queues, &mem);
            if host_events {
                dev.host_event(&mut queues, &mem);
            }
        }
        // Frames read over the rings rewrite them (even one dropped as
        // too large for its buffer), and a frame read over an indirect
        // table makes its descriptors of the frame's bytes, which may then
        // lead anywhere: then only "no panic" is checked.
        let rings_written = table.iter().any(|d| {
            (d.flags & VRING_DESC_F_WRITE as u16 != 0 && d.addr < BUFFERS)
                || d.flags & VRING_DESC_F_INDIRECT as u16 != 0
        });
        let used = driver.used_count();
        if !rings_written {
            prop_assert!(used <= offered);
            for n in 0..used {
                let (id, _) = driver.used(n);
                prop_assert!(id < u32::from(QUEUE_LEN), "used id {id}");
            }
        }
        // What reaches the tap has the device's own header, whatever the
        // guest wrote in its place.
        let mut buf = vec![0u8; 2 * MAX_FRAME];
        loop {
            // SAFETY: `buf` is a live buffer of its length.
            let n = unsafe {
                libc::recv(std::os::fd::AsRawFd::as_raw_fd(&host), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
            };
            let Ok(n) = usize::try_from(n) else { break };
            prop_assert!((HEADER_BYTES + 1..=HEADER_BYTES + MAX_FRAME).contains(&n), "{n} bytes");
            prop_assert!(buf[..HEADER_BYTES].iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn the_transport_survives_random_register_traffic(
        ops in proptest::collection::vec(
            (any::<bool>(), prop_oneof![4 => (0..0x40u64).prop_map(|k| k * 4), 1 => 0..0x200u64],
             prop_oneof![4 => Just(4usize), 1 => 1..9usize],
             prop_oneof![0..16u32, Just(0xffff_ffff), any::<u32>(), (0..8u32).prop_map(|k| 1 << k)]),
            0..200),
    ) {
        let mem = memory();
        let file = tempfile::tempfile().unwrap();
        file.set_len(1 << 20).unwrap();
        let block = Block::new(file, false, b"x").unwrap();
        let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let mut t = MmioTransport::new(Box::new(block), mem.clone(), interrupt);
        for (write, offset, width, value) in ops {
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&value.to_le_bytes());
            if write {
                t.write(offset, &bytes[..width]);
            } else {
                t.read(offset, &mut bytes[..width]);
            }
            let status = t.status();
            if status & VIRTIO_CONFIG_S_DRIVER_OK != 0 && status & VIRTIO_CONFIG_S_NEEDS_RESET == 0 {
                prop_assert!(status & VIRTIO_CONFIG_S_FEATURES_OK != 0, "status {status:#x}");
            }
            prop_assert!(t.interrupt().status() & !3 == 0);
        }
    }
}
