//! Where things go in guest-physical memory: the same places Firecracker
//! and QEMU use for Linux's 64-bit boot protocol, so a Linux kernel finds
//! what it expects.

/// The GDT the vCPU starts with (four 8-byte entries).
pub const GDT: u64 = 0x500;
/// An empty IDT: interrupts stay off until the guest sets its own.
pub const IDT: u64 = 0x520;
/// The initial stack pointer (the guest sets its own early).
pub const BOOT_STACK: u64 = 0x8ff0;
/// PVH's `hvm_start_info`, its module list and memory map (where
/// Firecracker puts them).
pub const PVH_INFO: u64 = 0x6000;
pub const PVH_MODLIST: u64 = 0x6040;
pub const PVH_MEMMAP: u64 = 0x7000;
/// Linux's `boot_params`, the "zero page" (not written on a PVH boot).
pub const ZERO_PAGE: u64 = 0x7000;
/// Identity page tables for the first 1 GiB: PML4, PDPT, PD (2 MiB pages).
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD: u64 = 0xb000;
/// The end of low RAM in the e820 map: the EBDA and the BIOS area follow.
pub const EBDA_START: u64 = 0x9fc00;
/// The kernel command line (NUL-terminated).
pub const CMDLINE: u64 = 0x20000;
/// Room for the command line, NUL included (Linux's COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;
/// Where kernels are loaded: 1 MiB.
pub const HIMEM: u64 = 0x10_0000;
/// Guests run below the 32-bit MMIO hole: one memory region, no gap.
pub const MMIO_HOLE: u64 = 0xc000_0000;
/// KVM needs three pages for the TSS (Intel VMX), just below 4 GiB.
pub const TSS: u64 = 0xfffb_d000;
/// The virtio-mmio windows, one page each, side by side from here: in the
/// 32-bit MMIO hole where Firecracker puts its own, far below the IOAPIC
/// (0xfec0_0000) and the TSS.
pub const VIRTIO_MMIO: u64 = 0xd000_0000;
