//! The `timer` switch: the x2APIC timer, periodic, wakes the CPU from `hlt`
//! three times through the in-kernel irqchip; the IDT's handler counts.

use core::sync::atomic::Ordering;

use crate::cpu::{disable_interrupts, elapsed, rdtsc, wait_for_interrupt};
use crate::idt::{self, SPURIOUS_VECTOR, TICKS, TIMER_VECTOR};
use crate::port::outb;
use crate::uart::COM1;
use crate::x2apic;

const WANTED: u32 = 3;
// Divide by 16 and 0x10000 counts: a tick every ~1 ms on KVM's 1 GHz APIC
// bus, well above KVM's floor for periodic timers. There is nothing to
// calibrate against, and any sane rate will do.
const DIVIDE_BY_16: u64 = 0x3;
const INITIAL_COUNT: u64 = 0x1_0000;
const LVT_MASKED: u64 = 1 << 16;
const LVT_PERIODIC: u64 = 1 << 17;
const SPURIOUS_APIC_ENABLED: u64 = 1 << 8;
// Give up after this many wake-ups or TSC cycles (~1.6 s at 2.5 GHz).
const MAX_WAKEUPS: u32 = 1000;
const MAX_CYCLES: u64 = 4_000_000_000;
// Reads of the current count that may all see the same value before the
// timer is taken not to be running.
const COUNTING_POLLS: u32 = 100;
const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;

pub fn run() {
    if !x2apic::enable() {
        COM1.str("timer: no x2apic\n");
        return;
    }
    idt::load();
    // The 8259s reach the CPU through LINT0 (ExtINT), at vectors 0-15 until
    // programmed, which the IDT does not handle. Nothing should raise their
    // lines, but mask them all so nothing can.
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    x2apic::write(
        x2apic::SPURIOUS,
        SPURIOUS_APIC_ENABLED | u64::from(SPURIOUS_VECTOR),
    );
    x2apic::write(x2apic::TIMER_DIVIDE, DIVIDE_BY_16);
    x2apic::write(x2apic::LVT_TIMER, LVT_PERIODIC | u64::from(TIMER_VECTOR));
    // Writing the initial count starts the timer.
    x2apic::write(x2apic::TIMER_INITIAL, INITIAL_COUNT);

    // Interrupts are off again after `wait`, and were never on without it.
    let ticks = if counting() { wait() } else { 0 };
    x2apic::write(x2apic::LVT_TIMER, LVT_MASKED | u64::from(TIMER_VECTOR));
    x2apic::write(x2apic::TIMER_INITIAL, 0);
    if ticks >= WANTED {
        COM1.str("timer: ").dec(WANTED.into()).str(" ticks\n");
    } else {
        COM1.str("timer: ")
            .dec(ticks.into())
            .str(" ticks (gave up)\n");
    }
}

/// Whether the timer's count moves. A timer that does not count sends no
/// interrupt, and `hlt` would then never return.
fn counting() -> bool {
    let first = x2apic::read(x2apic::TIMER_CURRENT);
    (0..COUNTING_POLLS).any(|_| x2apic::read(x2apic::TIMER_CURRENT) != first)
}

/// Halts until `WANTED` ticks have come or the bounds run out; returns with
/// interrupts off and the ticks counted. The bounds are checked at each
/// wake-up, so they hold while ticks come; a timer that counts but whose
/// interrupt never arrives leaves the guest in `hlt` until the monitor's
/// deadline.
fn wait() -> u32 {
    let start = rdtsc();
    let mut wakeups = 0;
    loop {
        // Off while deciding, so a tick cannot land between the check and `hlt`.
        disable_interrupts();
        let ticks = TICKS.load(Ordering::Relaxed);
        if ticks >= WANTED || wakeups == MAX_WAKEUPS || elapsed(start, MAX_CYCLES) {
            return ticks;
        }
        wait_for_interrupt();
        wakeups += 1;
    }
}
