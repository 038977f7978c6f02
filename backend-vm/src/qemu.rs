//! The QEMU adapter: `qemu-system-x86_64 -M microvm` with the same artifact
//! and devices as isola's monitor, under KVM on hardware hosts and TCG (a
//! software CPU) elsewhere, such as PVM hosts where Linux cannot run on KVM.

use std::process::{Command, Stdio};

use crate::kvm::{End, VmError};
use crate::monitor::{Artifact, Monitor};

const BINARY: &str = "qemu-system-x86_64";

pub struct Qemu {
    /// Use KVM (hardware hosts) rather than TCG.
    pub kvm: bool,
}

impl Qemu {
    /// The command line, for `run` and for people (`--explain`, docs).
    pub fn command(&self, artifact: &Artifact, initrd: &std::path::Path) -> Command {
        let mut c = Command::new(BINARY);
        c.args(["-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on"]);
        c.args(["-accel", if self.kvm { "kvm" } else { "tcg" }]);
        c.args(["-cpu", if self.kvm { "host" } else { "max" }]);
        c.args(["-m", &format!("{}M", artifact.memory_bytes >> 20)]);
        c.args(["-smp", &artifact.vcpus.to_string()]);
        c.args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
        // COM1: our stdin/stdout. COM2: appended to our stderr (never truncated).
        c.args(["-chardev", "stdio,id=com1,signal=off"]);
        c.args(["-chardev", "file,id=com2,path=/dev/stderr,append=on"]);
        // microvm makes only the first -serial a port: COM2 is a device of its own.
        c.args(["-serial", "chardev:com1"]);
        c.args(["-device", "isa-serial,chardev=com2,iobase=0x2f8,irq=3"]);
        c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        c.arg("-kernel").arg(&artifact.kernel);
        c.arg("-initrd").arg(initrd);
        c.args(["-append", &artifact.cmdline]);
        c
    }
}

impl Monitor for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn run(&self, artifact: &Artifact, stdin: bool) -> Result<End, VmError> {
        // QEMU takes one initrd: the archives go in one file, in order.
        let joined = tempfile::NamedTempFile::new()
            .map_err(|e| VmError::Config(format!("a temporary initrd file: {e}")))?;
        {
            let mut out = std::io::BufWriter::new(joined.as_file());
            for path in &artifact.initrds {
                let mut f = std::fs::File::open(path).map_err(|e| {
                    VmError::Config(format!("cannot read the initramfs {}: {e}", path.display()))
                })?;
                std::io::copy(&mut f, &mut out)
                    .map_err(|e| VmError::Config(format!("writing the initrd: {e}")))?;
            }
            std::io::Write::flush(&mut out)
                .map_err(|e| VmError::Config(format!("writing the initrd: {e}")))?;
        }
        let mut cmd = self.command(artifact, joined.path());
        cmd.stdin(if stdin {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
        let status = cmd.status().map_err(|e| {
            VmError::Unavailable(if e.kind() == std::io::ErrorKind::NotFound {
                format!("{BINARY} is not installed: install qemu-system-x86, or use --vmm isola")
            } else {
                format!("cannot start {BINARY}: {e}")
            })
        })?;
        match status.code() {
            // isa-debug-exit: QEMU exits with (status << 1) | 1.
            Some(c) if c & 1 == 1 => Ok(End::Exit((c >> 1) as u8)),
            Some(0) => Err(VmError::Guest(
                "stopped without reporting an exit status (a kernel panic, or isola-init never ran): run with -v to see the kernel's messages".into(),
            )),
            Some(c) => Err(VmError::Guest(format!("could not be run by {BINARY} (exit status {c})"))),
            None => Err(VmError::Guest(format!("{BINARY} was killed by a signal"))),
        }
    }
}
