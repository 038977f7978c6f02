//! The VM backend: isola's KVM monitor and the guest artifact it boots.

pub mod host;
pub mod kvm;
