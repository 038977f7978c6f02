//! isola's own monitor as a [`Monitor`]: the artifact handed to the KVM
//! VMM in `crate::kvm`, the caller's stdin and isola-init's control channel
//! fed into the UARTs, the kernel's console held back until isola-init runs.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use isola_guest_spec::ports::Mark;

use super::{Artifact, Input, Monitor, MonitorError, Running};
use crate::console_tail::{HeldWriter, Tail};
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
        running.set_process(std::process::id());
        let mut initrd = Vec::new();
        for path in &artifact.initrds {
            let bytes = std::fs::read(path).map_err(|source| MonitorError::Initrd {
                path: path.clone(),
                source,
            })?;
            initrd.extend(bytes);
        }
        let config = crate::kvm::VmConfig {
            kernel: artifact.kernel.clone(),
            initrd: Some(initrd),
            cmdline: artifact.cmdline.clone(),
            memory_bytes: artifact.memory_bytes,
            vcpus: artifact.vcpus,
            protocol: crate::kvm::Protocol::Auto,
            input_after_mark: Some(Mark::WorkloadStarted),
            timeout: None,
            deadline: running.deadline.clone(),
            disks: artifact.disks.clone(),
            vsock: artifact.agent.clone(),
            console: artifact.stdio_ports,
        };
        // The kernel's console until isola-init's first mark, then stderr.
        let released = Arc::new(AtomicBool::new(artifact.kernel_log));
        let tail = Arc::new(Mutex::new(Tail::default()));
        let io = crate::kvm::GuestIo {
            com1_out: Box::new(std::io::stdout()),
            com2_out: Box::new(HeldWriter {
                out: Box::new(std::io::stderr()),
                released: Arc::clone(&released),
                tail: Arc::clone(&tail),
            }),
            com1_in: match input {
                Input::None => None,
                Input::Pipe => Some(Box::new(crate::stdin_frame::Framed::new(std::io::stdin()))),
                Input::Terminal => Some(Box::new(std::io::stdin())),
            },
            // Held, as COM1's input, until the workload runs, or until
            // isola-init is parked.
            com2_in: Some(Box::new(control)),
            on_mark: vec![
                (Mark::InitUp, crate::kvm::set_flag(&released)),
                (Mark::Parked, {
                    let running = running.clone();
                    Box::new(move || running.note_parked())
                }),
            ],
        };
        let outcome = crate::kvm::run(&config, io);
        let console = if released.load(Ordering::SeqCst) {
            None
        } else {
            tail.lock().ok().and_then(|t| t.text())
        };
        match outcome.map_err(MonitorError::from) {
            Ok(exit) => Ok(GuestExit { console, ..exit }),
            Err(MonitorError::Guest(mut failed)) => {
                // A guest it stopped was only booting: nothing to show.
                if !failed.what.stopped() {
                    failed.console = console;
                }
                Err(MonitorError::Guest(failed))
            }
            Err(e) => Err(e),
        }
    }
}
