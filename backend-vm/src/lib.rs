//! The VM backend: isola's KVM monitor and the guest artifact it boots.
//! Its implementation arrives with the VM-backend issue.
