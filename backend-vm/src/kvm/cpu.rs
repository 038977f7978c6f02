//! A vCPU as Linux's 64-bit boot protocol wants it: long mode with the
//! first 1 GiB identity-mapped, flat segments from a GDT, RSI pointing at
//! the zero page, the CPUID KVM supports, boot MSRs, and the local APIC's
//! LINT0/LINT1 wired as on a PC.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_msr_entry, kvm_regs, kvm_segment, CpuId, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::error::BootError;
use super::layout::{BOOT_STACK, GDT, IDT, PD, PDPT, PML4, PVH_INFO, ZERO_PAGE};

// Control-register and EFER bits.
const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// GDT entries: null, 64-bit code, data, TSS (as Firecracker and Linux's own
/// boot code lay them out), then a 32-bit code segment for PVH's entry.
const GDT_ENTRIES: [u64; 5] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
    gdt_entry(0xc09b, 0, 0xfffff),
];

const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

fn segment(entry: u64, index: u8) -> kvm_segment {
    let bit = |n: u32| ((entry >> n) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | (((entry >> 56) & 0xff) << 24),
        limit: {
            let raw = ((entry & 0xffff) | (((entry >> 48) & 0xf) << 16)) as u32;
            // With granularity set the limit counts 4 KiB pages.
            if bit(55) == 1 {
                (raw << 12) | 0xfff
            } else {
                raw
            }
        },
        selector: u16::from(index) * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: bit(47),
        dpl: ((entry >> 45) & 0x3) as u8,
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g: bit(55),
        avl: bit(52),
        unusable: u8::from(bit(47) == 0),
        padding: 0,
    }
}

/// Write the GDT, an empty IDT and the identity page tables (2 MiB pages
/// over the first 1 GiB) into guest memory.
pub fn write_tables(mem: &GuestMemoryMmap) -> Result<(), BootError> {
    let w = |what: &'static str, r: Result<(), vm_memory::GuestMemoryError>| {
        r.map_err(|source| BootError::Table { what, source })
    };
    for (i, entry) in GDT_ENTRIES.iter().enumerate() {
        w(
            "GDT",
            mem.write_obj(*entry, GuestAddress(GDT + 8 * i as u64)),
        )?;
    }
    w("IDT", mem.write_obj(0u64, GuestAddress(IDT)))?;
    w("PML4", mem.write_obj(PDPT | 0x03, GuestAddress(PML4)))?;
    w("PDPT", mem.write_obj(PD | 0x03, GuestAddress(PDPT)))?;
    for i in 0..512u64 {
        // Present, writable, 2 MiB page.
        w(
            "page directory",
            mem.write_obj((i << 21) | 0x83, GuestAddress(PD + 8 * i)),
        )?;
    }
    Ok(())
}

/// What every vCPU gets: the CPUID KVM supports (with this vCPU's APIC ID
/// written in), the FPU's reset state, boot MSRs and LINT0/LINT1.
pub fn setup(vcpu: &VcpuFd, id: u8, cpuid: &CpuId) -> Result<(), BootError> {
    let kvm = |ioctl: &'static str| move |source| BootError::Kvm { ioctl, source };

    let mut cpuid = cpuid.clone();
    for e in cpuid.as_mut_slice() {
        match e.function {
            // EBX[31:24]: initial APIC ID.
            1 => e.ebx = (e.ebx & 0x00ff_ffff) | (u32::from(id) << 24),
            // x2APIC ID of this vCPU.
            0xb | 0x1f => e.edx = u32::from(id),
            _ => {}
        }
    }
    vcpu.set_cpuid2(&cpuid).map_err(kvm("KVM_SET_CPUID2"))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm("KVM_SET_FPU"))?;

    set_boot_msrs(vcpu)?;
    set_lint(vcpu)
}

