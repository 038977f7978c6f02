//! The QEMU adapter: `qemu-system-x86_64 -M microvm` with the same artifact
//! and devices as isola's monitor, under KVM on hardware hosts and TCG (a
//! software CPU) elsewhere, such as PVM hosts where Linux cannot run on KVM.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use super::qemu_serial::{Fifo, Relay, RelayEnds};
use super::{Artifact, Input, Monitor, MonitorError, QemuError, Running};
use crate::guest_exit::{Failure, GuestExit, GuestFailed};

pub const BINARY: &str = "qemu-system-x86_64";

/// Where QEMU finds the bridge network's tap (`-netdev tap,fd=`): high
/// enough to be clear of the descriptors QEMU opens before it reads it.
const TAP_FD: i32 = 100;

pub struct Qemu {
    /// Use KVM (hardware hosts) rather than TCG.
    pub kvm: bool,
}

impl Qemu {
    /// The command line, for `run` and for people (`--explain`, docs).
    /// `fifos`: the directory of the FIFOs `qemu_serial::make_fifos` made.
    pub fn command(
        &self,
        artifact: &Artifact,
        initrd: &std::path::Path,
        fifos: &std::path::Path,
    ) -> Command {
        let fifo = |end: Fifo| {
            fifos
                .join(end.name())
                .display()
                .to_string()
                .replace(',', ",,")
        };
        let mut c = Command::new(BINARY);
        // With ACPI off, microvm lists its virtio-mmio devices on the kernel's
        // command line, where a kernel without ACPI (isola's) finds them; on
        // only otherwise, since Debian's kernel then finds one vCPU only.
        let virtio_serial = artifact.agent.is_some() || artifact.stdio_ports;
        let acpi = if artifact.disks.is_empty() && !virtio_serial && artifact.net.is_none() {
            "on"
        } else {
            "off"
        };
        c.args([
            "-M",
            &format!("microvm,x-option-roms=off,isa-serial=on,rtc=on,acpi={acpi}"),
        ]);
        c.args(["-accel", if self.kvm { "kvm" } else { "tcg" }]);
        c.args(["-cpu", if self.kvm { "host" } else { "max" }]);
        c.args(["-m", &format!("{}M", artifact.memory_bytes >> 20)]);
        c.args(["-smp", &artifact.vcpus.to_string()]);
        c.args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"]);
        // Both UARTs are FIFOs isola relays (see qemu_serial).
        c.arg("-chardev")
            .arg(format!("pipe,id=com1,path={}", fifo(Fifo::Com1)));
        c.arg("-chardev")
            .arg(format!("pipe,id=com2,path={}", fifo(Fifo::Com2)));
        // microvm makes only the first -serial a port: COM2 is a device of its own.
        c.args(["-serial", "chardev:com1"]);
        c.args(["-device", "isa-serial,chardev=com2,iobase=0x2f8,irq=3"]);
        c.arg("-device").arg(format!(
            "isa-debug-exit,iobase={:#x},iosize=0x04",
            isola_guest_spec::ports::EXIT
        ));
        // virtio-mmio disks: microvm describes them on the kernel's command
        // line itself. isola-init finds each by its serial.
        for (i, disk) in artifact.disks.iter().enumerate() {
            // QEMU's option syntax: a comma in a value is written twice.
            let path = disk.path.display().to_string().replace(',', ",,");
            c.arg("-drive").arg(format!(
                "file={path},format=raw,if=none,id=disk{i},readonly={}",
                if disk.read_only { "on" } else { "off" }
            ));
            c.arg("-device").arg(format!(
                "virtio-blk-device,drive=disk{i},serial={}",
                disk.serial
            ));
        }
        if virtio_serial {
            // As many ports as it has (and port 0, which QEMU keeps for a
            // console): by default it has 31, whose 64 queues the guest
            // sets up one register write at a time at every boot.
            c.args(["-device", "virtio-serial-device,max_ports=4"]);
        }
        if artifact.stdio_ports {
            // The workload's stdout and stderr: ports whose FIFOs the relay
            // reads as it reads the UARTs'.
            for (id, end, name) in [
                (
                    "stdout",
                    Fifo::Stdout,
                    isola_guest_spec::ports::STDOUT_PORT_NAME,
                ),
                (
                    "stderr",
                    Fifo::Stderr,
                    isola_guest_spec::ports::STDERR_PORT_NAME,
                ),
            ] {
                c.arg("-chardev")
                    .arg(format!("pipe,id={id},path={}", fifo(end)));
                c.arg("-device")
                    .arg(format!("virtserialport,chardev={id},name={name}"));
            }
        }
        if let Some(agent) = &artifact.agent {
            // The agent channel: a virtio-serial port on a socket isola
            // connects to.
            c.arg("-chardev").arg(format!(
                "socket,id=agent,path={},server=on,wait=off",
                // QEMU's option syntax: a comma in a value is doubled.
                agent.display().to_string().replace(',', ",,")
            ));
            c.arg("-device").arg(format!(
                "virtserialport,chardev=agent,name={}",
                isola_guest_spec::ports::AGENT_SERIAL_NAME
            ));
        }
        if let Some(net) = &artifact.net {
            // eth0 on the bridge: the tap isola made, inherited at TAP_FD.
            c.arg("-netdev").arg(format!("tap,id=net0,fd={TAP_FD}"));
            c.arg("-device").arg(format!(
                "virtio-net-device,netdev=net0,mac={}",
                net.mac_text()
            ));
        }
        c.arg("-kernel").arg(&artifact.kernel);
        c.arg("-initrd").arg(initrd);
        let mut cmdline = format!(
            "{} {}",
            artifact.cmdline,
            isola_guest_spec::wire::RECORDS_FLAG
        );
        if !self.kvm {
            // microvm has no HPET or PM timer: under TCG the kernel may
            // fail to calibrate the TSC and hang. TCG passes the host's
            // TSC through, so its rate is the right answer to give.
            if let Some(khz) = host_tsc_khz() {
                cmdline.push_str(&format!(" tsc_early_khz={khz}"));
            }
        }
        c.arg("-append").arg(cmdline);
        c
    }
}

