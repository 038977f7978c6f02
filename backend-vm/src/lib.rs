//! The VM backend: isola's KVM monitor and the guest artifact it boots.

pub mod backend;
mod console_tail;
pub mod deadline;
mod file_key;
pub mod guest;
pub mod host;
pub mod kernel;
pub mod kvm;
pub mod monitor;
mod signal_bytes;
mod stdin_frame;
