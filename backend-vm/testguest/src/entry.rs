//! The 64-bit entry point the monitor jumps to (the ELF's e_entry): our own
//! stack, a cleared .bss, then `main` with the boot_params address from RSI.
//! The PVH entry (pvh.rs) reaches `main` by its own way.

/// How the guest was entered, `main`'s second argument: the information's
/// address is a zero page (Linux's 64-bit protocol) or an hvm_start_info.
pub const LINUX64: u64 = 0;
pub const PVH: u64 = 1;

// The monitor makes no promise about RSP, so nothing may touch the stack
// before it is set. Only plain moves and compares here: the PVM host emulates
// CPL0 code and rejects less common instructions.
core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    lea rsp, [rip + __stack_top]",
    "    xor ebp, ebp",
    "    lea rdi, [rip + __bss_start]",
    "    lea rcx, [rip + __bss_end]",
    "2:  cmp rdi, rcx",
    "    jae 3f",
    "    mov qword ptr [rdi], 0",
    "    add rdi, 8",
    "    jmp 2b",
    "3:  mov rdi, rsi",
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
