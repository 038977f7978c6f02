//! The VM backend: isola's KVM monitor and the guest artifact it boots.

pub mod agent;
mod artifact;
pub mod backend;
mod backend_error;
mod beside;
mod caller_signals;
mod choice;
mod console_tail;
mod control;
pub mod deadline;
mod disk;
mod file_key;
pub mod guest;
pub mod guest_exit;
pub mod host;
mod init_binary;
pub mod jail;
pub mod kernel;
pub mod kvm;
pub mod monitor;
mod notice;
mod proc_stat;
mod sandbox;
mod stdin_frame;
pub mod virtio;
pub mod vmm;
