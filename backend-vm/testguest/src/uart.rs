//! The two 8250 UARTs: bytes, text and numbers out, bytes in, all polled.
//! Numbers are formatted by hand so no core::fmt code lands in the guest.

use crate::port::{inb, outb};

pub const COM1: Uart = Uart { base: 0x3f8 };
pub const COM2: Uart = Uart { base: 0x2f8 };

const THR: u16 = 0; // transmit holding register (write) / receive buffer (read)
const LSR: u16 = 5; // line status register
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_THR_EMPTY: u8 = 1 << 5;
// A UART that never reports "empty" must not hang the guest: after this
// many polls the byte is written anyway.
const TX_POLLS: u32 = 10_000;

pub struct Uart {
    base: u16,
}

impl Uart {
    pub fn byte(&self, b: u8) -> &Self {
        for _ in 0..TX_POLLS {
            if inb(self.base + LSR) & LSR_THR_EMPTY != 0 {
                break;
            }
        }
        outb(self.base + THR, b);
        self
    }

    pub fn bytes(&self, s: &[u8]) -> &Self {
        for &b in s {
            self.byte(b);
        }
        self
    }

    pub fn str(&self, s: &str) -> &Self {
        self.bytes(s.as_bytes())
    }

    /// `0x` and lower-case hex digits, no padding.
    pub fn hex(&self, mut v: u64) -> &Self {
        let mut buf = [0u8; 16];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.str("0x").bytes(&buf[i..])
    }

    pub fn dec(&self, mut v: u64) -> &Self {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&buf[i..])
    }

    /// One received byte, or None if none is waiting.
    pub fn try_read(&self) -> Option<u8> {
        if inb(self.base + LSR) & LSR_DATA_READY != 0 {
            Some(inb(self.base + THR))
        } else {
            None
        }
    }
}
