//! What the loader handed the guest, whichever boot protocol it used: the
//! trait the zero page and PVH's hvm_start_info both answer, and safe reads
//! of the guest memory they point at.

// Both entries leave the first 1 GiB identity-mapped (the monitor's tables
// on the 64-bit path, our own on the PVH path) and nothing more; touching
// anything above it would fault, and with no IDT a fault is a triple fault.
pub const MAPPED_END: u64 = 1 << 30;
// Linux's own limit is 2048; stop well before running through memory.
const CMDLINE_MAX: u64 = 4096;

pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// Guest memory the boot information points at.
pub enum Region {
    /// A null pointer: the loader passed nothing.
    Absent,
    /// Outside what the guest can read (above 1 GiB, or at address 0, which
    /// a Rust slice cannot start at); the address, for the log.
    Unreadable(u64),
    Bytes(&'static [u8]),
}

/// One boot protocol's view of the memory map, command line and initrd.
/// The guest prints the same lines from either, so tests can compare them.
pub trait BootInfo {
    fn e820_len(&self) -> u32;
    /// Entry `i`, for `i` below `e820_len()`.
    fn e820(&self, i: u32) -> E820Entry;
    fn cmdline(&self) -> Region;
    /// The initrd's address and size; (0, 0) when there is none.
    fn initrd(&self) -> (u64, u64);
}

/// `len` bytes of guest memory at `addr`, if they lie in the mapped first GiB.
pub fn memory(addr: u64, len: u64) -> Region {
    match addr.checked_add(len) {
        Some(end) if addr != 0 && end <= MAPPED_END => {
            // SAFETY: the range is identity-mapped, and the loader does not
            // change what it passed the guest while the guest runs.
            Region::Bytes(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
        }
        _ => Region::Unreadable(addr),
    }
}

/// The NUL-terminated string at `addr` (0: none), without its NUL.
pub fn c_string(addr: u64) -> Region {
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
