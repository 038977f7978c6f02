//! The `smp` switch: every enabled processor in the MP table other than
//! this one is started by INIT-SIPI-SIPI through the x2APIC into the
//! real-mode trampoline, and reported as started once it has marked its byte.

use crate::cpu::{elapsed, pause, rdtsc};
use crate::mptable::{self, Processor, Table};
use crate::trampoline;
use crate::uart::COM1;
use crate::x2apic;

// ICR delivery modes, with the level bit (14) set as INIT requires.
const ICR_INIT: u64 = 0x4500;
const ICR_STARTUP: u64 = 0x4600;
// Intel's sequence waits 10 ms after INIT and 200 us after each SIPI. KVM
// acts on them in order without waiting, so these are token pauses, in TSC
// cycles (at 2.5 GHz: 0.4 ms and 0.1 ms).
const INIT_PAUSE: u64 = 1_000_000;
const SIPI_PAUSE: u64 = 250_000;
// How long all APs get to mark their bytes: ~1 s at 2.5 GHz. On PVM they
// take ~2 ms.
const START_CYCLES: u64 = 2_500_000_000;

pub fn run() {
    let Some(table) = mptable::find() else {
        COM1.str("smp: no MP table\n");
        return;
    };
    let cpus = table.processors().filter(|p| p.enabled).count();
    COM1.str("smp: ").dec(cpus as u64).str(" cpus\n");
    // A lone processor is the one running this.
    if cpus <= 1 {
        return;
    }
    if !x2apic::enable() {
        COM1.str("smp: no x2apic\n");
        return;
    }
    let me = x2apic::id();
    trampoline::install();
    for p in others(&table, me) {
        start(p.apic_id);
    }
    wait(&table, me);
    for p in others(&table, me) {
        COM1.str("smp: cpu ").dec(p.apic_id.into());
        if trampoline::marked(p.apic_id) {
            COM1.str(" started\n");
        } else {
            COM1.str(" did not start\n");
        }
    }
}

/// The enabled processors that are not this one (whose x2APIC ID is `me`).
fn others(table: &Table, me: u32) -> impl Iterator<Item = Processor> + '_ {
    table
        .processors()
        .filter(move |p| p.enabled && u32::from(p.apic_id) != me)
}

/// INIT, then SIPI twice (the second is dropped by a CPU already started).
fn start(apic_id: u8) {
    let destination = u64::from(apic_id) << 32;
    x2apic::write(x2apic::ICR, destination | ICR_INIT);
    pause(INIT_PAUSE);
    for _ in 0..2 {
        x2apic::write(
            x2apic::ICR,
            destination | ICR_STARTUP | u64::from(trampoline::VECTOR),
        );
        pause(SIPI_PAUSE);
    }
}

/// Until every other processor has marked its byte, or the time is up.
fn wait(table: &Table, me: u32) {
    let begin = rdtsc();
    while !others(table, me).all(|p| trampoline::marked(p.apic_id)) {
        if elapsed(begin, START_CYCLES) {
            return;
        }
    }
}
