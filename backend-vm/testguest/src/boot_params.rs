//! The fields of Linux's boot_params "zero page" that the tests check,
//! read at their offsets from Documentation/arch/x86/zero-page.rst.

// Only the first 1 GiB is identity-mapped at entry; touching anything above
// it would fault, and with no IDT a fault is a triple fault.
const MAPPED_END: u64 = 1 << 30;
// E820_MAX_ENTRIES_ZEROPAGE: the table's room in the zero page.
const E820_MAX: u8 = 128;
// Linux's own limit is 2048; stop well before running through memory.
const CMDLINE_MAX: u64 = 4096;

const EXT_RAMDISK_IMAGE: u64 = 0x0c0;
const EXT_RAMDISK_SIZE: u64 = 0x0c4;
const EXT_CMD_LINE_PTR: u64 = 0x0c8;
const E820_ENTRIES: u64 = 0x1e8;
const RAMDISK_IMAGE: u64 = 0x218;
const RAMDISK_SIZE: u64 = 0x21c;
const CMD_LINE_PTR: u64 = 0x228;
const E820_TABLE: u64 = 0x2d0;
const E820_ENTRY_SIZE: u64 = 20;

pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// Guest memory the zero page points at.
pub enum Region {
    /// A null pointer: the monitor passed nothing.
    Absent,
    /// Outside what the guest can read (above 1 GiB, or at address 0, which
    /// a Rust slice cannot start at); the address, for the log.
    Unreadable(u64),
    Bytes(&'static [u8]),
}

pub struct BootParams {
    base: u64,
}

impl BootParams {
    /// `base` is the zero page's guest-physical address, which the boot
    /// protocol puts below 1 GiB.
    pub fn new(base: u64) -> Self {
        Self { base }
    }

    fn read<T: Copy>(&self, offset: u64) -> T {
        // SAFETY: the zero page is 4 KiB of mapped memory owned by the guest
        // and all offsets used are inside it; e820 entries are packed, hence
        // unaligned reads.
        unsafe { core::ptr::read_unaligned((self.base + offset) as *const T) }
    }

    pub fn e820_len(&self) -> u8 {
        self.read::<u8>(E820_ENTRIES).min(E820_MAX)
    }

    pub fn e820(&self, i: u8) -> E820Entry {
        let at = E820_TABLE + u64::from(i) * E820_ENTRY_SIZE;
        E820Entry {
            addr: self.read(at),
            size: self.read(at + 8),
            kind: self.read(at + 16),
        }
    }

    pub fn cmdline(&self) -> Region {
        let addr = self.wide(CMD_LINE_PTR, EXT_CMD_LINE_PTR);
        if addr == 0 {
            return Region::Absent;
        }
        if addr >= MAPPED_END {
            return Region::Unreadable(addr);
        }
        let max = CMDLINE_MAX.min(MAPPED_END - addr);
        let mut len = 0;
        // SAFETY: every byte read is below MAPPED_END, so identity-mapped.
        while len < max && unsafe { *((addr + len) as *const u8) } != 0 {
            len += 1;
        }
        memory(addr, len)
    }

    /// The initrd's address and size.
    pub fn initrd(&self) -> (u64, u64) {
        (
            self.wide(RAMDISK_IMAGE, EXT_RAMDISK_IMAGE),
            self.wide(RAMDISK_SIZE, EXT_RAMDISK_SIZE),
        )
    }

    /// A 64-bit value the zero page splits into a low and a high u32.
    fn wide(&self, low: u64, high: u64) -> u64 {
        u64::from(self.read::<u32>(low)) | u64::from(self.read::<u32>(high)) << 32
    }
}

/// `len` bytes of guest memory at `addr`, if they lie in the mapped first GiB.
pub fn memory(addr: u64, len: u64) -> Region {
    match addr.checked_add(len) {
        Some(end) if addr != 0 && end <= MAPPED_END => {
            // SAFETY: the range is identity-mapped, and the monitor does not
            // change what it passed the guest while the guest runs.
            Region::Bytes(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
        }
        _ => Region::Unreadable(addr),
    }
}