impl Monitor for Qemu {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn run(
        &self,
        artifact: &Artifact,
        input: Input,
        control: File,
        running: &Running,
    ) -> Result<GuestExit, MonitorError> {
        // The marks are timed from here, as the sandbox times the boot
        // (the initrd's copy below takes a while: from QEMU's spawn they
        // would read early).
        let began = Instant::now();
        // QEMU takes one initrd: the archives go in one file, in order.
        let joined = tempfile::NamedTempFile::new().map_err(QemuError::TempInitrd)?;
        {
            let mut out = std::io::BufWriter::new(joined.as_file());
            for path in &artifact.initrds {
                let mut f = std::fs::File::open(path).map_err(|source| MonitorError::Initrd {
                    path: path.clone(),
                    source,
                })?;
                std::io::copy(&mut f, &mut out).map_err(QemuError::WriteInitrd)?;
            }
            std::io::Write::flush(&mut out).map_err(QemuError::WriteInitrd)?;
        }
        let dir = tempfile::tempdir().map_err(QemuError::TempDir)?;
        super::qemu_serial::make_fifos(dir.path(), artifact.stdio_ports)?;
        let mut cmd = self.command(artifact, joined.path(), dir.path());
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        // Its own process group: a Ctrl-C reaches isola, which passes it to
        // the workload, instead of killing QEMU.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Some(tap) = artifact.net.as_ref().and_then(|n| n.tap.clone()) {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&*tap);
            // SAFETY: between fork and exec only dup2 and fcntl run, both
            // async-signal-safe; `tap` outlives the spawn.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    if raw == TAP_FD {
                        // dup2 onto itself keeps close-on-exec set.
                        if libc::fcntl(raw, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(raw, TAP_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                QemuError::NotInstalled
            } else {
                QemuError::Spawn(e)
            }
        })?;
        running.set_process(child.id());
        let ends = RelayEnds {
            stdin: input,
            hold_console: !artifact.kernel_log,
            control,
            deadline: running.deadline.clone(),
            qemu: Pid::from_raw(child.id() as i32),
            running: running.clone(),
            stdio_end: artifact.stdio_end.as_ref().map(|m| m.as_bytes().to_vec()),
        };
        let relay = match Relay::start(dir.path(), artifact.stdio_ports, ends) {
            Ok(r) => r,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.into());
            }
        };
        // Reaped only once the relay, which may kill QEMU by its pid, is done.
        let _ = wait_unreaped(child.id());
        let relayed = relay.finish();
        let status = child.wait().map_err(QemuError::Wait)?;
        match status.code() {
            // isa-debug-exit: QEMU exits with (status << 1) | 1, keeping 7
            // bits; isola-init's record on COM2 has the whole status.
            Some(c) if c & 1 == 1 => Ok(GuestExit {
                status: Some(relayed.status.unwrap_or((c >> 1) as u8)),
                marks: relayed
                    .marks
                    .iter()
                    .map(|&(mark, at)| (mark.byte(), at.saturating_duration_since(began)))
                    .collect(),
                console: relayed.console,
            }),
            // -no-reboot: a reset (a kernel panic with panic=-1) ends QEMU
            // with 0.
            Some(0) => Err(GuestFailed {
                what: Failure::NoStatus,
                console: relayed.console,
            }
            .into()),
            Some(c) => Err(QemuError::Failed(c).into()),
            None => Err(QemuError::Killed.into()),
        }
    }
}

