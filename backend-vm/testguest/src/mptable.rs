//! Finding and checking an Intel MultiProcessor Specification 1.4 table:
//! the `_MP_` floating pointer in the EBDA or the BIOS area, the `PCMP`
//! configuration table it points at, and that table's processor entries.

use crate::boot_info::{memory, Region};

// Where the specification says to look: the last KiB of base memory (the
// EBDA, where isola puts it) and the BIOS ROM area, on 16-byte boundaries.
const SEARCH: [(u64, u64); 2] = [(0x9_fc00, 0xa_0000), (0xf_0000, 0x10_0000)];
const FLOAT_SIGNATURE: &[u8] = b"_MP_";
const FLOAT_ALIGN: usize = 16;
const FLOAT_LEN: u64 = 16;
const FLOAT_PHYSPTR: usize = 4;
const FLOAT_LENGTH: usize = 8; // in 16-byte units
const FLOAT_FEATURE1: usize = 11; // non-zero: a default configuration, no table
const TABLE_SIGNATURE: &[u8] = b"PCMP";
const TABLE_BASE_LENGTH: usize = 4;
const TABLE_ENTRY_COUNT: usize = 34;
const TABLE_HEADER_LEN: usize = 44;

const PROCESSOR: u8 = 0;
const PROCESSOR_LEN: usize = 20;
// Bus, I/O APIC, I/O interrupt, local interrupt.
const LAST_SHORT_TYPE: u8 = 4;
const SHORT_LEN: usize = 8;
const CPU_ENABLED: u8 = 1 << 0;

pub struct Processor {
    pub apic_id: u8,
    pub enabled: bool,
}

/// A configuration table whose signature, checksum and entries checked out.
pub struct Table {
    entries: &'static [u8],
    count: u16,
}

/// The first floating pointer found, if it and its table are valid.
pub fn find() -> Option<Table> {
    let physptr = SEARCH
        .iter()
        .find_map(|&(start, end)| (start..end).step_by(FLOAT_ALIGN).find_map(floating_pointer))?;
    let table = config_table(physptr)?;
    // An entry of a type the specification does not define, or one that
    // runs past the table's end, makes the whole table suspect.
    (table.entries().count() == usize::from(table.count)).then_some(table)
}

/// The configuration table's address, if a valid floating pointer is at `addr`.
fn floating_pointer(addr: u64) -> Option<u64> {
    let head = bytes(addr, FLOAT_LEN)?;
    if &head[..4] != FLOAT_SIGNATURE {
        return None;
    }
    let all = bytes(addr, u64::from(head[FLOAT_LENGTH]) * FLOAT_LEN)?;
    if all.is_empty() || checksum(all) != 0 || head[FLOAT_FEATURE1] != 0 {
        return None;
    }
    let physptr = u32_at(head, FLOAT_PHYSPTR);
    (physptr != 0).then_some(u64::from(physptr))
}

fn config_table(addr: u64) -> Option<Table> {
    let header = bytes(addr, TABLE_HEADER_LEN as u64)?;
    if &header[..4] != TABLE_SIGNATURE {
        return None;
    }
    let length = usize::from(u16_at(header, TABLE_BASE_LENGTH));
    if length < TABLE_HEADER_LEN {
        return None;
    }
    let all = bytes(addr, length as u64)?;
    (checksum(all) == 0).then(|| Table {
        entries: &all[TABLE_HEADER_LEN..],
        count: u16_at(header, TABLE_ENTRY_COUNT),
    })
}

impl Table {
    pub fn processors(&self) -> impl Iterator<Item = Processor> {
        self.entries()
            .filter(|e| e[0] == PROCESSOR)
            .map(|e| Processor {
                apic_id: e[1],
                enabled: e[3] & CPU_ENABLED != 0,
            })
    }

    /// The entries in order, each with its type byte first; it stops early
    /// at one it cannot size or that does not fit.
    fn entries(&self) -> impl Iterator<Item = &'static [u8]> {
        let mut rest = self.entries;
        (0..self.count).map_while(move |_| {
            let len = match *rest.first()? {
                PROCESSOR => PROCESSOR_LEN,
                t if t <= LAST_SHORT_TYPE => SHORT_LEN,
                _ => return None,
            };
            if rest.len() < len {
                return None;
            }
            let (entry, after) = rest.split_at(len);
            rest = after;
            Some(entry)
        })
    }
}

fn bytes(addr: u64, len: u64) -> Option<&'static [u8]> {
    match memory(addr, len) {
        Region::Bytes(b) => Some(b),
        _ => None,
    }
}

/// The specification's checksum: all bytes add up to zero, modulo 256.
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
