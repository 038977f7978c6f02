//! The monitor process (isola-vmm): read the config, confine itself (no
//! new privileges, its jail, the seccomp filters armed), build the VM,
//! leave root, and run the guest, reporting its marks and its end.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use isola_core::chain::chain;
use isola_guest_spec::ports::Mark;

use super::wire::{End, Record, VmmConfig, WireInput, CONTROL_FD, REPORT_FD, TAP_FD};
use crate::console_tail::{HeldWriter, Tail};
use crate::jail::{self, privileges, sigsys};
use crate::kvm::{self, Machine, VmError};

/// Run the monitor process: its exit status (the guest's end is in the
/// report, not in this).
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match args.as_slice() {
        [flag, json] if flag == "--config" => serde_json::from_str::<VmmConfig>(json),
        // What `isola bench` shows of the filters: each kind's syscalls.
        [flag] if flag == "--filters" => {
            let kinds: Vec<(&str, Vec<&str>)> = jail::ThreadKind::ALL
                .into_iter()
                .map(|k| (k.name(), jail::allowed(k)))
                .collect();
            println!("{}", serde_json::to_string(&kinds).unwrap_or_default());
            return 0;
        }
        _ => {
            eprintln!("isola-vmm is started by isola, not by hand");
            return 2;
        }
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("isola-vmm: its config: {e}");
            return 2;
        }
    };
    if let Err(e) = sigsys::install(REPORT_FD) {
        report(&Record::Error(format!(
            "the VM monitor cannot handle SIGSYS: {e}"
        )));
        return 1;
    }
    match run(&config) {
        Ok(end) => {
            match serde_json::to_string(&end) {
                Ok(json) => report(&Record::End(json)),
                Err(e) => report(&Record::Error(format!("the VM monitor's report: {e}"))),
            }
            0
        }
        Err(message) => {
            report(&Record::Error(message));
            1
        }
    }
}

fn report(record: &Record) {
    sigsys::write_record(record.line().as_bytes());
}

fn run(config: &VmmConfig) -> Result<End, String> {
    let started = Instant::now();
    privileges::no_new_privileges().map_err(|e| chain(&e))?;
    let mut initrd = Vec::new();
    for path in &config.artifact.initrds {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the initramfs {}: {e}", path.display()))?;
        initrd.extend(bytes);
    }
    let art = &config.artifact;
    let (kernel, disks, vsock) = match &config.jail {
        Some(jail) => {
            privileges::drop_inheritable_capabilities().map_err(|e| chain(&e))?;
            // Refused as the in-process monitor refuses them: a kernel that
            // cannot be opened, a host without /dev/kvm (not bound: KVM's
            // own open then says so in its sentence).
            File::open(&config.artifact.kernel).map_err(|e| {
                format!(
                    "cannot open the kernel {}: {e}",
                    config.artifact.kernel.display()
                )
            })?;
            let mut binds = vec![privileges::Bind {
                host: config.artifact.kernel.clone(),
                inside: "kernel".into(),
            }];
            if std::path::Path::new("/dev/kvm").exists() {
                binds.push(privileges::Bind {
                    host: "/dev/kvm".into(),
                    inside: "dev/kvm".into(),
                });
            }
            // Each disk bound in under a name of its own; its read-only
            // flag is the device's to enforce.
            let mut disks = art.disks.clone();
            for (i, disk) in disks.iter_mut().enumerate() {
                let inside = format!("disk{i}");
                binds.push(privileges::Bind {
                    host: disk.path.clone(),
                    inside: inside.clone().into(),
                });
                disk.path = PathBuf::from("/").join(inside);
            }
            privileges::enter_jail(&jail.dir, &binds).map_err(|e| chain(&e))?;
            // The agent's socket is made in the jail, whose directory the
            // host sees: isola links the artifact's path to it.
            let vsock = art
                .agent
                .as_ref()
                .map(|_| PathBuf::from("/").join(super::wire::AGENT_IN_JAIL));
            (PathBuf::from("/kernel"), disks, vsock)
        }
        None => (art.kernel.clone(), art.disks.clone(), art.agent.clone()),
    };
    jail::arm(config.test_forbidden).map_err(|e| chain(&e))?;
    let net = config.artifact.net.as_ref().map(|link| kvm::NetDevice {
        // SAFETY: isola put the tap here for this process when the
        // artifact has a network card (see `spawn`); nothing else owns it.
        tap: unsafe { OwnedFd::from_raw_fd(TAP_FD) },
        mac: link.mac,
    });

    let vm = kvm::VmConfig {
        kernel,
        initrd: Some(initrd),
        cmdline: config.artifact.cmdline.clone(),
        memory_bytes: config.artifact.memory_bytes,
        vcpus: config.artifact.vcpus,
        protocol: kvm::Protocol::Auto,
        input_after_mark: Some(Mark::WorkloadStarted),
        timeout: None,
        deadline: Default::default(),
        disks,
        net,
        vsock,
        console: config.artifact.stdio_ports,
    };
    // SAFETY: isola put these descriptors here for this process (see
    // `spawn`); nothing else owns them.
    let (com1_in, com1_out, com2_out, control) = unsafe {
        (
            File::from_raw_fd(0),
            File::from_raw_fd(1),
            File::from_raw_fd(2),
            File::from_raw_fd(CONTROL_FD),
        )
    };
    // The kernel's console until isola-init's first mark, then stderr.
    let released = Arc::new(AtomicBool::new(config.artifact.kernel_log));
    let tail = Arc::new(Mutex::new(Tail::default()));
    let io = kvm::GuestIo {
        // Unbuffered: a monitor stopped by SIGKILL loses no output.
        com1_out: Box::new(com1_out),
        com2_out: Box::new(HeldWriter {
            out: Box::new(com2_out),
            released: Arc::clone(&released),
            tail: Arc::clone(&tail),
        }),
        com1_in: match config.input {
            WireInput::None => None,
            WireInput::Pipe => Some(Box::new(crate::stdin_frame::Framed::new(com1_in))),
            WireInput::Terminal => Some(Box::new(com1_in) as Box<dyn Read + Send>),
        },
        com2_in: Some(Box::new(control)),
        on_mark: [Mark::InitUp, Mark::Parked, Mark::WorkloadStarted]
            .into_iter()
            .map(|mark| {
                let released = Arc::clone(&released);
                let call: kvm::OnMark = Box::new(move || {
                    if mark == Mark::InitUp {
                        released.store(true, Ordering::SeqCst);
                    }
                    report(&Record::Mark(mark.byte(), started.elapsed()));
                });
                (mark, call)
            })
            .collect(),
    };
    let machine = Machine::build(&vm, io).map_err(|e| chain(&e))?;
    if let Some(jail) = &config.jail {
        privileges::become_user(jail.uid, jail.gid).map_err(|e| chain(&e))?;
        // Changing credentials cleared it: die with isola's waiting thread.
        // SAFETY: prctl with constant arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    let outcome = machine.run();
    let console = if released.load(Ordering::SeqCst) {
        None
    } else {
        tail.lock().ok().and_then(|t| t.text())
    };
    match outcome {
        Ok(exit) => Ok(End::Exited {
            status: exit.status,
            marks: exit.marks,
            console,
        }),
        Err(VmError::Guest(failed)) => Ok(End::Failed {
            console: if failed.what.stopped() { None } else { console },
            failure: failed.what,
        }),
        Err(e) => Err(chain(&e)),
    }
}
