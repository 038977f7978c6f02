//! The guest's port-I/O devices, all standard so the same guest runs on
//! QEMU: two 8250 UARTs (vm-superio) on COM1/COM2 with their IRQs as
//! irqfds, the isa-debug-exit port and isola's boot timer (at the ports
//! `isola_guest_spec::ports` names) and the i8042 reset line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use isola_guest_spec::ports;
use kvm_ioctls::VmFd;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::error::DeviceError;

use crate::virtio::MmioBus;

pub const COM1: u16 = 0x3f8;
pub const COM2: u16 = 0x2f8;
pub const COM1_IRQ: u32 = 4;
pub const COM2_IRQ: u32 = 3;
/// The virtio-mmio devices' IRQs, in the order devices get them: IOAPIC
/// pins the MP table routes as ISA IRQs that no PC device of this machine
/// or legacy driver of the guest claims (0-4 are the PIT, i8042, the
/// cascade and the UARTs; 8 the RTC, 12 the PS/2 mouse, 13 the FPU).
pub const VIRTIO_IRQS: [u32; 16] = [5, 6, 7, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23];
const I8042_COMMAND: u16 = 0x64;
const I8042_RESET: u8 = 0xfe;
const UART_PORTS: u16 = 8;

/// Raises a UART's interrupt through an eventfd KVM turns into its IRQ line.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

pub type Uart = Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>;

/// What an I/O exit asks the vCPU loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// The guest wrote its exit status.
    Exit(u8),
    /// The guest pulsed the i8042 reset line (Linux's `reboot=k`).
    Reset,
    /// The guest wrote this byte to the boot timer (isola-init writes a
    /// `Mark`; any byte is noted).
    Mark(u8),
}

pub struct Devices {
    pub com1: Arc<Mutex<Uart>>,
    pub com2: Arc<Mutex<Uart>>,
    /// The virtio-mmio devices; any other MMIO address reads as all ones.
    pub virtio: MmioBus,
}

impl Devices {
    pub fn port_out(&self, port: u16, data: &[u8]) -> Action {
        let byte = data.first().copied().unwrap_or(0);
        match port {
            ports::EXIT => return Action::Exit(byte),
            ports::BOOT_TIMER => return Action::Mark(byte),
            I8042_COMMAND if byte == I8042_RESET => return Action::Reset,
            _ => {}
        }
        if let Some((uart, offset)) = self.uart(port) {
            if let Ok(mut u) = uart.lock() {
                // Output errors (a closed pipe) must not stop the guest.
                let _ = u.write(offset, byte);
            }
        }
        Action::Continue
    }

    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if !self.virtio.read(addr, data) {
            data.fill(0xff);
        }
    }

    pub fn mmio_write(&self, addr: u64, data: &[u8]) {
        self.virtio.write(addr, data);
    }

    pub fn port_in(&self, port: u16, data: &mut [u8]) {
        let value = match self.uart(port) {
            Some((uart, offset)) => uart.lock().map(|mut u| u.read(offset)).unwrap_or(0xff),
            // i8042 status: nothing to read, input buffer empty.
            None if port == I8042_COMMAND => 0,
            None => 0xff,
        };
        data.fill(value);
    }

    fn uart(&self, port: u16) -> Option<(&Arc<Mutex<Uart>>, u8)> {
        if (COM1..COM1 + UART_PORTS).contains(&port) {
            Some((&self.com1, (port - COM1) as u8))
        } else if (COM2..COM2 + UART_PORTS).contains(&port) {
            Some((&self.com2, (port - COM2) as u8))
        } else {
            None
        }
    }
}

/// An eventfd that raises `irq` on the in-kernel irqchip when written.
pub(super) fn irqfd(vm: &VmFd, irq: u32) -> Result<EventFd, DeviceError> {
    let fd = EventFd::new(EFD_NONBLOCK).map_err(|source| DeviceError::EventFd { irq, source })?;
    vm.register_irqfd(&fd, irq)
        .map_err(|source| DeviceError::Kvm {
            ioctl: "KVM_IRQFD",
            source,
        })?;
    Ok(fd)
}
