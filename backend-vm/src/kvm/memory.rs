//! Guest memory: one anonymous mapping, registered with KVM as slot 0.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::error::MemoryError;
use super::layout::MMIO_HOLE;

/// Map `bytes` of guest RAM from address 0 and hand it to the VM.
///
/// Called first on a new VM, before the irqchip and PIT. KVM waits for an
/// SRCU grace period on each memslot change, and the kernel takes the
/// slow, timer-driven path for one that follows another grace period too
/// closely (creating the irqchip ends one): registering 128 MiB took 4–7 ms
/// after KVM_CREATE_IRQCHIP and 0.1–0.2 ms as the VM's first act.
pub fn create(vm: &VmFd, bytes: u64) -> Result<GuestMemoryMmap, MemoryError> {
    if !(16 << 20..=MMIO_HOLE).contains(&bytes) {
        return Err(MemoryError::OutOfRange {
            mib: bytes >> 20,
            max_mib: MMIO_HOLE >> 20,
        });
    }
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), bytes as usize)]).map_err(
        |source| MemoryError::Map {
            mib: bytes >> 20,
            source,
        },
    )?;
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .map_err(MemoryError::HostAddress)?;
        let entry = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the region stays mapped as long as `mem` lives, and the
        // VM is its only other user: its vCPU threads are joined before
        // `run` returns and `mem` is dropped (should the VM's fd outlive
        // the mapping for a moment, KVM drops its view of it through the
        // MMU notifier; no guest code can run then).
        unsafe { vm.set_user_memory_region(entry) }.map_err(MemoryError::Register)?;
    }
    Ok(mem)
}
