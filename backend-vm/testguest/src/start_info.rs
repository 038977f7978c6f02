//! PVH's `struct hvm_start_info` (Xen's public/arch-x86/hvm/start_info.h),
//! read where EBX pointed at entry: its memory map, command line and first
//! module, which the PVH path prints in place of the zero page's.

use crate::boot_info::{c_string, memory, BootInfo, E820Entry, Region};

const MAGIC: u32 = 0x336e_c578;
const LEN: u64 = 56;
const VERSION: usize = 4;
const NR_MODULES: usize = 12;
const MODLIST_PADDR: usize = 16;
const CMDLINE_PADDR: usize = 24;
const MEMMAP_PADDR: usize = 40;
const MEMMAP_ENTRIES: usize = 48;
/// The first version with the memory map.
const MEMMAP_VERSION: u32 = 1;
// struct hvm_modlist_entry { paddr, size, cmdline_paddr, reserved }: u64s.
const MODULE_LEN: u64 = 32;
// struct hvm_memmap_table_entry { addr: u64, size: u64, type: u32, reserved: u32 }.
const MEMMAP_ENTRY_LEN: usize = 24;
// The zero page's room, so that neither path prints more entries than the
// other could.
const MEMMAP_MAX: u32 = 128;

/// Why EBX did not lead to a start info.
pub enum Invalid {
    Unreadable,
    Magic(u32),
}

pub struct StartInfo {
    /// The memory map's entries, trailing all-zero ones dropped.
    memmap: &'static [u8],
    cmdline: u64,
    initrd: (u64, u64),
}

impl StartInfo {
    /// What the guest reports when the start info is unusable: nothing.
    pub const EMPTY: StartInfo = StartInfo {
        memmap: &[],
        cmdline: 0,
        initrd: (0, 0),
    };

    /// Reads the start info at `addr`, checking its magic. Tables it points
    /// at that the guest cannot read are taken as absent.
    pub fn new(addr: u64) -> Result<Self, Invalid> {
        let Region::Bytes(info) = memory(addr, LEN) else {
            return Err(Invalid::Unreadable);
        };
        let magic = u32_at(info, 0);
        if magic != MAGIC {
            return Err(Invalid::Magic(magic));
        }
        let memmap = if u32_at(info, VERSION) >= MEMMAP_VERSION {
            memmap(u64_at(info, MEMMAP_PADDR), u32_at(info, MEMMAP_ENTRIES))
        } else {
            &[]
        };
        Ok(StartInfo {
            memmap,
            cmdline: u64_at(info, CMDLINE_PADDR),
            initrd: first_module(info),
        })
    }
}

/// The table's bytes, up to its last entry that is not all zeros: QEMU's
/// firmware hands over a fixed-size table, zero-padded.
fn memmap(addr: u64, entries: u32) -> &'static [u8] {
    let len = entries.min(MEMMAP_MAX) as usize * MEMMAP_ENTRY_LEN;
    let Region::Bytes(table) = memory(addr, len as u64) else {
        return &[];
    };
    let used = table
        .chunks_exact(MEMMAP_ENTRY_LEN)
        .rposition(|e| e[..20].iter().any(|&b| b != 0))
        .map_or(0, |last| last + 1);
    &table[..used * MEMMAP_ENTRY_LEN]
}

/// The first module is the initrd, as Linux takes it. A module list at
/// address 0 counts as none: QEMU's qboot says one module even without an
/// initrd, and leaves the list's address 0.
fn first_module(info: &[u8]) -> (u64, u64) {
    if u32_at(info, NR_MODULES) == 0 {
        return (0, 0);
    }
    match memory(u64_at(info, MODLIST_PADDR), MODULE_LEN) {
        Region::Bytes(module) => (u64_at(module, 0), u64_at(module, 8)),
        _ => (0, 0),
    }
}

impl BootInfo for StartInfo {
    fn e820_len(&self) -> u32 {
        (self.memmap.len() / MEMMAP_ENTRY_LEN) as u32
    }

    fn e820(&self, i: u32) -> E820Entry {
        let e = &self.memmap[i as usize * MEMMAP_ENTRY_LEN..];
        E820Entry {
            addr: u64_at(e, 0),
            size: u64_at(e, 8),
            kind: u32_at(e, 16),
        }
    }

    fn cmdline(&self) -> Region {
        c_string(self.cmdline)
    }

    fn initrd(&self) -> (u64, u64) {
        self.initrd
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | u64::from(u32_at(b, at + 4)) << 32
}
