//! Running the vCPUs, one thread each, until one of them ends the VM (exit
//! port, reset, a fatal exit) or the deadline passes; the others are then
//! kicked out of KVM_RUN and joined.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use isola_guest_spec::ports::Mark;
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::devices::{Action, Devices};
use super::error::{VcpuError, VmError};
use super::kick::{self, Stop};
use crate::deadline::{Deadline, SIGNAL_GRACE};
use crate::guest_exit::{Failure, GuestFailed};

/// The boot timer's marks, each with when it came (since `start`).
pub struct Marks {
    start: std::time::Instant,
    seen: Mutex<Vec<(u8, Duration)>>,
    /// Called when their mark arrives (what opens COM1 input and COM2's
    /// pass-through, what tells the sandbox the guest is parked).
    pub gates: Vec<(Mark, super::OnMark)>,
}

impl Marks {
    pub fn new(start: std::time::Instant) -> Marks {
        Marks {
            start,
            seen: Mutex::new(Vec::new()),
            gates: Vec::new(),
        }
    }

    fn note(&self, mark: u8) {
        for (gate, call) in &self.gates {
            if gate.byte() == mark {
                call();
            }
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((mark, self.start.elapsed()));
        }
    }

    pub fn into_inner(self) -> Vec<(u8, Duration)> {
        self.seen.into_inner().unwrap_or_default()
    }
}

/// How often the watcher looks for a newly set [`Deadline`].
const DEADLINE_POLL: Duration = Duration::from_millis(100);

/// What ended the VM: the exit port's status, or `None` for a reset.
type Ended = Result<Option<u8>, VmError>;

/// Run every vCPU to the VM's end.
pub fn run_all(
    vcpus: Vec<VcpuFd>,
    devices: &Devices,
    timeout: Option<Duration>,
    deadline: &Deadline,
    marks: &Marks,
) -> Ended {
    kick::install()?;
    let stop = Stop::default();
    let result: Mutex<Option<Ended>> = Mutex::new(None);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let started = Instant::now();
    std::thread::scope(|s| {
        let (stop_on_time, result_on_time) = (&stop, &result);
        let watcher = s.spawn(move || {
            crate::jail::thread_start(crate::jail::ThreadKind::Main);
            // The deadline may be set at any time: look at it often.
            let fixed = timeout.map(|t| started + t);
            loop {
                let armed = deadline.get();
                let next = fixed.into_iter().chain(armed).min();
                let wait = next.map_or(DEADLINE_POLL, |at| {
                    at.saturating_duration_since(Instant::now())
                        .min(DEADLINE_POLL)
                });
                match done_rx.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let now = Instant::now();
                if fixed.is_some_and(|at| now >= at) {
                    break;
                }
                if armed.is_some_and(|at| now >= at) {
                    if let Ok(mut r) = result_on_time.lock() {
                        r.get_or_insert(Err(
                            GuestFailed::new(Failure::Unresponsive(SIGNAL_GRACE)).into()
                        ));
                    }
                    break;
                }
            }
            stop_on_time.stop_all();
        });
        let kicker = s.spawn(|| {
            crate::jail::thread_start(crate::jail::ThreadKind::Main);
            stop.kick_until_clear();
        });
        let mut threads = Vec::new();
        for (id, vcpu) in vcpus.into_iter().enumerate() {
            let (stop, result) = (&stop, &result);
            let spawned = std::thread::Builder::new()
                .name(format!("isola-vcpu{id}"))
                .spawn_scoped(s, move || {
                    crate::jail::thread_start(crate::jail::ThreadKind::Vcpu);
                    stop.register();
                    let end = vcpu_loop(vcpu, devices, stop, marks);
                    stop.unregister();
                    if let Some(end) = end {
                        if let Ok(mut r) = result.lock() {
                            r.get_or_insert(end);
                        }
                        stop.stop_all();
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    if let Ok(mut r) = result.lock() {
                        r.get_or_insert(Err(VcpuError::Thread { id, source: e }.into()));
                    }
                    stop.stop_all();
                    break;
                }
            }
        }
        // The vCPUs wait for the main thread's filter before they run.
        crate::jail::main_ready();
        for t in threads {
            let _ = t.join();
        }
        // A kicker never woken (no vCPU ended the VM) ends here.
        stop.stop_all();
        let _ = kicker.join();
        drop(done_tx);
        let _ = watcher.join();
    });
    let ended = result.into_inner().ok().flatten();
    ended.unwrap_or_else(|| {
        Err(GuestFailed::new(Failure::Timeout(timeout.unwrap_or_default())).into())
    })
}

/// One vCPU's exits, until it ends the VM (`Some`) or is stopped (`None`).
fn vcpu_loop(mut vcpu: VcpuFd, devices: &Devices, stop: &Stop, marks: &Marks) -> Option<Ended> {
    let failed = |what: Failure| Some(Err(GuestFailed::new(what).into()));
    loop {
        if stop.is_set() {
            return None;
        }
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(source) => {
                return Some(Err(VcpuError::Kvm {
                    ioctl: "KVM_RUN",
                    source,
                }
                .into()))
            }
        };
        match exit {
            VcpuExit::IoOut(port, data) => match devices.port_out(port, data) {
                Action::Continue => {}
                Action::Exit(code) => return Some(Ok(Some(code))),
                Action::Reset => return Some(Ok(None)),
                Action::Mark(mark) => marks.note(mark),
            },
            VcpuExit::IoIn(port, data) => devices.port_in(port, data),
            VcpuExit::MmioRead(addr, data) => devices.mmio_read(addr, data),
            VcpuExit::MmioWrite(addr, data) => devices.mmio_write(addr, data),
            VcpuExit::Hlt => return failed(Failure::Halted),
            VcpuExit::Shutdown => return failed(Failure::TripleFault),
            VcpuExit::InternalError => {
                let run = vcpu.get_kvm_run();
                // SAFETY: KVM filled the internal-error member for this exit.
                let suberror = unsafe { run.__bindgen_anon_1.internal.suberror };
                return failed(Failure::Unemulated { suberror });
            }
            VcpuExit::FailEntry(reason, _) => return failed(Failure::FailEntry { reason }),
            VcpuExit::SystemEvent(kind, _) => return failed(Failure::SystemEvent { kind }),
            other => return failed(Failure::UnhandledExit(format!("{other:?}"))),
        }
    }
}
