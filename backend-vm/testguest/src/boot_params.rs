//! The fields of Linux's boot_params "zero page" that the tests check,
//! read at their offsets from Documentation/arch/x86/zero-page.rst.

use crate::boot_info::{c_string, BootInfo, E820Entry, Region};

// E820_MAX_ENTRIES_ZEROPAGE: the table's room in the zero page.
const E820_MAX: u8 = 128;

const EXT_RAMDISK_IMAGE: u64 = 0x0c0;
const EXT_RAMDISK_SIZE: u64 = 0x0c4;
const EXT_CMD_LINE_PTR: u64 = 0x0c8;
const E820_ENTRIES: u64 = 0x1e8;
const RAMDISK_IMAGE: u64 = 0x218;
const RAMDISK_SIZE: u64 = 0x21c;
const CMD_LINE_PTR: u64 = 0x228;
const E820_TABLE: u64 = 0x2d0;
const E820_ENTRY_SIZE: u64 = 20;

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

    /// A 64-bit value the zero page splits into a low and a high u32.
    fn wide(&self, low: u64, high: u64) -> u64 {
        u64::from(self.read::<u32>(low)) | u64::from(self.read::<u32>(high)) << 32
    }
}

impl BootInfo for BootParams {
    fn e820_len(&self) -> u32 {
        self.read::<u8>(E820_ENTRIES).min(E820_MAX).into()
    }

    fn e820(&self, i: u32) -> E820Entry {
        let at = E820_TABLE + u64::from(i) * E820_ENTRY_SIZE;
        E820Entry {
            addr: self.read(at),
            size: self.read(at + 8),
            kind: self.read(at + 16),
        }
    }

    fn cmdline(&self) -> Region {
        c_string(self.wide(CMD_LINE_PTR, EXT_CMD_LINE_PTR))
    }

    fn initrd(&self) -> (u64, u64) {
        (
            self.wide(RAMDISK_IMAGE, EXT_RAMDISK_IMAGE),
            self.wide(RAMDISK_SIZE, EXT_RAMDISK_SIZE),
        )
    }
}
