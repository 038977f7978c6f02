//! The Intel MultiProcessor Specification 1.4 table, so a guest (Linux, or
//! the test guest) finds every vCPU, the IOAPIC and how the ISA IRQs reach
//! it, without ACPI. It sits in the EBDA, which the e820 map leaves out of RAM.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error::BootError;

/// The floating pointer structure, then the configuration table right after.
pub const START: u64 = 0x9fc00;
/// The EBDA ends at 640 KiB.
const END: u64 = 0xa0000;
const LAPIC_ADDRESS: u32 = 0xfee0_0000;
const IOAPIC_ADDRESS: u32 = 0xfec0_0000;
const IOAPIC_PINS: u8 = 24;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const SPEC_REVISION: u8 = 4;

const HEADER_LEN: usize = 44;
const CPU_ENTRY_LEN: usize = 20;
const SMALL_ENTRY_LEN: usize = 8;

/// The largest vCPU count whose table fits in the EBDA.
pub const MAX_CPUS: u8 =
    (((END - START) as usize - 16 - HEADER_LEN - SMALL_ENTRY_LEN * (4 + IOAPIC_PINS as usize))
        / CPU_ENTRY_LEN) as u8;

/// The table for `cpus` vCPUs with APIC IDs 0..cpus (0 the boot CPU).
pub fn build(cpus: u8) -> Result<Vec<u8>, BootError> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(BootError::Cpus {
            cpus,
            max: MAX_CPUS,
        });
    }
    let ioapic_id = cpus;
    let mut entries = Vec::new();
    for id in 0..cpus {
        // Enabled, and bit 1 for the boot processor.
        let flags = 1 | if id == 0 { 2 } else { 0 };
        entries.push(0u8); // processor
        entries.extend([id, APIC_VERSION, flags]);
        entries.extend(0x600u32.to_le_bytes()); // family 6 signature
        entries.extend(0x201u32.to_le_bytes()); // FPU | APIC feature flags
        entries.extend([0u8; 8]);
    }
    entries.extend([1u8, 0]); // bus 0
    entries.extend(*b"ISA   ");
    entries.extend([2u8, ioapic_id, IOAPIC_VERSION, 1]); // enabled IOAPIC
    entries.extend(IOAPIC_ADDRESS.to_le_bytes());
    for pin in 0..IOAPIC_PINS {
        // An INT from ISA IRQ `pin` to the IOAPIC pin of the same number,
        // bus-default polarity and trigger.
        entries.extend([3u8, 0, 0, 0, 0, pin, ioapic_id, pin]);
    }
    // LINT0 is the PIC's ExtINT (on the boot CPU), LINT1 the NMI (on all).
    entries.extend([4u8, 3, 0, 0, 0, 0, 0, 0]);
    entries.extend([4u8, 1, 0, 0, 0, 0, 0xff, 1]);
    let count = cpus as u16 + 2 + IOAPIC_PINS as u16 + 2;

    let table_at = START + 16;
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend(*b"PCMP");
    header.extend(((HEADER_LEN + entries.len()) as u16).to_le_bytes());
    header.extend([SPEC_REVISION, 0]); // checksum filled below
    header.extend(*b"ISOLA   ");
    header.extend(*b"isola-vm    ");
    header.extend([0u8; 6]); // no OEM table
    header.extend(count.to_le_bytes());
    header.extend(LAPIC_ADDRESS.to_le_bytes());
    header.extend([0u8; 4]); // no extended table
    let mut table = header;
    table.extend(entries);
    table[7] = checksum(&table);

    let mut floating = Vec::with_capacity(16);
    floating.extend(*b"_MP_");
    floating.extend((table_at as u32).to_le_bytes());
    floating.extend([1, SPEC_REVISION, 0, 0, 0, 0, 0, 0]);
    floating[10] = checksum(&floating);

    floating.extend(table);
    Ok(floating)
}

pub fn write(mem: &GuestMemoryMmap, cpus: u8) -> Result<(), BootError> {
    let bytes = build(cpus)?;
    mem.write_slice(&bytes, GuestAddress(START))
        .map_err(|source| BootError::Table {
            what: "MP table",
            source,
        })
}

/// The byte that makes the sum of `bytes` zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    #[test]
    fn checksums_lengths_and_processors() {
        for cpus in [1u8, 2, 4, MAX_CPUS] {
            let t = build(cpus).unwrap();
            assert!(
                START + t.len() as u64 <= END,
                "{cpus} cpus: {} bytes",
                t.len()
            );
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(sum(&t[..16]), 0);
            assert_eq!(
                u32::from_le_bytes(t[4..8].try_into().unwrap()) as u64,
                START + 16
            );
            let table = &t[16..];
            assert_eq!(&table[..4], b"PCMP");
            let len = u16::from_le_bytes([table[4], table[5]]) as usize;
            assert_eq!(len, table.len());
            assert_eq!(sum(table), 0);
            let count = u16::from_le_bytes([table[34], table[35]]) as usize;
            // Walk the entries by type, as a guest does.
            let (mut at, mut seen, mut procs) = (HEADER_LEN, 0, Vec::new());
            while at < len {
                let size = if table[at] == 0 {
                    CPU_ENTRY_LEN
                } else {
                    SMALL_ENTRY_LEN
                };
                if table[at] == 0 {
                    procs.push((table[at + 1], table[at + 3]));
                }
                at += size;
                seen += 1;
            }
            assert_eq!((at, seen), (len, count));
            assert_eq!(procs.len(), cpus as usize);
            assert_eq!(procs[0], (0, 3), "the boot CPU is enabled and flagged BSP");
            assert!(procs[1..]
                .iter()
                .enumerate()
                .all(|(i, p)| *p == (i as u8 + 1, 1)));
        }
    }

    #[test]
    fn cpu_counts_out_of_range_are_refused() {
        assert!(build(0).is_err());
        assert!(build(MAX_CPUS + 1).is_err());
    }
}
