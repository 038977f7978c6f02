//! The VM backend: isola's KVM monitor and the guest artifact it boots.

pub mod backend;
mod console_tail;
pub mod elf_notes;
mod file_key;
pub mod guest;
pub mod host;
pub mod kernel;
pub mod kernel_format;
pub mod kernel_store;
pub mod kvm;
pub mod monitor;
pub mod qemu;
mod qemu_serial;
mod signal_bytes;
mod stdin_frame;
pub mod vmlinux;
