//! One VM built in named stages (open /dev/kvm → memory → irqchip and PIT →
//! boot tables → virtio devices → kernel → UARTs → vCPUs), then run to its
//! end.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use isola_guest_spec::ports::{self, Mark};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Kvm, VcpuFd, VmFd};
use vm_memory::GuestMemoryMmap;
use vm_superio::Serial;

use super::boot::{self, Loaded};
use super::devices::{self, Devices, IrqTrigger, Uart};
use super::error::{BootError, DeviceError, KvmUnavailable, VcpuError, VmError};
use super::pit::{self, ReinjectOff};
use super::shared_out::SharedOut;
use super::vcpus::{self, Marks};
use super::{cpu, feed, layout, memory, mptable, virtio, GuestIo, VmConfig};
use crate::deadline::Deadline;
use crate::guest_exit::GuestExit;
use crate::virtio::{ConsolePort, EventLoop, Notifier};

/// A VM ready to run: memory mapped, kernel loaded, devices and vCPUs set
/// up. Its fields drop in order: the PIT's thread is joined first (its copy
/// of the VM's fd then closes with the VM), the memory is unmapped before
/// the VM's fd closes.
pub struct Machine {
    vcpus: Vec<VcpuFd>,
    devices: Devices,
    /// The virtio queues' ioeventfds, served by a thread while it runs.
    notifiers: Vec<Notifier>,
    marks: Marks,
    _pit: ReinjectOff,
    _mem: GuestMemoryMmap,
    _vm: VmFd,
    /// Where the kernel, the initrd and the boot information went.
    pub loaded: Loaded,
    timeout: Option<Duration>,
    deadline: Deadline,
}

impl Machine {
    /// Every stage up to the first instruction; the marks are timed from
    /// here.
    pub fn build(config: &VmConfig, io: GuestIo) -> Result<Machine, VmError> {
        let started = Instant::now();
        let kvm = open_kvm()?;
        let vm = kvm.create_vm().map_err(VmError::CreateVm)?;
        // Guest memory first: see `memory::create` for why the order matters.
        let mem = memory::create(&vm, config.memory_bytes)?;
        vm.set_tss_address(layout::TSS as usize)
            .map_err(|source| BootError::Kvm {
                ioctl: "KVM_SET_TSS_ADDR",
                source,
            })?;
        vm.create_irq_chip().map_err(|source| DeviceError::Kvm {
            ioctl: "KVM_CREATE_IRQCHIP",
            source,
        })?;
        let pit = pit::create(&vm)?;

        cpu::write_tables(&mem)?;
        // COM1 and the stdout port write to the same place, COM2 and the
        // stderr port too.
        let com1_out = SharedOut::new(io.com1_out);
        let com2_out = SharedOut::new(io.com2_out);
        let console = config.console.then(|| {
            vec![
                ConsolePort {
                    name: ports::STDOUT_PORT_NAME.to_string(),
                    out: Box::new(com1_out.clone()),
                },
                ConsolePort {
                    name: ports::STDERR_PORT_NAME.to_string(),
                    out: Box::new(com2_out.clone()),
                },
            ]
        });
        let virtio = virtio::create(
            &vm,
            &mem,
            &config.disks,
            config.net.as_ref(),
            config.vsock.as_deref(),
            console,
        )?;
        let loaded = boot::load(
            &mem,
            &config.kernel,
            config.initrd.as_deref(),
            &config.cmdline,
            &virtio.slots,
            config.protocol,
        )?;

        let devices = Devices {
            com1: uart(&vm, Box::new(com1_out), devices::COM1_IRQ)?,
            com2: uart(&vm, Box::new(com2_out), devices::COM2_IRQ)?,
            virtio: virtio.bus,
        };
        let mut marks = Marks::new(started);
        marks.gates = io.on_mark;
        // Both inputs wait for the same mark, COM2's for a parked
        // isola-init's too (see `VmConfig::input_after_mark`).
        let input_open = Arc::new(AtomicBool::new(config.input_after_mark.is_none()));
        let control_open = Arc::new(AtomicBool::new(config.input_after_mark.is_none()));
        if let Some(mark) = config.input_after_mark {
            marks.gates.push((mark, super::set_flag(&input_open)));
            marks.gates.push((mark, super::set_flag(&control_open)));
            marks
                .gates
                .push((Mark::Parked, super::set_flag(&control_open)));
        }
        for (input, uart, open) in [
            (io.com1_in, &devices.com1, input_open),
            (io.com2_in, &devices.com2, control_open),
        ] {
            if let Some(input) = input {
                feed::feed(input, uart, open);
            }
        }

        mptable::write(&mem, config.vcpus)?;
        let vcpus = create_vcpus(&kvm, &vm, config.vcpus)?;
        // The others wait, as on a PC, for the boot CPU's INIT and SIPI.
        if let Some(boot_cpu) = vcpus.first() {
            cpu::boot_state(boot_cpu, loaded.entry, loaded.pvh)?;
        }
        // Set-up is over: the /dev/kvm handle (VM creation, CPUID queries)
        // is not needed while the guest runs; the VM and vCPU fds are. The
        // kernel and initrd files were closed when they were read.
        drop(kvm);
        Ok(Machine {
            vcpus,
            devices,
            notifiers: virtio.notifiers,
            marks,
            _pit: pit,
            _mem: mem,
            _vm: vm,
            loaded,
            timeout: config.timeout,
            deadline: config.deadline.clone(),
        })
    }

