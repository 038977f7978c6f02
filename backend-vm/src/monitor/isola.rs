//! isola's own monitor as a [`Monitor`]: the KVM VMM in `crate::kvm`, run
//! in a process of its own (isola-vmm), jailed and seccomp-filtered (see
//! `crate::vmm`), with the caller's stdio and isola-init's control channel
//! as its UARTs' ends.

use std::fs::File;

use super::{Artifact, Input, Monitor, MonitorError, Running};
use crate::guest_exit::GuestExit;

/// isola's own monitor on /dev/kvm.
pub struct Isola;

impl Monitor for Isola {
    fn name(&self) -> &'static str {
        "isola"
    }

    fn stops_unresponsive_guests(&self) -> bool {
        true
    }

    fn run(
        &self,
        artifact: &Artifact,
        input: Input,
        control: File,
        running: &Running,
    ) -> Result<GuestExit, MonitorError> {
        crate::vmm::parent::run(artifact, input, control, running)
    }
}