/// Start the boot vCPU at `entry`: in long mode with RSI at the zero page,
/// or for `pvh` in 32-bit protected mode with RBX at the PVH start info.
pub fn boot_state(vcpu: &VcpuFd, entry: u64, pvh: bool) -> Result<(), BootError> {
    let kvm = |ioctl: &'static str| move |source| BootError::Kvm { ioctl, source };
    let mut sregs = vcpu.get_sregs().map_err(kvm("KVM_GET_SREGS"))?;
    let data = segment(GDT_ENTRIES[2], 2);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(GDT_ENTRIES[3], 3);
    sregs.gdt.base = GDT;
    sregs.gdt.limit = (GDT_ENTRIES.len() * 8 - 1) as u16;
    sregs.idt.base = IDT;
    sregs.idt.limit = 7;
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: entry,
        ..Default::default()
    };
    if pvh {
        // PVH: flat 32-bit protected mode, paging off, RBX = start info.
        sregs.cs = segment(GDT_ENTRIES[4], 4);
        sregs.cr0 = CR0_PE;
        sregs.cr3 = 0;
        sregs.cr4 = 0;
        sregs.efer = 0;
        regs.rbx = PVH_INFO;
    } else {
        sregs.cs = segment(GDT_ENTRIES[1], 1);
        sregs.cr3 = PML4;
        sregs.cr4 |= CR4_PAE;
        sregs.cr0 |= CR0_PE | CR0_PG;
        sregs.efer |= EFER_LME | EFER_LMA;
        regs.rsp = BOOT_STACK;
        regs.rbp = BOOT_STACK;
        regs.rsi = ZERO_PAGE;
    }
    vcpu.set_sregs(&sregs).map_err(kvm("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs).map_err(kvm("KVM_SET_REGS"))?;
    Ok(())
}

/// The MSRs Linux expects at boot (as Firecracker sets them): syscall
/// entry points cleared, the TSC at zero, fast strings enabled.
fn set_boot_msrs(vcpu: &VcpuFd) -> Result<(), BootError> {
    const MSRS: [(u32, u64); 9] = [
        (0x174, 0),       // IA32_SYSENTER_CS
        (0x175, 0),       // IA32_SYSENTER_ESP
        (0x176, 0),       // IA32_SYSENTER_EIP
        (0xc000_0081, 0), // STAR
        (0xc000_0082, 0), // LSTAR
        (0xc000_0084, 0), // SYSCALL_MASK
        (0xc000_0102, 0), // KERNEL_GS_BASE
        (0x10, 0),        // TSC
        (0x1a0, 1),       // IA32_MISC_ENABLE: fast strings
    ];
    let entries: Vec<kvm_msr_entry> = MSRS
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let msrs = Msrs::from_entries(&entries).map_err(BootError::MsrList)?;
    let set = vcpu.set_msrs(&msrs).map_err(|source| BootError::Kvm {
        ioctl: "KVM_SET_MSRS",
        source,
    })?;
    if set != entries.len() {
        return Err(BootError::MsrRefused {
            set,
            of: entries.len(),
            index: MSRS.get(set).map_or(0, |m| m.0),
        });
    }
    Ok(())
}

/// LINT0 = ExtINT (the PIC's line), LINT1 = NMI, as a PC's firmware leaves them.
fn set_lint(vcpu: &VcpuFd) -> Result<(), BootError> {
    const LVT_LINT0: usize = 0x350;
    const LVT_LINT1: usize = 0x360;
    const DELIVERY_MODE_EXTINT: u32 = 0x7;
    const DELIVERY_MODE_NMI: u32 = 0x4;
    let kvm = |ioctl: &'static str| move |source| BootError::Kvm { ioctl, source };
    let mut lapic: kvm_lapic_state = vcpu.get_lapic().map_err(kvm("KVM_GET_LAPIC"))?;
    let mut set = |reg: usize, mode: u32| {
        let bytes: [u8; 4] = lapic.regs[reg..reg + 4]
            .iter()
            .map(|b| *b as u8)
            .collect::<Vec<u8>>()
            .try_into()
            .unwrap_or([0; 4]);
        let value = (u32::from_le_bytes(bytes) & !0x700) | (mode << 8);
        for (dst, src) in lapic.regs[reg..reg + 4].iter_mut().zip(value.to_le_bytes()) {
            *dst = src as _;
        }
    };
    set(LVT_LINT0, DELIVERY_MODE_EXTINT);
    set(LVT_LINT1, DELIVERY_MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(kvm("KVM_SET_LAPIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entries_decode_to_flat_long_mode_segments() {
        let code = segment(GDT_ENTRIES[1], 1);
        assert_eq!((code.base, code.limit, code.selector), (0, 0xffff_ffff, 8));
        assert_eq!(
            (code.l, code.db, code.present, code.s, code.type_),
            (1, 0, 1, 1, 0xb)
        );
        let data = segment(GDT_ENTRIES[2], 2);
        assert_eq!((data.db, data.l, data.type_, data.selector), (1, 0, 3, 16));
        let code32 = segment(GDT_ENTRIES[4], 4);
        assert_eq!(
            (code32.l, code32.db, code32.type_, code32.selector),
            (0, 1, 0xb, 0x20)
        );
        let null = segment(GDT_ENTRIES[0], 0);
        assert_eq!(null.unusable, 1);
    }
}
