//! The real-mode code an application processor runs after SIPI: it marks
//! its byte, chosen by its initial APIC ID, in the trampoline page and
//! halts for good. The BSP copies it below 1 MiB, where a SIPI can point.

use core::arch::global_asm;
use core::ptr::{read_volatile, write_volatile};

/// The page APs start in (SIPI vector 0x08). Free below 1 MiB: the zero
/// page is at 0x7000, the page tables at 0x9000-0xbfff, the GDT at 0x500,
/// the command line at 0x20000; the monitor's boot stack (0x8ff0) is left
/// by `_start` before any Rust code runs.
const PAGE: u64 = 0x8000;
pub const VECTOR: u8 = (PAGE >> 12) as u8;
/// Offset in the page of the marks: one byte for each APIC ID 0..=255,
/// after the code.
const MARKS: u64 = 0x800;
const MARK_COUNT: u64 = 256;

// After SIPI the AP is in real mode with CS = VECTOR << 8 and IP = 0, and
// IF clear. It needs no stack. CPUID.1:EBX[31:24] is its initial APIC ID,
// as the monitor sets it; the mark is a plain `inc` (no `lock`, which the
// PVM host does not emulate) since each AP has a byte of its own. The code
// is data to the BSP, so it sits in .rodata.
global_asm!(
    ".pushsection .rodata.trampoline, \"a\"",
    ".code16",
    ".global isola_trampoline_start",
    "isola_trampoline_start:",
    "    cli",
    "    mov ax, cs",
    "    mov ds, ax",
    "    mov eax, 1",
    "    cpuid",
    "    shr ebx, 24",
    "    inc byte ptr [bx + {marks}]",
    "2:  hlt",
    "    jmp 2b",
    ".global isola_trampoline_end",
    "isola_trampoline_end:",
    ".code64",
    ".popsection",
    marks = const MARKS,
);

extern "C" {
    static isola_trampoline_start: u8;
    static isola_trampoline_end: u8;
}

/// Copies the code into its page and clears the marks. Byte by byte with
/// volatile accesses, so the compiler emits no memcpy (`rep movs`).
pub fn install() {
    let start = &raw const isola_trampoline_start;
    let len = (&raw const isola_trampoline_end as usize) - (start as usize);
    // The code must end before the marks it writes.
    let len = len.min(MARKS as usize);
    for i in 0..len {
        // SAFETY: reads stay inside the blob between the two symbols; writes
        // go to the trampoline page, identity-mapped RAM that nothing else
        // uses (see PAGE).
        unsafe { write_volatile((PAGE as usize + i) as *mut u8, read_volatile(start.add(i))) };
    }
    for id in 0..MARK_COUNT {
        // SAFETY: the marks are inside the trampoline page.
        unsafe { write_volatile((PAGE + MARKS + id) as *mut u8, 0) };
    }
}

/// Whether the AP with this APIC ID has run the trampoline since `install`.
pub fn marked(apic_id: u8) -> bool {
    // SAFETY: inside the trampoline page; volatile, as an AP writes it.
    unsafe { read_volatile((PAGE + MARKS + u64::from(apic_id)) as *const u8) != 0 }
}
