//! How isola-init speaks to the host: its one-line messages on COM2 (else
//! the console, else the kernel log), the exit status on the exit port
//! (0xf4) and the boot-timer marks.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use isola_guest_spec::ports::{self, Mark};
use isola_guest_spec::wire;

use crate::tty;

/// isola-init is up: the kernel's console goes down to emergencies when
/// the command line says `quiet` (isola -v leaves it out), and a monitor
/// that asked for records is told, so that it stops holding the console
/// back and passes COM2 on as the workload's stderr.
pub fn init_running() {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "quiet") {
        // Only the console's level: the log itself keeps everything.
        let _ = std::fs::write("/proc/sys/kernel/printk", "1");
    }
    if status_on_com2() {
        if let Ok(mut com2) = OpenOptions::new().write(true).open(tty::COM2) {
            let _ = com2.write_all(wire::record(Mark::InitUp.record()).as_bytes());
        }
    }
}

/// Tell a monitor that asked for records that the workload runs: it then
/// starts passing stdin on (before, the guest's tty would echo it).
pub fn started() {
    record(Mark::WorkloadStarted);
}

/// Everything is set up and isola-init waits for the go-ahead: the mark,
/// and the record for a monitor that asked for them; either then passes
/// the control channel on to COM2, where the go-ahead comes.
pub fn parked() {
    mark(Mark::Parked);
    record(Mark::Parked);
}

fn record(mark: Mark) {
    if status_on_com2() {
        if let Ok(mut com2) = OpenOptions::new().write(true).open(tty::COM2) {
            let _ = com2.write_all(wire::record(mark.record()).as_bytes());
        }
    }
}

fn status_on_com2() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .map(|c| c.split_whitespace().any(|w| w == wire::RECORDS_FLAG))
        .unwrap_or(false)
}

/// Prints `isola-init: <message>` where the host will see it. Best effort:
/// there is nobody to tell if even the kernel log is gone.
pub fn say(message: &str) {
    let line = format!("isola-init: {message}\n");
    let flags = libc::O_NOCTTY | libc::O_CLOEXEC;
    if let Ok(mut com2) = OpenOptions::new()
        .write(true)
        .custom_flags(flags)
        .open(tty::COM2)
    {
        // COM2 may not be configured yet (an early failure): keep "\n" as is.
        let _ = tty::make_raw(&com2);
        if com2.write_all(line.as_bytes()).is_ok() {
            return;
        }
    }
    if let Ok(mut console) = OpenOptions::new()
        .write(true)
        .custom_flags(flags)
        .open("/dev/console")
    {
        if console.write_all(line.as_bytes()).is_ok() {
            return;
        }
    }
    // /dev may not be mounted: the kernel's own initramfs has /dev/console
    // but no /dev/kmsg, so this is the last resort. <3> is an error.
    if let Ok(mut kmsg) = OpenOptions::new()
        .write(true)
        .custom_flags(flags)
        .open("/dev/kmsg")
    {
        let _ = kmsg.write_all(format!("<3>isola-init: {message}").as_bytes());
    }
}

/// Ends the VM with `status`: stops whatever still runs, calls `ending`
/// (the stdio ports end with their marker where the host asked for one),
/// lets the UARTs drain so no output is lost, writes the status to the
/// exit port, and powers off in case the monitor did not stop on it.
pub fn finish(status: u8, ending: impl FnOnce()) -> ! {
    // SAFETY: kill(2) with pid -1 from PID 1 signals every other process;
    // it touches no memory of ours. Docker's semantics: when the workload
    // ends, what it left running ends with it.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    crate::disks::unmount_volumes();
    ending();
    if status_on_com2() {
        // QEMU's isa-debug-exit keeps only 7 bits of the status (it exits
        // with status << 1 | 1): 137 and 9 would look alike. A monitor
        // that asks for it gets the whole status first, as an APC string
        // (which terminals ignore) that it removes from the stderr stream.
        if let Ok(mut com2) = OpenOptions::new().write(true).open(tty::COM2) {
            let _ = com2.write_all(wire::record(&format!("exit {status}")).as_bytes());
        }
    }
    tty::drain_all();
    write_exit_port(status);
    // Only reached if the monitor did not stop on the port (no
    // isa-debug-exit device); without ACPI this may halt rather than end.
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // PID 1 must never return: the kernel would panic.
    loop {
        // SAFETY: pause(2) only sleeps.
        unsafe { libc::pause() };
    }
}

/// Write `mark` to isola's boot timer: the monitor notes when each mark
/// arrives (the phase times of `--explain` and the benchmark); ignored
/// elsewhere. The port is granted for the write only: the workload, forked
/// later, must not inherit access to any port.
#[cfg(target_arch = "x86_64")]
pub fn mark(mark: Mark) {
    // SAFETY: ioperm(2) only changes this process's I/O permission bitmap.
    if unsafe { libc::ioperm(ports::BOOT_TIMER as libc::c_ulong, 1, 1) } != 0 {
        return;
    }
    // SAFETY: the port was just granted; writing it touches no memory of ours.
    unsafe {
        std::arch::asm!(
            "out dx, al",
            in("dx") ports::BOOT_TIMER,
            in("al") mark.byte(),
            options(nomem, nostack, preserves_flags)
        );
    }
    // SAFETY: as above; this takes the permission back.
    unsafe { libc::ioperm(ports::BOOT_TIMER as libc::c_ulong, 1, 0) };
}

#[cfg(not(target_arch = "x86_64"))]
pub fn mark(_mark: Mark) {}

#[cfg(target_arch = "x86_64")]
fn write_exit_port(status: u8) {
    // SAFETY: ioperm(2) only changes this process's I/O permission bitmap.
    if unsafe { libc::ioperm(ports::EXIT as libc::c_ulong, 1, 1) } != 0 {
        say(&format!(
            "cannot report the exit status {status}: no access to port {:#x}: {}",
            ports::EXIT,
            crate::fail::describe(nix::errno::Errno::last())
        ));
        return;
    }
    // SAFETY: the port was just granted to us; writing a byte to it has no
    // effect on our memory (the monitor stops the VM or ignores it).
    unsafe {
        std::arch::asm!(
            "out dx, al",
            in("dx") ports::EXIT,
            in("al") status,
            options(nomem, nostack, preserves_flags)
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn write_exit_port(status: u8) {
    say(&format!(
        "cannot report the exit status {status}: no exit port on this architecture"
    ));
}
