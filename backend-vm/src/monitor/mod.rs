//! What runs a guest artifact: isola's own KVM monitor (the product) or
//! QEMU's microvm (for comparison, and where isola's monitor cannot boot
//! Linux). Both see the same artifact and speak the same devices: COM1 is the
//! workload's stdin/stdout, COM2 its stderr, port 0xf4 its exit status.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::console_tail::{self, HeldWriter, Tail};
use crate::kvm::{End, VmError};

/// How a guest run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub end: End,
    /// Boot-timer marks with their time since the monitor started (on
    /// QEMU, which has no boot timer: when isola-init's records came).
    pub marks: Vec<(u8, Duration)>,
    /// The guest's last console lines, when isola-init never started (the
    /// kernel's boot log is held back until it does; see `console_tail`).
    pub console: Option<String>,
}

/// What a VM boots.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub kernel: PathBuf,
    /// newc archives, unpacked by the kernel in this order.
    pub initrds: Vec<PathBuf>,
    pub cmdline: String,
    pub memory_bytes: u64,
    pub vcpus: u8,
    /// Show the kernel's console (COM2) live from the start (isola -v),
    /// instead of holding it until isola-init runs.
    pub kernel_log: bool,
}

/// What the caller's stdin is to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Not read (no `-i`).
    None,
    /// The workload's stdin, a pipe in the guest: framed (see
    /// `stdin_frame`), so that its end reaches the workload.
    Pipe,
    /// `-t`: raw bytes for the guest's terminal on COM1.
    Terminal,
}

pub trait Monitor {
    /// `isola` or `qemu`, as `--vmm` takes it.
    fn name(&self) -> &'static str;

    /// Boot `artifact` with the guest's COM1 on this process's stdout (and
    /// stdin, as `input` says), COM2 on its stderr, until the guest ends.
    fn run(&self, artifact: &Artifact, input: Input) -> Result<Ran, VmError>;
}

/// isola's own monitor on /dev/kvm.
pub struct Kvm;

impl Monitor for Kvm {
    fn name(&self) -> &'static str {
        "isola"
    }

    fn run(&self, artifact: &Artifact, input: Input) -> Result<Ran, VmError> {
        let mut initrd = Vec::new();
        for path in &artifact.initrds {
            let bytes = std::fs::read(path).map_err(|e| {
                VmError::Config(format!("cannot read the initramfs {}: {e}", path.display()))
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
            // isola-init's "workload started" mark.
            input_after_mark: Some(2),
            timeout: None,
            deadline: crate::kvm::Deadline::default(),
        };
        // The kernel's console until isola-init's first mark, then stderr.
        let released = Arc::new(AtomicBool::new(artifact.kernel_log));
        let tail = Arc::new(Mutex::new(Tail::default()));
        // Ctrl-C, SIGTERM and the rest reach the workload through COM2.
        let (signals, _unblock) = crate::signal_bytes::SignalBytes::start(
            input == Input::Terminal,
            config.deadline.clone(),
        )?;
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
            com2_in: Some(Box::new(signals)),
            on_mark: vec![(1, Arc::clone(&released))],
        };
        let outcome = crate::kvm::run(&config, io);
        let console = if released.load(Ordering::SeqCst) {
            None
        } else {
            tail.lock().ok().and_then(|t| t.text())
        };
        match outcome {
            Ok(o) => Ok(Ran {
                end: o.end,
                marks: o.marks,
                console,
            }),
            Err(VmError::Guest(sentence)) => Err(VmError::Guest(console_tail::with_lines(
                &sentence,
                console.as_deref(),
            ))),
            Err(e) => Err(e),
        }
    }
}
