//! The 64-bit entry point the monitor jumps to (the ELF's e_entry): our own
//! stack, then `main` with the boot_params address from RSI.
//! The PVH entry (pvh.rs) reaches `main` by its own way.

/// How the guest was entered, `main`'s second argument: the information's
/// address is a zero page (Linux's 64-bit protocol) or an hvm_start_info.
pub const LINUX64: u64 = 0;
pub const PVH: u64 = 1;

// The monitor makes no promise about RSP, so nothing may touch the stack
// before it is set. Only plain moves here: the PVM host emulates CPL0 code
// and rejects less common instructions. .bss is not cleared: an ELF loader
// zero-fills what a segment's p_memsz has beyond its file bytes (QEMU does;
// isola's monitor loads into fresh, zeroed guest memory), and under PVM a
// loop storing 16 KiB of zeros costs the emulator some 20 ms.
core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    lea rsp, [rip + __stack_top]",
    "    xor ebp, ebp",
    "    mov rdi, rsi",
    "    mov esi, {linux64}",
    "    call {main}",
    "4:  hlt",
    "    jmp 4b",
    "",
    ".section .stack, \"aw\", @nobits",
    ".balign 16",
    ".space {stack_size}",
    "__stack_top:",
    linux64 = const LINUX64,
    main = sym crate::main,
    stack_size = const STACK_SIZE,
);

const STACK_SIZE: usize = 16 * 1024;
