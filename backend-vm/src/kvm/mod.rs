//! isola's own KVM monitor: one VM with guest memory, an in-kernel irqchip
//! and PIT, a vCPU started in long mode by Linux's 64-bit boot protocol, and
//! the standard port devices. [`run`] boots a kernel and runs it to its end.

mod boot;
mod cpu;
mod devices;
mod kick;
mod layout;
mod memory;
pub mod mptable;
mod pit;
mod vcpus;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isola_guest_spec::ports::Mark;
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;
use vm_superio::Serial;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::deadline::Deadline;
pub use boot::{Loaded, Protocol};
use devices::{Devices, IrqTrigger};

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
    #[error("the guest did not end within {0:?} of the signal isola passed on (its kernel or isola-init was not up to take it); it was stopped")]
    Unresponsive(Duration),
}

/// What to boot and how.
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<Vec<u8>>,
    pub cmdline: String,
    pub memory_bytes: u64,
    /// vCPUs, 1 to [`mptable::MAX_CPUS`].
    pub vcpus: u8,
    /// Hold COM1 and COM2 input until the guest writes this boot-timer mark
    /// (isola-init's workload started: before that the guest's tty would
    /// echo the input). `None`: feed it at once.
    pub input_after_mark: Option<Mark>,
    /// PVH or Linux's 64-bit protocol (see [`Protocol`]).
    pub protocol: Protocol,
    /// Stop the guest after this long (`None`: let it run).
    pub timeout: Option<Duration>,
    /// A stop that can be set while the guest runs (see [`Deadline`]).
    pub deadline: Deadline,
}

/// Where the guest's UARTs lead: COM1 out and in, COM2 out.
pub struct GuestIo {
    pub com1_out: Box<dyn Write + Send>,
    pub com2_out: Box<dyn Write + Send>,
    pub com1_in: Option<Box<dyn Read + Send>>,
    /// Into COM2: isola-init's control channel (a signal number a byte).
    pub com2_in: Option<Box<dyn Read + Send>>,
    /// Flags to set when the guest writes these boot-timer marks.
    pub on_mark: Vec<(Mark, Arc<AtomicBool>)>,
}

/// How a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It wrote this status to the exit port.
    Exit(u8),
    /// It reset the machine through the i8042.
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub end: End,
    pub loaded: Loaded,
    /// The bytes written to the boot timer (see `Mark`), each with
    /// its time since `run` began.
    pub marks: Vec<(u8, Duration)>,
}

/// Boot `config.kernel` and run it until it exits, resets or fails.
pub fn run(config: &VmConfig, io: GuestIo) -> Result<Outcome, VmError> {
    let started = std::time::Instant::now();
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
    // Guest memory first: see `memory::create` for why the order matters.
    let mem = memory::create(&vm, config.memory_bytes)?;
    vm.set_tss_address(layout::TSS as usize)
        .map_err(|e| VmError::Kvm("KVM_SET_TSS_ADDR", e))?;
    vm.create_irq_chip()
        .map_err(|e| VmError::Kvm("KVM_CREATE_IRQCHIP", e))?;
    let _pit = pit::create(&vm)?;

    cpu::write_tables(&mem)?;
    let loaded = boot::load(
        &mem,
        &config.kernel,
        config.initrd.as_deref(),
        &config.cmdline,
        config.protocol,
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
    let mut marks = vcpus::Marks::new(started);
    marks.gates = io.on_mark;
    // Both inputs wait for the same mark (see `VmConfig::input_after_mark`).
    let open = Arc::new(AtomicBool::new(config.input_after_mark.is_none()));
    if let Some(mark) = config.input_after_mark {
        marks.gates.push((mark, Arc::clone(&open)));
    }
    for (input, uart) in [(io.com1_in, &devices.com1), (io.com2_in, &devices.com2)] {
        if let Some(input) = input {
            feed(input, Arc::clone(uart), Arc::clone(&open));
        }
    }

    mptable::write(&mem, config.vcpus)?;
    let cpuid = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| VmError::Kvm("KVM_GET_SUPPORTED_CPUID", e))?;
    let mut vcpus = Vec::with_capacity(config.vcpus as usize);
    for id in 0..config.vcpus {
        let vcpu = vm
            .create_vcpu(u64::from(id))
            .map_err(|e| VmError::Kvm("KVM_CREATE_VCPU", e))?;
        cpu::setup(&vcpu, id, &cpuid)?;
        vcpus.push(vcpu);
    }
    // The others wait, as on a PC, for the boot CPU's INIT and SIPI.
    cpu::boot_state(&vcpus[0], loaded.entry, loaded.pvh)?;
    // Set-up is over: the /dev/kvm handle (VM creation, CPUID queries) is
    // not needed while the guest runs; the VM and vCPU fds are. The kernel
    // and initrd files were closed when they were read.
    drop(kvm);

    let end = vcpus::run_all(vcpus, &devices, config.timeout, &config.deadline, &marks)?;
    for uart in [&devices.com1, &devices.com2] {
        if let Ok(mut u) = uart.lock() {
            let _ = u.writer_mut().flush();
        }
    }
    Ok(Outcome {
        end,
        loaded,
        marks: marks.into_inner(),
    })
}

/// Copy `input` into a UART's receive FIFO once `open`, waiting while the
/// guest has not drained it. `input` is read from the start, so that its
/// reader sees (and acts on) what comes before the guest can take it. The
/// threads end with the input (or with isola).
fn feed(mut input: Box<dyn Read + Send>, uart: Arc<Mutex<devices::Uart>>, open: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        while !open.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        for chunk in rx {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let taken = match uart.lock() {
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
