//! The I/O ports isola-init writes and both monitors implement (isola's own
//! in its devices, QEMU's as `isa-debug-exit`), and the boot-timer marks.

/// QEMU's isa-debug-exit: the byte written is the guest's exit status.
pub const EXIT: u16 = 0xf4;

/// isola's boot timer: the guest writes a [`Mark`] and the monitor notes
/// when it came. On QEMU nothing is there and the write is ignored; the
/// COM2 records named by [`Mark::record`] stand in for it.
pub const BOOT_TIMER: u16 = 0x4f0;

/// The vsock port isola-init listens on for the agent channel (see
/// `agent`), where the monitor offers virtio-vsock: the host connects.
pub const AGENT_VSOCK_PORT: u32 = 1024;

/// The name of the virtio-serial port that carries the agent channel where
/// there is no vsock (QEMU on a host without /dev/vhost-vsock). udev would
/// link it as /dev/virtio-ports/isola.agent; isola-init finds it by this
/// name under /sys/class/virtio-ports.
pub const AGENT_SERIAL_NAME: &str = "isola.agent";

/// The virtio-serial ports that carry the workload's stdout and stderr
/// when the spec says `stdio_ports` (see `GuestSpec::stdio_ports`): named
/// ports on QEMU's virtio-serial device and on isola's own virtio-console,
/// found by name under /sys/class/virtio-ports as the agent's is.
pub const STDOUT_PORT_NAME: &str = "isola.stdout";
pub const STDERR_PORT_NAME: &str = "isola.stderr";

/// What isola-init writes to the boot timer, in the order it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Mark {
    /// isola-init runs: the guest's kernel is up.
    InitUp = 1,
    /// The workload has been started (exec'd).
    WorkloadStarted = 2,
    /// Everything is set up and isola-init waits for the go-ahead
    /// ([`crate::wire::GO_AHEAD`] on COM2) to start the workload: written
    /// only when the spec asks it to park, before `WorkloadStarted`.
    Parked = 3,
}

impl Mark {
    const ALL: [Mark; 3] = [Mark::InitUp, Mark::WorkloadStarted, Mark::Parked];

    /// The byte written to [`BOOT_TIMER`].
    pub const fn byte(self) -> u8 {
        self as u8
    }

    /// The mark a byte written to [`BOOT_TIMER`] stands for, if any.
    pub fn from_byte(byte: u8) -> Option<Mark> {
        Mark::ALL.into_iter().find(|m| m.byte() == byte)
    }

    /// The body of the COM2 record (see `wire::record`) that says
    /// the same where there is no boot timer.
    pub const fn record(self) -> &'static str {
        match self {
            Mark::InitUp => "init",
            Mark::WorkloadStarted => "started",
            Mark::Parked => "parked",
        }
    }

    /// The mark a record's body stands for, if any.
    pub fn from_record(body: &[u8]) -> Option<Mark> {
        Mark::ALL
            .into_iter()
            .find(|m| m.record().as_bytes() == body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_the_bytes_and_records_both_sides_know() {
        assert_eq!(Mark::InitUp.byte(), 1);
        assert_eq!(Mark::WorkloadStarted.byte(), 2);
        assert_eq!(Mark::from_byte(2), Some(Mark::WorkloadStarted));
        assert_eq!(Mark::from_byte(3), Some(Mark::Parked));
        assert_eq!(Mark::from_byte(4), None);
        assert_eq!(Mark::from_record(b"init"), Some(Mark::InitUp));
        assert_eq!(Mark::from_record(b"parked"), Some(Mark::Parked));
        assert_eq!(Mark::from_record(b"park"), None);
        assert_eq!(Mark::from_record(b"exit 0"), None);
        assert_eq!(format!("{EXIT:#x} {BOOT_TIMER:#x}"), "0xf4 0x4f0");
    }
}
