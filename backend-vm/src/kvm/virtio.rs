//! The VM's virtio-mmio devices: one virtio-blk per disk, in order, then
//! virtio-net, virtio-vsock and virtio-console when asked for, each
//! with a window on the MMIO bus, an IRQ raised by an irqfd and an
//! ioeventfd per queue on QueueNotify, so that neither an interrupt nor a
//! notification costs an exit to userspace.

use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kvm_ioctls::{IoEventAddress, VmFd};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::devices::VIRTIO_IRQS;
use super::error::{DeviceError, DiskError, VmError};
use super::layout::VIRTIO_MMIO;
use super::NetDevice;
use crate::disk::Disk;
use crate::virtio::{
    Block, Console, ConsolePort, Interrupt, MmioBus, MmioTransport, Net, NetError, Notifier,
    VirtioDevice, Vsock, Wake, MMIO_SIZE, QUEUE_NOTIFY,
};

/// Where a device is, as the guest's command line tells it
/// (`virtio_mmio.device=4K@BASE:IRQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioSlot {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

pub struct VirtioDevices {
    pub bus: MmioBus,
    pub notifiers: Vec<Notifier>,
    pub slots: Vec<MmioSlot>,
}

/// Every device of the VM, registered with KVM: the disks in order, then
/// the network card over `net`'s tap, then the vsock device when `vsock`
/// names its socket, then the console with `console`'s ports.
pub fn create(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    disks: &[Disk],
    net: Option<&NetDevice>,
    vsock: Option<&Path>,
    console: Option<Vec<ConsolePort>>,
) -> Result<VirtioDevices, VmError> {
    let max = VIRTIO_IRQS.len()
        - usize::from(net.is_some())
        - usize::from(vsock.is_some())
        - usize::from(console.is_some());
    if disks.len() > max {
        return Err(DiskError::TooMany {
            count: disks.len(),
            max,
        }
        .into());
    }
    let mut devices = VirtioDevices {
        bus: MmioBus::new(VIRTIO_MMIO),
        notifiers: Vec::new(),
        slots: Vec::new(),
    };
    for (disk, irq) in disks.iter().zip(VIRTIO_IRQS) {
        let block = open_disk(disk)?;
        add(vm, mem, &mut devices, Box::new(block), irq)?;
    }
    if let Some(net) = net {
        let device = open_net(net).map_err(DeviceError::from)?;
        let irq = VIRTIO_IRQS[devices.slots.len()];
        add(vm, mem, &mut devices, Box::new(device), irq)?;
    }
    if let Some(path) = vsock {
        let device = Vsock::bind(path).map_err(|source| DeviceError::VsockSocket {
            path: path.to_path_buf(),
            source,
        })?;
        let irq = VIRTIO_IRQS[devices.slots.len()];
        add(vm, mem, &mut devices, Box::new(device), irq)?;
    }
    if let Some(ports) = console {
        let irq = VIRTIO_IRQS[devices.slots.len()];
        add(vm, mem, &mut devices, Box::new(Console::new(ports)), irq)?;
    }
    Ok(devices)
}

fn open_disk(disk: &Disk) -> Result<Block, DiskError> {
    if disk.serial.len() > Disk::SERIAL_MAX {
        return Err(DiskError::Serial {
            path: disk.path.clone(),
            serial: disk.serial.clone(),
            max: Disk::SERIAL_MAX,
        });
    }
    let opened = OpenOptions::new()
        .read(true)
        .write(!disk.read_only)
        .open(&disk.path)
        .and_then(|file| Block::new(file, disk.read_only, disk.serial.as_bytes()));
    opened.map_err(|source| DiskError::Open {
        path: disk.path.clone(),
        source,
    })
}

fn open_net(net: &NetDevice) -> Result<Net, NetError> {
    // The device keeps a descriptor of its own: the config keeps its.
    let tap = net
        .tap
        .as_fd()
        .try_clone_to_owned()
        .map_err(NetError::Tap)?;
    Net::over_tap(tap, net.mac)
}

fn add(
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    devices: &mut VirtioDevices,
    device: Box<dyn VirtioDevice>,
    irq: u32,
) -> Result<(), DeviceError> {
    let base = devices.bus.next_address();
    let fd = super::devices::irqfd(vm, irq)?;
    let transport = MmioTransport::new(device, mem.clone(), Arc::new(Interrupt::new(fd)));
    let queues = transport.queue_count() as u32;
    let served = Arc::clone(transport.served());
    let host_fd = served.lock().ok().and_then(|s| s.host_fd());
    for queue in 0..queues {
        let fd =
            EventFd::new(EFD_NONBLOCK).map_err(|source| DeviceError::EventFd { irq, source })?;
        // The driver writes the queue's index: one eventfd per value.
        vm.register_ioevent(&fd, &IoEventAddress::Mmio(base + QUEUE_NOTIFY), queue)
            .map_err(|source| DeviceError::Kvm {
                ioctl: "KVM_IOEVENTFD",
                source,
            })?;
        devices.notifiers.push(Notifier {
            wake: Wake::Queue { fd, queue },
            device: Arc::clone(&served),
        });
    }
    if let Some(fd) = host_fd {
        devices.notifiers.push(Notifier {
            wake: Wake::Host(fd),
            device: served,
        });
    }
    devices.bus.add(Arc::new(Mutex::new(transport)));
    devices.slots.push(MmioSlot {
        base,
        size: MMIO_SIZE,
        irq,
    });
    Ok(())
}
