//! isola-testguest: a bare-metal x86-64 guest the KVM monitor's tests boot
//! like a Linux vmlinux (64-bit entry or PVH); it reports on COM1 what the
//! monitor handed it.
#![no_std]
#![no_main]

mod boot_info;
mod boot_params;
mod cmdline;
mod cpu;
mod entry;
mod idt;
mod mptable;
mod port;
mod pvh;
mod smp;
mod start_info;
mod timer;
mod trampoline;
mod uart;
mod x2apic;

use core::mem::MaybeUninit;

use boot_info::{BootInfo, Region};
use boot_params::BootParams;
use start_info::{Invalid, StartInfo};
use uart::{Uart, COM1, COM2};

// QEMU's isa-debug-exit port: the byte written is the guest's exit status.
const EXIT_PORT: u16 = 0xf4;
// isola's boot-timer port: the monitor notes when each mark is written
// (isola-init writes 1 when it starts and 2 when the workload starts).
const BOOT_TIMER_PORT: u16 = 0x4f0;
const ECHO_MAX: usize = 120;
// Consecutive empty polls before giving up on echo input, so a monitor that
// never delivers input still lets the guest exit.
const ECHO_IDLE_POLLS: u32 = 200_000;
const INITRD_HEAD: u64 = 16;

/// Entered from `_start` (Linux's 64-bit protocol, `info` = the zero page)
/// or from the PVH entry (`info` = hvm_start_info); `protocol` says which.
extern "C" fn main(info: u64, protocol: u64) -> ! {
    port::outb(BOOT_TIMER_PORT, 1);
    let start;
    let params;
    let mut invalid = None;
    let boot: &dyn BootInfo = if protocol == entry::PVH {
        match StartInfo::new(info) {
            Ok(s) => {
                start = s;
                &start
            }
            Err(e) => {
                invalid = Some(e);
                // A reference to the constant itself: copying it onto the
                // stack would cost a memcpy (`rep movs`) for the emulator.
                &StartInfo::EMPTY
            }
        }
    } else {
        params = BootParams::new(info);
        &params
    };
    let line = match boot.cmdline() {
        Region::Bytes(line) => line,
        _ => &[],
    };
    // `quiet`: straight to the exit port, so that a benchmark times the
    // monitor rather than this guest's serial output, which the PVM
    // emulator makes cost more than the monitor itself.
    if cmdline::has_token(line, b"quiet") {
        exit(cmdline::exit_status(line));
    }

    COM1.str("isola-testguest: started\n");
    COM1.str(if protocol == entry::PVH {
        "boot: pvh\n"
    } else {
        "boot: linux64\n"
    });
    if let Some(e) = invalid {
        invalid_start_info(info, e);
    }
    report(boot);

    COM2.str("isola-testguest: stderr works\n");

    if cmdline::has_token(line, b"timer") {
        timer::run();
    }
    if cmdline::has_token(line, b"smp") {
        smp::run();
    }
    if cmdline::has_token(line, b"echo") {
        echo(&COM1, "echo");
    }
    if cmdline::has_token(line, b"echo2") {
        echo(&COM2, "echo2");
    }

    let status = cmdline::exit_status(line);
    COM1.str("isola-testguest: exit ")
        .dec(status.into())
        .str("\n");
    exit(status)
}

/// The lines the tests read, the same from either protocol: the memory
/// map, the command line and the initrd.
fn report(boot: &dyn BootInfo) {
    COM1.str("e820: ").dec(boot.e820_len().into()).str("\n");
    for i in 0..boot.e820_len() {
        let e = boot.e820(i);
        COM1.str("e820 ")
            .hex(e.addr)
            .str(" ")
            .hex(e.size)
            .str(" ")
            .dec(e.kind.into())
            .str("\n");
    }

    COM1.str("cmdline: ");
    match boot.cmdline() {
        Region::Bytes(line) => {
            COM1.bytes(line);
        }
        Region::Absent => {}
        Region::Unreadable(addr) => unreadable(addr),
    }
    COM1.str("\n");

    let (addr, size) = boot.initrd();
    COM1.str("initrd: ").hex(addr).str(" ").dec(size).str("\n");
    if size > 0 {
        COM1.str("initrd-head: ");
        match boot_info::memory(addr, size.min(INITRD_HEAD)) {
            Region::Bytes(head) => printable(head),
            _ => unreadable(addr),
        }
        COM1.str("\n");
    }
}

/// Says why EBX did not lead to a start info; the guest then goes on with
/// nothing to report, so that it still reaches its exit.
fn invalid_start_info(addr: u64, e: Invalid) {
    COM1.str("pvh: no start info at ").hex(addr);
    match e {
        Invalid::Unreadable => COM1.str(" (unreadable)\n"),
        Invalid::Magic(magic) => COM1.str(" (magic ").hex(magic.into()).str(")\n"),
    };
}

/// Bytes outside printable ASCII shown as '.', so binary data cannot garble the log.
fn printable(bytes: &[u8]) {
    for &b in bytes {
        COM1.byte(if (0x20..=0x7e).contains(&b) { b } else { b'.' });
    }
}

/// Stands in for data the guest cannot read (see `Region::Unreadable`).
fn unreadable(addr: u64) {
    COM1.str("<unreadable ").hex(addr).str(">");
}

/// Reads one line from `port` and prints it back on COM1 after `name`.
fn echo(port: &Uart, name: &str) {
    COM1.str(name).str(": ready\n");
    // Left uninitialised: zeroing it would call memset, whose `rep stos`
    // is one more instruction for the PVM emulator to get wrong.
    let mut line = [MaybeUninit::<u8>::uninit(); ECHO_MAX];
    let mut len = 0;
    let mut idle = 0;
    while len < ECHO_MAX {
        match port.try_read() {
            Some(b'\n') => break,
            // A terminal's Enter sends "\r\n"; the line is what precedes it.
            Some(b'\r') => idle = 0,
            Some(b) => {
                line[len].write(b);
                len += 1;
                idle = 0;
            }
            None if idle == ECHO_IDLE_POLLS => {
                COM1.str(name).str(": timeout\n");
                return;
            }
            None => idle += 1,
        }
    }
    // SAFETY: the loop above wrote line[..len].
    let line = unsafe { core::slice::from_raw_parts(line.as_ptr().cast::<u8>(), len) };
    COM1.str(name).str(": ").bytes(line).str("\n");
}

fn exit(status: u8) -> ! {
    port::outb(BOOT_TIMER_PORT, 2);
    port::outb(EXIT_PORT, status);
    // In case the monitor does not stop the guest at the exit port.
    loop {
        // SAFETY: hlt touches no memory; it stops the CPU until an interrupt,
        // and with IF clear only an NMI can wake it, hence the loop.
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    COM1.str("isola-testguest: panic\n");
    exit(255)
}
