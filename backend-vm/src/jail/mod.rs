//! The monitor process's confinement: each of its threads, by kind, takes
//! a seccomp filter of the syscalls that kind uses, once the process has
//! left root (see `vmm`); in-process monitors (tests, `isola vm boot`) arm
//! nothing and these hooks do nothing.

mod filters;
pub mod privileges;
pub mod sigsys;

use std::sync::{Condvar, Mutex, OnceLock};

pub use filters::{allowed, FilterError};

/// What a thread of the monitor does, which decides its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadKind {
    /// Runs KVM_RUN and the port devices of its exits.
    Vcpu,
    /// Moves bytes between the host and the devices: the UARTs' input
    /// feeders (and the virtio devices' event thread).
    Device,
    /// Builds the VM, then watches the deadline and waits for the vCPUs
    /// (the watcher and the PIT's set-up thread are of its kind).
    Main,
}

impl ThreadKind {
    pub const ALL: [ThreadKind; 3] = [ThreadKind::Vcpu, ThreadKind::Device, ThreadKind::Main];

    /// Its name in reports and in the SIGSYS record.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::Device => "device",
            ThreadKind::Main => "main",
        }
    }

    pub fn from_name(name: &str) -> Option<ThreadKind> {
        ThreadKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// How a sentence names it.
    pub fn described(self) -> &'static str {
        match self {
            ThreadKind::Vcpu => "a vCPU thread",
            ThreadKind::Device => "its device thread",
            ThreadKind::Main => "its main thread",
        }
    }
}

/// The filters of an armed process, and whether the main thread has
/// taken its own (which opens the gate for the others).
struct Armed {
    filters: filters::Compiled,
    /// A test build's hook: after taking its filter, a thread of this kind
    /// makes a syscall no filter allows.
    forbidden: Option<ThreadKind>,
    main_ready: Mutex<bool>,
    opened: Condvar,
}

static ARMED: OnceLock<Armed> = OnceLock::new();

/// Make [`thread_start`] and [`main_ready`] install filters in this
/// process. Called once, by the monitor process, before its VM is built.
pub fn arm(forbidden: Option<ThreadKind>) -> Result<(), FilterError> {
    let filters = filters::compile()?;
    let _ = ARMED.set(Armed {
        filters,
        forbidden,
        main_ready: Mutex::new(false),
        opened: Condvar::new(),
    });
    Ok(())
}

/// Called first on each new thread of the monitor: once the process has
/// left root and the main thread has its filter, take `kind`'s. A thread
/// that cannot be confined ends the process: it must not run unfiltered.
pub fn thread_start(kind: ThreadKind) {
    let Some(armed) = ARMED.get() else {
        return;
    };
    if let Ok(mut ready) = armed.main_ready.lock() {
        while !*ready {
            ready = match armed.opened.wait(ready) {
                Ok(r) => r,
                Err(_) => break,
            };
        }
    }
    confine(armed, kind);
}

/// Called by the main thread once every vCPU thread is spawned: take the
/// main thread's filter and let the waiting threads take theirs.
pub fn main_ready() {
    let Some(armed) = ARMED.get() else {
        return;
    };
    confine(armed, ThreadKind::Main);
    if let Ok(mut ready) = armed.main_ready.lock() {
        *ready = true;
    }
    armed.opened.notify_all();
}

fn confine(armed: &Armed, kind: ThreadKind) {
    sigsys::set_thread_kind(kind);
    if let Err(e) = seccompiler::apply_filter(armed.filters.of(kind)) {
        sigsys::abort_unconfined(kind, &e);
    }
    if armed.forbidden == Some(kind) {
        sigsys::forbidden_syscall();
    }
}