/// Wait for process `pid` to end without reaping it: until it is reaped,
/// its pid names no other process.
fn wait_unreaped(pid: u32) -> nix::Result<()> {
    let pid = Pid::from_raw(pid as i32);
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// The host's TSC rate in kHz: the kernel's own figure where it exports
/// one, else measured against the monotonic clock for 20 ms.
fn host_tsc_khz() -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz") {
        if let Ok(khz) = s.trim().parse() {
            return Some(khz);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        let t0 = std::time::Instant::now();
        // SAFETY: rdtsc only reads the time-stamp counter.
        let c0 = unsafe { core::arch::x86_64::_rdtsc() };
        std::thread::sleep(std::time::Duration::from_millis(20));
        // SAFETY: as above.
        let c1 = unsafe { core::arch::x86_64::_rdtsc() };
        let us = t0.elapsed().as_micros() as u64;
        if us > 0 && c1 > c0 {
            return Some((c1 - c0) * 1000 / us);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errors_name_the_binary_and_the_command_line_the_exit_port() {
        for e in [
            QemuError::NotInstalled,
            QemuError::Killed,
            QemuError::Failed(1),
        ] {
            assert!(e.to_string().contains(BINARY), "{e}");
        }
        let dir = std::path::Path::new("/tmp");
        let artifact = Artifact {
            kernel: dir.join("vmlinux"),
            initrds: Vec::new(),
            cmdline: "quiet".into(),
            memory_bytes: 128 << 20,
            vcpus: 1,
            kernel_log: false,
            disks: Vec::new(),
            jail: None,
            agent: None,
            stdio_ports: false,
            stdio_end: None,
            net: None,
        };
        let cmd = Qemu { kvm: true }.command(&artifact, dir, dir);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"isa-debug-exit,iobase=0xf4,iosize=0x04".to_string()),
            "{args:?}"
        );
        assert!(!args.iter().any(|a| a.contains("virtserialport")));
        let with_agent = Artifact {
            agent: Some(dir.join("agent.sock")),
            ..artifact
        };
        let args: Vec<String> = Qemu { kvm: false }
            .command(&with_agent, dir, dir)
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"socket,id=agent,path=/tmp/agent.sock,server=on,wait=off".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"virtserialport,chardev=agent,name=isola.agent".to_string()));
        // microvm then puts its slot on the kernel command line itself.
        assert!(args.iter().any(|a| a.ends_with(",acpi=off")), "{args:?}");
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("virtio-serial-device"))
                .count(),
            1
        );
        let with_ports = Artifact {
            stdio_ports: true,
            agent: None,
            ..with_agent
        };
        let args: Vec<String> = Qemu { kvm: false }
            .command(&with_ports, dir, dir)
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for wanted in [
            "virtio-serial-device,max_ports=4",
            "pipe,id=stdout,path=/tmp/stdout",
            "virtserialport,chardev=stdout,name=isola.stdout",
            "pipe,id=stderr,path=/tmp/stderr",
            "virtserialport,chardev=stderr,name=isola.stderr",
        ] {
            assert!(args.contains(&wanted.to_string()), "{wanted}: {args:?}");
        }
        assert!(args.iter().any(|a| a.ends_with(",acpi=off")), "{args:?}");
    }
}
