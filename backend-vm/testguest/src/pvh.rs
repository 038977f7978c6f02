//! The PVH entry (Xen's HVM direct boot ABI, as QEMU and Firecracker boot
//! a vmlinux): the ELF note naming it, and the 32-bit code that takes the
//! CPU to long mode on page tables of its own before `main`.

use crate::entry::PVH;

// XEN_ELFNOTE_PHYS32_ENTRY: the note type loaders look for, named "Xen".
const PHYS32_ENTRY: u32 = 18;
// Selectors into our GDT below; the same as the 64-bit path's, so code that
// reads CS (the IDT) sees one value either way.
const CODE: u16 = 0x08;
const DATA: u16 = 0x10;
const CR0_PE: u32 = 1;
const CR0_PG: u32 = 1 << 31;
const CR4_PAE: u32 = 1 << 5;
const MSR_EFER: u32 = 0xc000_0080;
const EFER_LME: u32 = 1 << 8;
// Present and writable; with PS, a 2 MiB page.
const TABLE: u32 = 0x03;
const LARGE_PAGE: u32 = 0x83;
const LARGE_PAGE_SIZE: u32 = 1 << 21;

// The note's descriptor is 8 bytes, as Linux's (`_ASM_PTR`) is: linux-loader
// reads its first 4, QEMU reads a whole pointer from a 64-bit ELF. Notes are
// 4-byte aligned (QEMU aligns the name by the segment's p_align).
//
// The loader enters in 32-bit protected mode, paging off, flat CS/DS/ES/SS,
// interrupts off, EBX = the hvm_start_info address; nothing else, not even
// a stack, is promised. EBX is left alone up to `main`. The page tables
// are built by the assembler, in .data, not at run time: under PVM every
// CPL0 instruction goes through the emulator, and a loop filling 512
// entries would cost more than the rest of the boot (.bss needs no
// clearing either: see entry.rs). Only lgdt, segment and control-register
// loads, moves, ALU ops, rdmsr/wrmsr and a far return (`retf`, to load CS):
// the PVM host's emulator runs all of them.
// Numeric labels avoid 0 and 1: Intel syntax would read `1b` as binary.
core::arch::global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",
    ".long 8",
    ".long {note_type}",
    ".asciz \"Xen\"",
    ".balign 4",
    ".quad isola_pvh_start",
    ".popsection",
    "",
    ".pushsection .text.pvh, \"ax\"",
    ".code32",
    ".global isola_pvh_start",
    "isola_pvh_start:",
    "    lgdt [isola_pvh_gdt_pointer]",
    "    mov eax, {data}",
    "    mov ds, eax",
    "    mov es, eax",
    "    mov ss, eax",
    "    mov esp, offset __stack_top",
    // Long mode: PAE, CR3, EFER.LME, then paging; the far return loads
    // the 64-bit code segment.
    "    mov eax, cr4",
    "    or eax, {cr4_pae}",
    "    mov cr4, eax",
    "    mov eax, offset isola_pvh_pml4",
    "    mov cr3, eax",
    "    mov ecx, {efer}",
    "    rdmsr",
    "    or eax, {efer_lme}",
    "    wrmsr",
    "    mov eax, cr0",
    "    or eax, {cr0_pg_pe}",
    "    mov cr0, eax",
    "    mov eax, offset isola_pvh_long_mode",
    "    push {code}",
    "    push eax",
    "    retf",
    ".code64",
    // A mode switch leaves the upper halves of the registers undefined:
    // RSP is set anew, and EBX is taken zero-extended.
    "isola_pvh_long_mode:",
    "    lea rsp, [rip + __stack_top]",
    "    xor ebp, ebp",
    "    mov edi, ebx",
    "    mov esi, {pvh}",
    "    call {main}",
    "6:  hlt",
    "    jmp 6b",
    ".popsection",
    "",
    // Accessed bits set, so the CPU never writes to the table.
    ".pushsection .rodata.pvh_gdt, \"a\"",
    ".balign 8",
    "isola_pvh_gdt:",
    "    .quad 0",
    "    .quad 0x00af9b000000ffff", // 64-bit code, flat
    "    .quad 0x00cf93000000ffff", // data, flat, 4 GiB
    "isola_pvh_gdt_end:",
    ".balign 2",
    "isola_pvh_gdt_pointer:",
    "    .word isola_pvh_gdt_end - isola_pvh_gdt - 1",
    "    .long isola_pvh_gdt",
    ".popsection",
    "",
    // The first 1 GiB identity-mapped with 2 MiB pages.
    ".pushsection .data.pvh_tables, \"aw\"",
    ".balign 4096",
    "isola_pvh_pml4:",
    "    .quad isola_pvh_pdpt + {table}",
    "    .fill 511, 8, 0",
    "isola_pvh_pdpt:",
    "    .quad isola_pvh_pd + {table}",
    "    .fill 511, 8, 0",
    "isola_pvh_pd:",
    "    .set isola_pvh_page, {large_page}",
    "    .rept 512",
    "    .quad isola_pvh_page",
    "    .set isola_pvh_page, isola_pvh_page + {large_page_size}",
    "    .endr",
    ".popsection",
    note_type = const PHYS32_ENTRY,
    data = const DATA,
    code = const CODE,
    large_page = const LARGE_PAGE,
    large_page_size = const LARGE_PAGE_SIZE,
    table = const TABLE,
    cr4_pae = const CR4_PAE,
    efer = const MSR_EFER,
    efer_lme = const EFER_LME,
    cr0_pg_pe = const CR0_PG | CR0_PE,
    pvh = const PVH,
    main = sym crate::main,
);
