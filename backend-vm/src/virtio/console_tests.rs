//! virtio-console against in-memory guest memory: the control conversation
//! Linux's driver has with it (ports added, named and opened), each port's
//! output reaching its own writer, and malformed chains refused without a
//! panic.

use isola_test_support::Capture;
use virtio_queue::{Queue, QueueT};

use super::console::{Console, ConsolePort};
use super::console_control::{
    Message, DEVICE_ADD, DEVICE_READY, MESSAGE_BYTES, PORT_NAME, PORT_OPEN, PORT_READY,
};
use super::testing::{memory, readable, writable, Driver, BUFFERS, MEM_BYTES};
use super::VirtioDevice;

const PORT0_TX: usize = 1;
const CONTROL_RX: usize = 2;
const CONTROL_TX: usize = 3;
const PORT1_TX: usize = 5;
/// Where each queue's rings are, by index.
const RINGS: u64 = 0x4000;
const CONTROL_BUFS: u64 = BUFFERS;
const DATA: u64 = BUFFERS + 0x10_0000;

/// A console with `isola.stdout` and `isola.stderr`, and what each wrote.
pub fn console() -> (Console, Capture, Capture) {
    let (out, err) = (Capture::default(), Capture::default());
    let ports = vec![
        ConsolePort {
            name: "isola.stdout".into(),
            out: Box::new(out.clone()),
        },
        ConsolePort {
            name: "isola.stderr".into(),
            out: Box::new(err.clone()),
        },
    ];
    (Console::new(ports), out, err)
}

/// The driver's side: a ring for each queue the tests use.
struct Guest<'a> {
    drivers: Vec<Option<Driver<'a>>>,
    queues: Vec<Queue>,
    control_sent: u64,
}

impl<'a> Guest<'a> {
    fn new(mem: &'a vm_memory::GuestMemoryMmap) -> Guest<'a> {
        let mut drivers = Vec::new();
        let mut queues = Vec::new();
        for index in 0..6u64 {
            if [PORT0_TX, CONTROL_RX, CONTROL_TX, PORT1_TX].contains(&(index as usize)) {
                let d = Driver::at(mem, index * RINGS);
                queues.push(d.queue());
                drivers.push(Some(d));
            } else {
                queues.push(Queue::new(16).unwrap());
                drivers.push(None);
            }
        }
        Guest {
            drivers,
            queues,
            control_sent: 0,
        }
    }

    fn driver(&mut self, index: usize) -> &mut Driver<'a> {
        self.drivers[index].as_mut().unwrap()
    }

    /// `n` control receive buffers of a page each.
    fn give_control_buffers(&mut self, dev: &mut Console, n: u64) {
        for k in 0..n {
            let at = CONTROL_BUFS + 0x8000 + k * 0x1000;
            self.driver(CONTROL_RX).offer(&[writable(at, 4096)]);
        }
        dev.process_queue(
            CONTROL_RX,
            &mut self.queues,
            self.drivers[2].as_ref().unwrap().mem,
        );
    }

    fn send_control(&mut self, dev: &mut Console, m: Message) {
        let at = CONTROL_BUFS + (self.control_sent % 8) * 0x100;
        self.control_sent += 1;
        let d = self.driver(CONTROL_TX);
        d.write(at, &m.encode(&[]));
        d.offer(&[readable(at, MESSAGE_BYTES as u32)]);
        let mem = d.mem;
        dev.process_queue(CONTROL_TX, &mut self.queues, mem);
    }

    /// The answers the device put in the control receive buffers, in order.
    fn answers(&mut self) -> Vec<(Message, Vec<u8>)> {
        let d = self.driver(CONTROL_RX);
        (0..d.used_count())
            .map(|n| {
                let (head, len) = d.used(n);
                let at = CONTROL_BUFS + 0x8000 + u64::from(head) * 0x1000;
                let bytes = d.read(at, len as usize);
                let mut m = [0u8; MESSAGE_BYTES];
                m.copy_from_slice(&bytes[..MESSAGE_BYTES]);
                (Message::parse(&m), bytes[MESSAGE_BYTES..].to_vec())
            })
            .collect()
    }
}

fn msg(id: u32, event: u16, value: u16) -> Message {
    Message { id, event, value }
}

#[test]
fn offers_multiport_with_two_ports_and_six_queues() {
    let (dev, _, _) = console();
    assert_eq!(dev.device_type(), 3);
    assert_ne!(dev.features() & 2, 0, "VIRTIO_CONSOLE_F_MULTIPORT");
    assert_eq!(dev.queue_max_sizes().len(), 6);
    let mut config = [0u8; 4];
    dev.read_config(4, &mut config);
    assert_eq!(u32::from_le_bytes(config), 2, "max_nr_ports");
}

