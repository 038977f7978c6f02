//! The bytes isola sends the guest besides the spec, shared by isola and
//! isola-init so the two sides cannot drift.
//!
//! COM1 input with `-i` (no terminal) is framed: a data byte 0xff is sent as
//! 0xff 0xff, and 0xff 0x00 ends the input, in band, so that no marker on
//! another UART can overtake the last bytes. On COM2, next to the one-byte
//! signal numbers, [`WINDOW_SIZE`] starts a new window size with `-t`, and
//! [`GO_AHEAD`] lets a parked isola-init start the workload, and
//! [`STDIO_DRAINED`] says the host has all of the stdio ports' output.
//!
//! Under QEMU (`isola.status=com2` on the kernel command line) isola-init
//! also writes records on COM2 that the host takes out of the stderr
//! stream: [`record`] of each [`Mark::record`](crate::ports::Mark::record)
//! (`init`, `parked`, `started`), and `("exit N")`.

const ESCAPE: u8 = 0xff;
/// The end of the input on COM1.
pub const END: [u8; 2] = [ESCAPE, 0x00];
/// On COM2: rows then columns follow, each a big-endian u16.
pub const WINDOW_SIZE: u8 = 0xfe;
/// On COM2: start the workload, to an isola-init the spec asked to park
/// (see `GuestSpec::park`). Neither a signal number (1..=64) nor
/// [`WINDOW_SIZE`]; inside a window size's four bytes it is only data.
pub const GO_AHEAD: u8 = 0xfd;

/// On COM2: the host has received the end marker on both stdio ports
/// (see `GuestSpec::stdio_end`), so everything the workload wrote before
/// it: isola-init may report the status.
pub const STDIO_DRAINED: u8 = 0xfc;

/// Asks isola-init for its COM2 records, on the kernel command line.
pub const RECORDS_FLAG: &str = "isola.status=com2";
/// A record is an APC string, which terminals ignore: this, its body, then
/// [`RECORD_END`].
pub const RECORD_START: &str = "\x1b_isola-";
pub const RECORD_END: &str = "\x1b\\";

/// The record whose body is `body`.
pub fn record(body: &str) -> String {
    format!("{RECORD_START}{body}{RECORD_END}")
}

/// Appends `data`, framed, to `out`.
pub fn encode(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        out.push(b);
        if b == ESCAPE {
            out.push(ESCAPE);
        }
    }
}

/// The COM2 message for a window of `rows` by `cols`.
pub fn window_size(rows: u16, cols: u16) -> [u8; 5] {
    let [r0, r1] = rows.to_be_bytes();
    let [c0, c1] = cols.to_be_bytes();
    [WINDOW_SIZE, r0, r1, c0, c1]
}

/// Undoes [`encode`] and finds [`END`], a read at a time.
#[derive(Debug, Default)]
pub struct Decoder {
    escaped: bool,
    ended: bool,
}

impl Decoder {
    /// Appends the data in `framed` to `out`; stops at the end marker.
    pub fn decode(&mut self, framed: &[u8], out: &mut Vec<u8>) {
        for &b in framed {
            if self.ended {
                return;
            }
            match (self.escaped, b) {
                (false, ESCAPE) => self.escaped = true,
                (false, b) => out.push(b),
                (true, ESCAPE) => {
                    out.push(ESCAPE);
                    self.escaped = false;
                }
                (true, b) if b == END[1] => self.ended = true,
                // Reserved: dropped, so a later use cannot corrupt data.
                (true, _) => self.escaped = false,
            }
        }
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The input is over without a marker (the line hung up).
    pub fn end(&mut self) {
        self.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_encoded_decodes_across_reads() {
        let data: Vec<u8> = (0..=255u8).chain([0xff, 0xff, 0x00]).collect();
        let mut framed = Vec::new();
        encode(&data, &mut framed);
        framed.extend_from_slice(&END);
        framed.extend_from_slice(b"after the end");
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for chunk in framed.chunks(3) {
            d.decode(chunk, &mut out);
        }
        assert_eq!(out, data);
        assert!(d.ended());
        // A reserved escape is dropped.
        let mut d = Decoder::default();
        let mut out = Vec::new();
        d.decode(b"a\xff\x07b", &mut out);
        assert_eq!(out, b"ab");
        assert!(!d.ended());
    }

    #[test]
    fn window_sizes_are_big_endian() {
        assert_eq!(window_size(40, 300), [WINDOW_SIZE, 0, 40, 1, 0x2c]);
    }

    #[test]
    fn the_go_ahead_is_no_signal_and_no_window_size() {
        assert!(!(1..=64).contains(&GO_AHEAD));
        assert_ne!(GO_AHEAD, WINDOW_SIZE);
    }
}
