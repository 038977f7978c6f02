//! virtio-console's control messages (virtio 1.2, 5.3.6.2): what the
//! driver says on the control transmit queue and what the device answers
//! on the control receive queue, so that the driver adds each port, learns
//! its name and sees a host on the other end.

use std::collections::VecDeque;

/// struct virtio_console_control: id (le32), event (le16), value (le16).
pub const MESSAGE_BYTES: usize = 8;
pub const DEVICE_READY: u16 = 0;
pub const DEVICE_ADD: u16 = 1;
pub const PORT_READY: u16 = 3;
pub const PORT_OPEN: u16 = 6;
pub const PORT_NAME: u16 = 7;
/// Answers waiting for the driver's receive buffers, at most: a driver
/// that keeps asking without giving buffers gets no more.
const MAX_PENDING: usize = 64;

/// One control message as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub id: u32,
    pub event: u16,
    pub value: u16,
}

impl Message {
    pub fn parse(bytes: &[u8; MESSAGE_BYTES]) -> Message {
        Message {
            id: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            event: u16::from_le_bytes([bytes[4], bytes[5]]),
            value: u16::from_le_bytes([bytes[6], bytes[7]]),
        }
    }

    /// The message followed by `extra` (a port's name).
    pub fn encode(&self, extra: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(MESSAGE_BYTES + extra.len());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.event.to_le_bytes());
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(extra);
        out
    }
}

/// The device's side of the conversation: the answers not yet delivered.
#[derive(Default)]
pub struct Control {
    pending: VecDeque<Vec<u8>>,
}

impl Control {
    /// Act on a message from the driver, for a device whose ports are
    /// named `names` (port `i` is `names[i]`).
    pub fn on_message(&mut self, message: Message, names: &[&str]) {
        let port = usize::try_from(message.id)
            .ok()
            .and_then(|i| names.get(i).map(|n| (message.id, *n)));
        match (message.event, message.value, port) {
            // The driver is up: offer every port.
            (DEVICE_READY, 1, _) => {
                for id in 0..names.len() as u32 {
                    self.push(
                        Message {
                            id,
                            event: DEVICE_ADD,
                            value: 0,
                        }
                        .encode(&[]),
                    );
                }
            }
            // The driver added the port: its name, and a host that is
            // there (else the guest's writes would wait for one).
            (PORT_READY, 1, Some((id, name))) => {
                self.push(
                    Message {
                        id,
                        event: PORT_NAME,
                        value: 0,
                    }
                    .encode(name.as_bytes()),
                );
                self.push(
                    Message {
                        id,
                        event: PORT_OPEN,
                        value: 1,
                    }
                    .encode(&[]),
                );
            }
            (PORT_OPEN, value, Some((_, name))) => {
                tracing::debug!(port = name, open = value == 1, "virtio-console: the guest");
            }
            _ => tracing::debug!(?message, "virtio-console: a control message ignored"),
        }
    }

    fn push(&mut self, bytes: Vec<u8>) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back(bytes);
        } else {
            tracing::debug!("virtio-console: too many control answers pending; one dropped");
        }
    }

    pub fn next(&self) -> Option<&[u8]> {
        self.pending.front().map(Vec::as_slice)
    }

    pub fn delivered(&mut self) {
        self.pending.pop_front();
    }

    pub fn reset(&mut self) {
        self.pending.clear();
    }
}