#[test]
fn the_driver_is_told_each_port_its_name_and_that_the_host_is_there() {
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (mut dev, _, _) = console();
    g.give_control_buffers(&mut dev, 8);
    g.send_control(&mut dev, msg(u32::MAX, DEVICE_READY, 1));
    g.send_control(&mut dev, msg(1, PORT_READY, 1));
    g.send_control(&mut dev, msg(0, PORT_READY, 1));
    let answers = g.answers();
    assert_eq!(
        answers,
        vec![
            (msg(0, DEVICE_ADD, 0), vec![]),
            (msg(1, DEVICE_ADD, 0), vec![]),
            (msg(1, PORT_NAME, 0), b"isola.stderr".to_vec()),
            (msg(1, PORT_OPEN, 1), vec![]),
            (msg(0, PORT_NAME, 0), b"isola.stdout".to_vec()),
            (msg(0, PORT_OPEN, 1), vec![]),
        ]
    );
    assert_eq!(
        g.driver(CONTROL_TX).used_count(),
        3,
        "each message returned"
    );
}

#[test]
fn answers_wait_for_the_driver_s_buffers() {
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (mut dev, _, _) = console();
    g.send_control(&mut dev, msg(0, DEVICE_READY, 1));
    assert!(g.answers().is_empty());
    g.give_control_buffers(&mut dev, 1);
    assert_eq!(g.answers().len(), 1);
    g.give_control_buffers(&mut dev, 4);
    assert_eq!(g.answers().len(), 2, "both DEVICE_ADDs, nothing more");
}

#[test]
fn each_port_s_output_reaches_its_own_writer_whole_and_in_order() {
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (mut dev, out, err) = console();
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    g.driver(PORT0_TX).write(DATA, &big);
    // One chain of two descriptors, as a driver may send.
    g.driver(PORT0_TX)
        .offer(&[readable(DATA, 60_000), readable(DATA + 60_000, 40_000)]);
    g.driver(PORT1_TX).write(DATA + 0x2_0000, b"an error\n");
    g.driver(PORT1_TX).offer(&[readable(DATA + 0x2_0000, 9)]);
    g.driver(PORT0_TX).write(DATA + 0x3_0000, b"tail");
    g.driver(PORT0_TX).offer(&[readable(DATA + 0x3_0000, 4)]);
    assert!(dev.process_queue(PORT0_TX, &mut g.queues, &mem));
    assert!(dev.process_queue(PORT1_TX, &mut g.queues, &mem));
    let mut expected = big.clone();
    expected.extend_from_slice(b"tail");
    assert_eq!(bytes(&out), expected);
    assert_eq!(bytes(&err), b"an error\n");
    assert_eq!(g.driver(PORT0_TX).used_count(), 2);
    assert_eq!(g.driver(PORT0_TX).used(0).1, 0, "nothing written back");
}

#[test]
fn malformed_chains_are_returned_without_output_or_panic() {
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (mut dev, out, _) = console();
    g.driver(PORT0_TX).write(DATA, b"fine");
    for descs in [
        vec![readable(u64::MAX - 10, 20)],
        vec![readable(MEM_BYTES - 4, 64)],
        vec![readable(DATA, 4), readable(u64::MAX - 0xfff, 512)],
    ] {
        g.driver(PORT0_TX).offer(&descs);
    }
    // A head past the table.
    g.driver(PORT0_TX).make_available(200);
    dev.process_queue(PORT0_TX, &mut g.queues, &mem);
    assert_eq!(g.driver(PORT0_TX).used_count(), 3);
    assert!(bytes(&out).is_empty(), "{:?}", bytes(&out));
    // Writable-only buffers carry nothing out.
    g.driver(PORT0_TX).offer(&[writable(DATA, 4)]);
    dev.process_queue(PORT0_TX, &mut g.queues, &mem);
    assert!(bytes(&out).is_empty());

    // A short control message, one for a port that is not there, and a
    // control receive buffer too small for the answer.
    let d = g.driver(CONTROL_TX);
    d.write(CONTROL_BUFS, &[0, 0, 0, 0, 3, 0]);
    d.offer(&[readable(CONTROL_BUFS, 6)]);
    dev.process_queue(CONTROL_TX, &mut g.queues, &mem);
    g.send_control(&mut dev, msg(7, PORT_READY, 1));
    g.driver(CONTROL_RX)
        .offer(&[writable(CONTROL_BUFS + 0x8000, 4)]);
    g.send_control(&mut dev, msg(0, DEVICE_READY, 1));
    assert_eq!(
        g.driver(CONTROL_RX).used(0),
        (0, 0),
        "dropped, returned empty"
    );
    assert_eq!(g.driver(CONTROL_TX).used_count(), 3);
}

#[test]
fn a_reset_forgets_pending_answers() {
    let mem = memory();
    let mut g = Guest::new(&mem);
    let (mut dev, _, _) = console();
    g.send_control(&mut dev, msg(0, DEVICE_READY, 1));
    dev.reset();
    g.give_control_buffers(&mut dev, 4);
    assert!(g.answers().is_empty());
}

fn bytes(c: &Capture) -> Vec<u8> {
    c.0.lock().unwrap().clone()
}
