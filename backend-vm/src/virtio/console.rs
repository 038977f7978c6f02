//! virtio-console with named ports (VIRTIO_CONSOLE_F_MULTIPORT): each
//! port's transmit queue is the guest's output, written to a host writer
//! on the device thread; nothing is sent the other way. One device with
//! named ports, not one device per port, so that the guest finds its ports
//! by name as it does QEMU's virtio-serial ports, writes them as plain
//! files (not ttys) and queues 32 KiB at a time without waiting for the
//! host. The control queues' conversation is `console_control`.

use std::io::{Read, Write};

use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_queue::{DescriptorChain, Queue, QueueT, Reader, Writer};
use vm_memory::GuestMemoryMmap;

use super::console_control::{Control, Message, MESSAGE_BYTES};
use super::VirtioDevice;

/// The feature that gives ports names and the control queues.
const F_MULTIPORT: u64 = 1;
/// Queue 2 and 3: the control receive (device → driver) and transmit
/// queues; ports' queues come in (receive, transmit) pairs, port 0's at 0
/// and 1, port N's at 2N + 2 and 2N + 3.
const CONTROL_RX: usize = 2;
const CONTROL_TX: usize = 3;
/// A port's transmit queue: the guest's output in flight (Linux queues
/// up to 32 KiB a buffer).
const PORT_TX_SIZE: u16 = 256;
/// A port's receive queue is never used, but the driver fills it with a
/// page per slot: kept small.
const PORT_RX_SIZE: u16 = 16;
const CONTROL_SIZE: u16 = 32;
/// Guest memory is copied out through a buffer of this size.
const CHUNK: usize = 64 << 10;

/// One port: its name (the guest's /sys/class/virtio-ports/*/name) and
/// where its output goes.
pub struct ConsolePort {
    pub name: String,
    pub out: Box<dyn Write + Send>,
}

pub struct Console {
    ports: Vec<ConsolePort>,
    queue_sizes: Vec<u16>,
    control: Control,
    /// struct virtio_console_config: cols, rows (le16), max_nr_ports,
    /// emerg_wr (le32).
    config: [u8; 12],
    buf: Vec<u8>,
}

/// What a queue index is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    ControlRx,
    ControlTx,
    PortRx,
    PortTx(usize),
}

fn role(index: usize) -> Role {
    match index {
        CONTROL_RX => Role::ControlRx,
        CONTROL_TX => Role::ControlTx,
        1 => Role::PortTx(0),
        i if i % 2 == 1 => Role::PortTx((i - 3) / 2),
        _ => Role::PortRx,
    }
}

impl Console {
    pub fn new(ports: Vec<ConsolePort>) -> Console {
        let mut queue_sizes = Vec::with_capacity(2 * ports.len() + 2);
        for i in 0..ports.len().max(1) {
            queue_sizes.extend([PORT_RX_SIZE, PORT_TX_SIZE]);
            if i == 0 {
                queue_sizes.extend([CONTROL_SIZE, CONTROL_SIZE]);
            }
        }
        let mut config = [0u8; 12];
        config[4..8].copy_from_slice(&(ports.len() as u32).to_le_bytes());
        Console {
            ports,
            queue_sizes,
            control: Control::default(),
            config,
            buf: vec![0u8; CHUNK],
        }
    }

    /// Write each chain's readable bytes out to port `port`'s writer.
    fn transmit(&mut self, port: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            if let Some(p) = self.ports.get_mut(port) {
                copy_out(chain, mem, &mut p.out, &mut self.buf);
            }
            used |= queue.add_used(mem, head, 0).is_ok();
        }
        if let Some(p) = self.ports.get_mut(port) {
            let _ = p.out.flush();
        }
        used
    }

    /// Read the driver's control messages and act on them.
    fn control_in(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let names: Vec<String> = self.ports.iter().map(|p| p.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut bytes = [0u8; MESSAGE_BYTES];
            match Reader::new(mem, chain).map(|mut r| r.read_exact(&mut bytes)) {
                Ok(Ok(())) => self.control.on_message(Message::parse(&bytes), &names),
                _ => tracing::debug!("virtio-console: a malformed control message"),
            }
            used |= queue.add_used(mem, head, 0).is_ok();
        }
        used
    }

    /// Put pending answers in the driver's control receive buffers.
    fn control_out(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(message) = self.control.next().map(<[u8]>::to_vec) {
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                break;
            };
            let head = chain.head_index();
            let len = match Writer::new(mem, chain) {
                Ok(mut w) if w.available_bytes() >= message.len() => match w.write_all(&message) {
                    Ok(()) => message.len() as u32,
                    Err(_) => 0,
                },
                // A buffer too small or outside guest memory: the answer
                // cannot go there, and would not go in the next either.
                _ => 0,
            };
            if len == 0 {
                tracing::debug!("virtio-console: a control answer dropped (unusable buffer)");
            }
            self.control.delivered();
            used |= queue.add_used(mem, head, len).is_ok();
        }
        used
    }
}

/// Copy the chain's device-readable bytes to `out`. Errors drop the
/// output, never stop the guest: a reader that went away (EPIPE) or a
/// buffer outside guest memory.
fn copy_out(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    out: &mut Box<dyn Write + Send>,
    buf: &mut [u8],
) {
    let Ok(mut reader) = Reader::new(mem, chain) else {
        tracing::debug!("virtio-console: a transmit buffer outside guest memory");
        return;
    };
    loop {
        match reader.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_F_VERSION_1 | 1 << F_MULTIPORT
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }

    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        match role(index) {
            Role::PortTx(port) => {
                if let Some(q) = queues.get_mut(index) {
                    used |= self.transmit(port, q, mem);
                }
            }
            Role::ControlTx => {
                if let Some(q) = queues.get_mut(CONTROL_TX) {
                    used |= self.control_in(q, mem);
                }
            }
            Role::ControlRx | Role::PortRx => {}
        }
        // Answers go out once the driver has given buffers for them.
        if let Some(q) = queues.get_mut(CONTROL_RX).filter(|q| q.ready()) {
            used |= self.control_out(q, mem);
        }
        used
    }

    fn reset(&mut self) {
        self.control.reset();
    }
}