    /// Run the vCPUs until the guest exits, resets or fails, or is stopped.
    pub fn run(self) -> Result<GuestExit, VmError> {
        // A VM without virtio devices spares the thread.
        let events = match self.notifiers.is_empty() {
            true => None,
            false => Some(EventLoop::start(self.notifiers).map_err(DeviceError::VirtioThread)?),
        };
        let status = vcpus::run_all(
            self.vcpus,
            &self.devices,
            self.timeout,
            &self.deadline,
            &self.marks,
        );
        // No vCPU runs now: the queues are left as they are.
        if let Some(events) = events {
            events.stop();
        }
        let status = status?;
        for uart in [&self.devices.com1, &self.devices.com2] {
            if let Ok(mut u) = uart.lock() {
                let _ = u.writer_mut().flush();
            }
        }
        Ok(GuestExit {
            status,
            marks: self.marks.into_inner(),
            console: None,
        })
    }
}

/// Stage 1: /dev/kvm, refused in one sentence when the host lacks it.
fn open_kvm() -> Result<Kvm, KvmUnavailable> {
    Kvm::new().map_err(|e| match e.errno() {
        libc::ENOENT => KvmUnavailable::Missing,
        libc::EACCES | libc::EPERM => KvmUnavailable::Denied,
        _ => KvmUnavailable::Open(e),
    })
}

/// A UART writing to `out`, its interrupt an irqfd on `irq`.
fn uart(vm: &VmFd, out: Box<dyn Write + Send>, irq: u32) -> Result<Arc<Mutex<Uart>>, DeviceError> {
    let fd = devices::irqfd(vm, irq)?;
    Ok(Arc::new(Mutex::new(Serial::new(IrqTrigger(fd), out))))
}

/// Every vCPU with the CPUID KVM supports, its FPU, MSRs and LINT pins.
fn create_vcpus(kvm: &Kvm, vm: &VmFd, count: u8) -> Result<Vec<VcpuFd>, VmError> {
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|source| BootError::Kvm {
            ioctl: "KVM_GET_SUPPORTED_CPUID",
            source,
        })?;
    let mut vcpus = Vec::with_capacity(usize::from(count));
    for id in 0..count {
        let vcpu = vm
            .create_vcpu(u64::from(id))
            .map_err(|source| VcpuError::Kvm {
                ioctl: "KVM_CREATE_VCPU",
                source,
            })?;
        cpu::setup(&vcpu, id, &cpuid)?;
        vcpus.push(vcpu);
    }
    Ok(vcpus)
}
