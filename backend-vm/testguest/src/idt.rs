//! The guest's IDT, with the two vectors the APIC timer uses: its own,
//! whose handler counts ticks, and the APIC's spurious vector. Every other
//! vector stays absent, so a stray interrupt or an exception still ends in
//! a triple fault, as it did before the guest had an IDT.

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::AtomicU32;

use crate::x2apic;

pub const TIMER_VECTOR: u8 = 0x40;
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Timer interrupts taken. Only the handler writes it, and only this one
/// CPU takes interrupts, so its plain (unlocked) `inc` is enough.
pub static TICKS: AtomicU32 = AtomicU32::new(0);

// The handlers save what they touch: they interrupt code that knows nothing
// of them. iretq restores RFLAGS, so `inc` may change the flags. The red
// zone is off on this target, so pushing below the interrupted RSP is safe.
// A spurious interrupt is never in service, so its handler sends no EOI.
global_asm!(
    ".pushsection .text.isr, \"ax\"",
    ".global isola_timer_isr",
    "isola_timer_isr:",
    "    push rax",
    "    push rcx",
    "    push rdx",
    "    inc dword ptr [rip + {ticks}]",
    "    mov ecx, {eoi}",
    "    xor eax, eax",
    "    xor edx, edx",
    "    wrmsr",
    "    pop rdx",
    "    pop rcx",
    "    pop rax",
    "    iretq",
    ".global isola_spurious_isr",
    "isola_spurious_isr:",
    "    iretq",
    ".popsection",
    ticks = sym TICKS,
    eoi = const x2apic::EOI,
);

extern "C" {
    fn isola_timer_isr();
    fn isola_spurious_isr();
}

/// A 64-bit IDT entry.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    kind: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const INTERRUPT_GATE: u8 = 0x8e;

impl Gate {
    const ABSENT: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        kind: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, selector: u16) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector,
            ist: 0,
            kind: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Table(UnsafeCell<[Gate; 256]>);

// SAFETY: only `load` writes the table, on the one CPU that runs Rust code,
// before the IDT register points at it.
unsafe impl Sync for Table {}

// All zeros, so it lands in .bss and costs the image nothing.
static IDT: Table = Table(UnsafeCell::new([Gate::ABSENT; 256]));

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Fills in the two gates and makes this the CPU's IDT. Interrupts must be
/// off until then (they are from boot: the monitor starts us with IF clear).
pub fn load() {
    let selector: u16;
    // SAFETY: reading CS has no effects. The gates use the code segment we
    // run in (0x08: the monitor's 64-bit code selector, or ours after PVH).
    unsafe { asm!("mov {0:x}, cs", out(reg) selector, options(nomem, nostack, preserves_flags)) };
    let gates = IDT.0.get();
    // SAFETY: see `impl Sync for Table`; nothing holds a reference into it.
    unsafe {
        (*gates)[usize::from(TIMER_VECTOR)] =
            Gate::interrupt(isola_timer_isr as *const () as u64, selector);
        (*gates)[usize::from(SPURIOUS_VECTOR)] =
            Gate::interrupt(isola_spurious_isr as *const () as u64, selector);
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<[Gate; 256]>() - 1) as u16,
        base: gates as u64,
    };
    // SAFETY: the table is static, so it outlives its use; its two present
    // gates point at handlers that return with iretq.
    unsafe { asm!("lidt [{0}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}
