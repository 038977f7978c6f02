//! This CPU's local APIC in x2APIC mode, where every register is an MSR:
//! the xAPIC's MMIO page at 0xfee00000 lies outside the 1 GiB identity-mapped
//! at entry, and x2APIC needs no mapping at all.

use crate::cpu::{cpuid_ecx, rdmsr, wrmsr};

const IA32_APIC_BASE: u32 = 0x1b;
const BASE_X2APIC: u64 = 1 << 10;
const BASE_ENABLED: u64 = 1 << 11;
const CPUID_1_ECX_X2APIC: u32 = 1 << 21;

pub const ID: u32 = 0x802;
pub const EOI: u32 = 0x80b;
pub const SPURIOUS: u32 = 0x80f;
pub const ICR: u32 = 0x830;
pub const LVT_TIMER: u32 = 0x832;
pub const TIMER_INITIAL: u32 = 0x838;
pub const TIMER_CURRENT: u32 = 0x839;
pub const TIMER_DIVIDE: u32 = 0x83e;

/// Puts the APIC in x2APIC mode, keeping its base; false if the CPU has
/// no x2APIC. Calling it again is harmless.
pub fn enable() -> bool {
    if cpuid_ecx(1) & CPUID_1_ECX_X2APIC == 0 {
        return false;
    }
    let base = rdmsr(IA32_APIC_BASE);
    if base & BASE_X2APIC != 0 {
        return true;
    }
    // Going from disabled straight to x2APIC mode is an invalid transition
    // (#GP, and with no handler a triple fault): enable the xAPIC first.
    if base & BASE_ENABLED == 0 {
        wrmsr(IA32_APIC_BASE, base | BASE_ENABLED);
    }
    wrmsr(IA32_APIC_BASE, base | BASE_ENABLED | BASE_X2APIC);
    true
}

/// Only once `enable` has returned true.
pub fn read(register: u32) -> u64 {
    rdmsr(register)
}

/// Only once `enable` has returned true.
pub fn write(register: u32, value: u64) {
    wrmsr(register, value)
}

/// This CPU's x2APIC ID; only once `enable` has returned true.
pub fn id() -> u32 {
    read(ID) as u32
}
