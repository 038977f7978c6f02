//! Loading a guest: the kernel (an ELF vmlinux or a bzImage, by
//! linux-loader), the command line, the initrd near the top of RAM, and the
//! boot information pointing at them: PVH's start info for an ELF with a PVH
//! note, else the zero page of Linux's 64-bit boot protocol.

use std::fs::File;
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{load_cmdline, BzImage, Elf, KernelLoader, KernelLoaderResult};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::error::{BootError, KernelError, MemoryError, VmError};
use super::layout::{
    CMDLINE, CMDLINE_MAX, EBDA_START, HIMEM, PVH_INFO, PVH_MEMMAP, PVH_MODLIST, ZERO_PAGE,
};
use super::virtio::MmioSlot;

const E820_RAM: u32 = 1;
/// The zero page's "HdrS" magic, boot flag and loader type (0xff: undefined
/// loader), which Linux checks before it trusts the setup header.
const HDR_MAGIC: u32 = 0x5372_6448;
const BOOT_FLAG: u16 = 0xaa55;
const LOADER_UNDEFINED: u8 = 0xff;
const KERNEL_ALIGNMENT: u32 = 0x0100_0000;
/// `hvm_start_info.magic` (XEN_HVM_START_MAGIC_VALUE).
const PVH_MAGIC: u32 = 0x336e_c578;

/// Where the boot put things, for the vCPU set-up and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub entry: u64,
    /// Entered through its PVH note (32-bit, paging off, RBX = start info)
    /// rather than Linux's 64-bit boot protocol.
    pub pvh: bool,
    pub initrd: Option<(u64, u64)>,
}

/// How to enter a kernel that offers both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// PVH when the ELF kernel has the note (Linux boots ~20% faster that
    /// way: no decompressor), else the 64-bit boot protocol.
    #[default]
    Auto,
    /// Always Linux's 64-bit boot protocol with the zero page.
    Linux64,
}

/// `devices` are added to the command line as `virtio_mmio.device=`
/// entries, where Linux finds virtio-mmio devices on a machine without
/// ACPI or a device tree.
pub fn load(
    mem: &GuestMemoryMmap,
    kernel: &Path,
    initrd: Option<&[u8]>,
    cmdline: &str,
    devices: &[MmioSlot],
    protocol: Protocol,
) -> Result<Loaded, VmError> {
    let mut file = File::open(kernel).map_err(|source| KernelError::Open {
        path: kernel.to_path_buf(),
        source,
    })?;
    let result = load_kernel(mem, &mut file, kernel)?;

    let mut line = Cmdline::new(CMDLINE_MAX).map_err(KernelError::CmdlineBuffer)?;
    let too_long = |source| KernelError::Cmdline {
        cmdline: cmdline.to_string(),
        max: CMDLINE_MAX - 1,
        source,
    };
    line.insert_str(cmdline).map_err(too_long)?;
    for d in devices {
        line.add_virtio_mmio_device(d.size, GuestAddress(d.base), d.irq, None)
            .map_err(too_long)?;
    }
    let cmdline_len = line
        .as_cstring()
        .map_err(KernelError::CmdlineBuffer)?
        .as_bytes_with_nul()
        .len();
    load_cmdline(mem, GuestAddress(CMDLINE), &line).map_err(KernelError::WriteCmdline)?;

    let mem_end = mem.last_addr().0 + 1;
    let initrd_at = match initrd {
        Some(bytes) => Some(place_initrd(mem, bytes, result.kernel_end, mem_end)?),
        None => None,
    };

    let e820 = [(0, EBDA_START), (HIMEM, mem_end - HIMEM)];
    if let (Protocol::Auto, PvhBootCapability::PvhEntryPresent(entry)) =
        (protocol, result.pvh_boot_cap)
    {
        write_start_info(mem, &e820, initrd_at)?;
        return Ok(Loaded {
            entry: entry.0,
            pvh: true,
            initrd: initrd_at,
        });
    }
    write_zero_page(mem, &result, cmdline_len, &e820, initrd_at)?;
    Ok(Loaded {
        entry: entry_point(&result),
        pvh: false,
        initrd: initrd_at,
    })
}

