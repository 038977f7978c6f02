//! The privileged x86 instructions the APIC code needs, each wrapped once:
//! cpuid, MSRs, the TSC, and interrupts off, on and awaited.
//! All are on the list the PVM host is known to emulate.

use core::arch::asm;

/// ECX of CPUID leaf `leaf` (subleaf 0), the register holding the feature
/// bits the guest checks.
pub fn cpuid_ecx(leaf: u32) -> u32 {
    let ecx: u32;
    // SAFETY: cpuid only reads CPU identification. It also writes rbx, which
    // LLVM reserves, so rbx is kept in a scratch register and put back.
    unsafe {
        asm!(
            "mov {saved}, rbx",
            "cpuid",
            "mov rbx, {saved}",
            saved = out(reg) _,
            inout("eax") leaf => _,
            inout("ecx") 0u32 => ecx,
            out("edx") _,
            options(nomem, nostack, preserves_flags),
        );
    }
    ecx
}

pub fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: callers read only MSRs that exist in the mode the CPU is in
    // (a missing one would fault, and with no handler triple-fault).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    u64::from(high) << 32 | u64::from(low)
}

pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: callers write only the APIC's MSRs, with values valid for the
    // mode it is in. Not `nomem`: an IPI sent through the ICR must come
    // after the memory writes (the trampoline) that precede it in the code.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

pub fn rdtsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: reading the time-stamp counter has no side effects.
    unsafe {
        asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    u64::from(high) << 32 | u64::from(low)
}

/// Whether `cycles` TSC cycles have passed since `start`.
pub fn elapsed(start: u64, cycles: u64) -> bool {
    rdtsc().wrapping_sub(start) >= cycles
}

/// Spins for `cycles` TSC cycles. The TSC is the one clock that runs at a
/// known pace under KVM: counting loop rounds instead would mean one bound
/// for a host that emulates every instruction (~4 M/s on PVM) and another,
/// a thousand times larger, for one that runs them natively.
pub fn pause(cycles: u64) {
    let start = rdtsc();
    while !elapsed(start, cycles) {}
}

pub fn disable_interrupts() {
    // SAFETY: clearing IF only defers interrupts. Not `nomem`, so memory an
    // interrupt handler writes is read afresh after this.
    unsafe { asm!("cli", options(nostack)) }
}

/// Enables interrupts and halts until one has been handled. `sti` holds
/// interrupts off for one more instruction, so one that is already pending
/// wakes the `hlt` rather than slipping in before it and being missed.
pub fn wait_for_interrupt() {
    // SAFETY: the IDT has a handler for every vector that is unmasked when
    // this runs; not `nomem`, as those handlers write memory.
    unsafe { asm!("sti", "hlt", options(nostack)) }
}
