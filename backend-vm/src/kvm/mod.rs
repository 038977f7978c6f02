//! isola's own KVM monitor: one VM with guest memory, an in-kernel irqchip
//! and PIT, a vCPU started in long mode by Linux's 64-bit boot protocol, and
//! the standard port devices. [`run`] boots a kernel and runs it to its end.

mod boot;
mod cpu;
mod devices;
mod layout;
mod memory;
mod watchdog;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvm_bindings::{kvm_pit_config, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VcpuExit};
use vm_superio::Serial;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub use boot::Loaded;
use devices::{Action, Devices, IrqTrigger};

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}() failed: {1}")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    #[error("{0}")]
    Memory(String),
    #[error("{0}")]
    Kernel(String),
    #[error("{0}")]
    Config(String),
    #[error("the guest {0}")]
    Guest(String),
    #[error("the guest did not finish within {0:?}; it was stopped")]
    Timeout(Duration),
}

/// What to boot and how.
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<Vec<u8>>,
    pub cmdline: String,
    pub memory_bytes: u64,
    /// Stop the guest after this long (`None`: let it run).
    pub timeout: Option<Duration>,
}

/// Where the guest's UARTs lead: COM1 out and in, COM2 out.
pub struct GuestIo {
    pub com1_out: Box<dyn Write + Send>,
    pub com2_out: Box<dyn Write + Send>,
    pub com1_in: Option<Box<dyn Read + Send>>,
}

/// How a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It wrote this status to the exit port.
    Exit(u8),
    /// It reset the machine through the i8042.
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    pub loaded: Loaded,
}

/// Boot `config.kernel` and run it until it exits, resets or fails.
pub fn run(config: &VmConfig, io: GuestIo) -> Result<Outcome, VmError> {
    let kvm = Kvm::new().map_err(|e| {
        VmError::Unavailable(match e.errno() {
            libc::ENOENT => "there is no /dev/kvm: load kvm_intel or kvm_amd (and enable virtualization in the firmware)".into(),
            libc::EACCES | libc::EPERM => "no permission to open /dev/kvm: run as root or join the kvm group".into(),
            _ => format!("cannot open /dev/kvm: {e}"),
        })
    })?;
    let vm = kvm
        .create_vm()
        .map_err(|e| VmError::Kvm("KVM_CREATE_VM", e))?;
    vm.set_tss_address(layout::TSS as usize)
        .map_err(|e| VmError::Kvm("KVM_SET_TSS_ADDR", e))?;
    vm.create_irq_chip()
        .map_err(|e| VmError::Kvm("KVM_CREATE_IRQCHIP", e))?;
    vm.create_pit2(kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    })
    .map_err(|e| VmError::Kvm("KVM_CREATE_PIT2", e))?;

    let mem = memory::create(&vm, config.memory_bytes)?;
    cpu::write_tables(&mem)?;
    let loaded = boot::load(
        &mem,
        &config.kernel,
        config.initrd.as_deref(),
        &config.cmdline,
    )?;

    let uart =
        |out: Box<dyn Write + Send>, irq: u32| -> Result<Arc<Mutex<devices::Uart>>, VmError> {
            let fd = EventFd::new(EFD_NONBLOCK)
                .map_err(|e| VmError::Config(format!("eventfd for IRQ {irq}: {e}")))?;
            vm.register_irqfd(&fd, irq)
                .map_err(|e| VmError::Kvm("KVM_IRQFD", e))?;
            Ok(Arc::new(Mutex::new(Serial::new(IrqTrigger(fd), out))))
        };
    let devices = Devices {
        com1: uart(io.com1_out, devices::COM1_IRQ)?,
        com2: uart(io.com2_out, devices::COM2_IRQ)?,
    };
    if let Some(input) = io.com1_in {
        feed(input, Arc::clone(&devices.com1));
    }

    let mut vcpu = vm
        .create_vcpu(0)
        .map_err(|e| VmError::Kvm("KVM_CREATE_VCPU", e))?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| VmError::Kvm("KVM_GET_SUPPORTED_CPUID", e))?;
    cpu::setup(&vcpu, 0, loaded.entry, &cpuid)?;

    let dog = config.timeout.map(watchdog::Watchdog::start).transpose()?;
    let end = loop {
        match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => match devices.port_out(port, data) {
                Action::Continue => {}
                Action::Exit(code) => break End::Exit(code),
                Action::Reset => break End::Reset,
            },
            Ok(VcpuExit::IoIn(port, data)) => devices.port_in(port, data),
            Ok(VcpuExit::MmioRead(_, data)) => data.fill(0xff),
            Ok(VcpuExit::MmioWrite(..)) => {}
            Ok(VcpuExit::Hlt) => return Err(VmError::Guest("halted with interrupts off".into())),
            Ok(VcpuExit::Shutdown) => {
                return Err(VmError::Guest(
                    "triple-faulted (KVM_EXIT_SHUTDOWN): it crashed before it could set up its own exception handlers".into(),
                ))
            }
            Ok(VcpuExit::InternalError) => {
                let run = vcpu.get_kvm_run();
                // SAFETY: KVM filled the internal-error member for this exit.
                let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                return Err(VmError::Guest(format!(
                    "stopped on an instruction KVM could not emulate (KVM_EXIT_INTERNAL_ERROR, suberror {suberror}); on a PVM host this is expected for an unmodified Linux kernel"
                )));
            }
            Ok(VcpuExit::FailEntry(reason, _)) => {
                return Err(VmError::Guest(format!(
                    "could not be entered (KVM_EXIT_FAIL_ENTRY, reason {reason:#x})"
                )))
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                return Err(VmError::Guest(format!("raised system event {kind}")))
            }
            Ok(other) => {
                return Err(VmError::Guest(format!("made an exit isola does not handle: {other:?}")))
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                if dog.as_ref().is_some_and(|d| d.fired()) {
                    return Err(VmError::Timeout(config.timeout.unwrap_or_default()));
                }
            }
            Err(e) => return Err(VmError::Kvm("KVM_RUN", e)),
        }
    };
    for uart in [&devices.com1, &devices.com2] {
        if let Ok(mut u) = uart.lock() {
            let _ = u.writer_mut().flush();
        }
    }
    Ok(Outcome { end, loaded })
}

/// Copy `input` into COM1's receive FIFO, waiting while the guest has not
/// drained it. The thread ends with the input (or with isola).
fn feed(mut input: Box<dyn Read + Send>, com1: Arc<Mutex<devices::Uart>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let taken = match com1.lock() {
                    Ok(mut u) => u.enqueue_raw_bytes(rest).unwrap_or(0),
                    Err(_) => return,
                };
                rest = &rest[taken..];
                if !rest.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    });
}