fn write_zero_page(
    mem: &GuestMemoryMmap,
    result: &KernelLoaderResult,
    cmdline_len: usize,
    e820: &[(u64, u64)],
    initrd_at: Option<(u64, u64)>,
) -> Result<(), BootError> {
    let mut params = boot_params::default();
    if let Some(hdr) = result.setup_header {
        // A bzImage brings its own setup header; keep what it says.
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.boot_flag = BOOT_FLAG;
    params.hdr.header = HDR_MAGIC;
    params.hdr.kernel_alignment = KERNEL_ALIGNMENT;
    params.hdr.cmd_line_ptr = CMDLINE as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    if let Some((addr, size)) = initrd_at {
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
        params.ext_ramdisk_image = (addr >> 32) as u32;
        params.ext_ramdisk_size = (size >> 32) as u32;
    }
    for (i, (addr, size)) in e820.iter().enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: *addr,
            size: *size,
            r#type: E820_RAM,
        };
    }
    params.e820_entries = e820.len() as u8;
    LinuxBootConfigurator::write_bootparams(&BootParams::new(&params, GuestAddress(ZERO_PAGE)), mem)
        .map_err(|source| BootError::BootParams {
            what: "zero page",
            source,
        })
}

/// PVH's `hvm_start_info`, its memory map and the initrd as its one module.
fn write_start_info(
    mem: &GuestMemoryMmap,
    e820: &[(u64, u64)],
    initrd_at: Option<(u64, u64)>,
) -> Result<(), BootError> {
    let memmap: Vec<hvm_memmap_table_entry> = e820
        .iter()
        .map(|&(addr, size)| hvm_memmap_table_entry {
            addr,
            size,
            type_: E820_RAM,
            reserved: 0,
        })
        .collect();
    let mut info = hvm_start_info {
        magic: PVH_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE,
        memmap_paddr: PVH_MEMMAP,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO));
    if let Some((paddr, size)) = initrd_at {
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST;
        params = BootParams::new(&info, GuestAddress(PVH_INFO));
        let module = hvm_modlist_entry {
            paddr,
            size,
            ..Default::default()
        };
        params.set_modules(&[module], GuestAddress(PVH_MODLIST));
    }
    params.set_sections(&memmap, GuestAddress(PVH_MEMMAP));
    PvhBootConfigurator::write_bootparams(&params, mem).map_err(|source| BootError::BootParams {
        what: "PVH start info",
        source,
    })
}

/// An ELF vmlinux (entered at its 64-bit entry) or a bzImage (entered at
/// its 64-bit entry, 0x200 past its protected-mode code), by its magic.
fn load_kernel(
    mem: &GuestMemoryMmap,
    file: &mut File,
    path: &Path,
) -> Result<KernelLoaderResult, KernelError> {
    let is_elf = matches!(
        crate::kernel::format::read_format(file),
        Ok(Some(crate::kernel::format::Format::Elf))
    );
    let himem = Some(GuestAddress(HIMEM));
    if is_elf {
        return Elf::load(mem, None, file, himem).map_err(|source| KernelError::Elf {
            path: path.to_path_buf(),
            source,
        });
    }
    BzImage::load(mem, None, file, himem).map_err(|source| KernelError::NotAKernel {
        path: path.to_path_buf(),
        source,
    })
}

fn entry_point(result: &KernelLoaderResult) -> u64 {
    match result.setup_header {
        // bzImage: startup_64 sits 0x200 into the protected-mode kernel.
        Some(_) => result.kernel_load.0 + 0x200,
        None => result.kernel_load.0,
    }
}

/// The initrd goes as high as it fits, page-aligned, above the kernel.
fn place_initrd(
    mem: &GuestMemoryMmap,
    bytes: &[u8],
    kernel_end: u64,
    mem_end: u64,
) -> Result<(u64, u64), VmError> {
    let size = bytes.len() as u64;
    let addr = mem_end.checked_sub(size).map(|a| a & !0xfff);
    match addr {
        Some(addr) if addr >= kernel_end => {
            mem.write_slice(bytes, GuestAddress(addr))
                .map_err(|source| MemoryError::Write {
                    what: "initrd",
                    source,
                })?;
            Ok((addr, size))
        }
        _ => Err(KernelError::InitrdTooBig {
            initrd_mib: size >> 20,
            memory_mib: mem_end >> 20,
        }
        .into()),
    }
}
