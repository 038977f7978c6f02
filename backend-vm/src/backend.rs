//! The VM backend: the run spec becomes a guest artifact (kernel, the
//! image's cached initramfs with isola-init, a per-run spec archive, a
//! quiet command line) run by a monitor; its exit-port status becomes the
//! sandbox's exit status.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use isola_core::backend::{Backend, BackendError, ExitStatus, Outcome, Phase, RunContext};
use isola_core::spec::{Network, RunSpec};
use isola_guest_spec::GuestSpec;

use crate::host::{self, KvmFlavour};
use crate::kvm::{End, VmError};
use crate::monitor::{Artifact, Input, Monitor};
use crate::{elf_notes, guest, kernel, kernel_format, qemu, vmlinux};

pub const DEFAULT_MEMORY: u64 = 256 << 20;

/// Which monitor runs the guest (`--vmm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    Isola,
    Qemu,
}

pub struct VmBackend {
    pub vmm: Vmm,
    /// `--kernel`, else discovered (see [`kernel::find`]).
    pub kernel: Option<PathBuf>,
    /// isola's state directory, where guest root filesystems are cached and
    /// the kernel store lives.
    pub state_dir: PathBuf,
}

/// The kernel's console is COM2, the workload's stderr, with warnings and
/// worse (a panic and its trace): the monitors hold it back until
/// isola-init runs and show its last lines only if it never does.
/// isola-init then turns the console down to emergencies, as `quiet` asks
/// (`loglevel=5` after it sets the boot's level).
pub const CMDLINE: &str =
    "rdinit=/.isola/init init=/.isola/init console=ttyS1 quiet loglevel=5 panic=-1 reboot=k i8042.noaux edd=off";

impl Backend for VmBackend {
    fn name(&self) -> &'static str {
        "vm"
    }

    fn run(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Outcome, BackendError> {
        let t0 = Instant::now();
        refuse_unsupported(spec)?;
        let flavour = host::detect();
        let unavailable = BackendError::Unavailable;
        let kernel = kernel::find(&self.state_dir, self.kernel.as_deref()).map_err(unavailable)?;
        let pvm_kernel = elf_notes::file_has(&kernel, elf_notes::PVM_TEST_KERNEL);
        let monitor = self.monitor(&flavour, pvm_kernel)?;
        let vcpus = spec
            .limits
            .cpus
            .map_or(1, |c| c.ceil().clamp(1.0, 32.0) as u8);
        if pvm_kernel && flavour == KvmFlavour::Pvm && self.vmm == Vmm::Isola && vcpus > 1 {
            // Its second vCPU never leaves the real-mode trampoline under
            // PVM's emulator (docs/kernel.md): refuse rather than hang.
            return Err(BackendError::Unavailable(format!(
                "isola's PVM test kernel runs on one vCPU on a PVM host (a second one never \
                 starts there): give --cpus 1 or less, not {vcpus}"
            )));
        }
        // Anything else would only make the monitor fail later in its own words.
        let Some(format) = kernel_format::file_format(&kernel) else {
            return Err(BackendError::Unavailable(format!(
                "{} is not a kernel isola can boot (neither an ELF vmlinux nor a bzImage): give one with --kernel",
                kernel.display()
            )));
        };
        let init = find_init().map_err(BackendError::Unavailable)?;
        let boot_kernel = match format {
            kernel_format::Format::BzImage { .. } => ctx
                .explain
                .step(
                    "take the kernel's ELF vmlinux out of its bzImage (once; cached)",
                    "entered through its PVH note, the guest skips the bzImage's own decompressor",
                    || vmlinux::for_boot(&self.state_dir, &kernel),
                )
                .unwrap_or_else(|| kernel.clone()),
            kernel_format::Format::Elf => kernel.clone(),
        };

        let rootfs = ctx
            .explain
            .step(
                "build (or reuse) the image's initramfs with isola-init as /init",
                "the guest has no access to the host's files: its root filesystem is the image, copied into RAM at boot",
                || guest::rootfs(&self.state_dir, &spec.image_digest, &spec.layers, &init),
            )
            .map_err(|e| setup("building the guest's root filesystem", e))?;
        let spec_archive = ctx.instance_dir.join("spec.cpio");
        std::fs::write(&spec_archive, guest::spec_archive(&guest_spec(spec)))
            .map_err(|e| setup("writing the run spec for the guest", e))?;
        let mut phases = vec![(Phase::RootfsReady, t0.elapsed())];

        let verbose = tracing::enabled!(tracing::Level::DEBUG);
        let artifact = Artifact {
            kernel: boot_kernel,
            initrds: vec![rootfs, spec_archive.clone()],
            cmdline: if verbose {
                // isola -v: the kernel's whole log on COM2 (the stderr
                // stream), live, all the way through.
                CMDLINE.replace(" quiet loglevel=5", " loglevel=7")
            } else {
                CMDLINE.to_string()
            },
            kernel_log: verbose,
            memory_bytes: spec.limits.memory.unwrap_or(DEFAULT_MEMORY),
            vcpus,
        };
        check_memory(&artifact, format)?;
        let booting = t0.elapsed();
        let ran = ctx.explain.step(
            &format!("boot the guest on the {} monitor", monitor.name()),
            "the workload gets a kernel of its own: the host kernel is reached only through the monitor's few devices",
            || {
                // -t: the caller's terminal raw while the guest runs, so that
                // Ctrl-C and the like reach the guest's terminal as bytes.
                let _raw = spec
                    .process
                    .tty
                    .then(isola_core::terminal::RawMode::enter)
                    .flatten();
                monitor.run(&artifact, input(spec))
            },
        );
        // isola-init's boot-timer marks: 1 when it starts (the guest is up),
        // 2 when the workload starts. Without them (a guest that never got
        // that far) only the boot's start.
        let mark = |m: u8| -> Option<Duration> {
            let marks = ran.as_ref().ok()?;
            marks
                .marks
                .iter()
                .find(|(k, _)| *k == m)
                .map(|(_, at)| booting + *at)
        };
        phases.push((Phase::SandboxCreated, mark(1).unwrap_or(booting)));
        if let Some(at) = mark(2) {
            phases.push((Phase::WorkloadStarted, at));
        }
        phases.push((Phase::WorkloadExited, t0.elapsed()));
        let _ = std::fs::remove_file(&spec_archive);
        phases.push((Phase::TornDown, t0.elapsed()));
        let ran = ran.map_err(vm_error)?;
        let status = match ran.end {
            End::Exit(code) => ExitStatus::Exited(i32::from(code)),
            End::Reset => {
                return Err(setup(
                    "running the guest",
                    VmError::Guest(crate::console_tail::with_lines(
                        "reset itself before isola-init reported an exit status (with panic=-1, a kernel panic does that)",
                        ran.console.as_deref(),
                    )),
                ))
            }
        };
        Ok(Outcome {
            status,
            // Held console lines with an exit status: isola-init ran but
            // failed before it could announce itself (QEMU only), and its
            // own message is among them.
            message: ran.console.map(|lines| {
                format!(
                    "the guest ended before isola-init was up; its last console lines:\n{lines}"
                )
            }),
            phases,
            counters: Vec::new(),
        })
    }
}

impl VmBackend {
    /// The monitor for this host and kernel. isola's PVM test kernel is
    /// the one Linux isola's monitor boots on a PVM host; it is named
    /// whenever it boots, as it is not a kernel for real work.
    fn monitor(
        &self,
        flavour: &KvmFlavour,
        pvm_kernel: bool,
    ) -> Result<Box<dyn Monitor>, BackendError> {
        if pvm_kernel {
            tracing::warn!("{PVM_KERNEL_NOTICE}");
        }
        match self.vmm {
            Vmm::Isola if flavour.can_boot_linux() => Ok(Box::new(crate::monitor::Kvm)),
            Vmm::Isola if *flavour == KvmFlavour::Pvm && pvm_kernel => {
                Ok(Box::new(crate::monitor::Kvm))
            }
            Vmm::Isola => Err(BackendError::Unavailable(format!(
                "isola's monitor cannot boot a Linux guest on this host: {}; use --vmm qemu \
                 (a software CPU here: slow), --backend container, or a host with hardware KVM{}",
                flavour.describe(),
                if *flavour == KvmFlavour::Pvm {
                    " (for tests, isola's PVM test kernel boots here: build it with \
                     `scripts/build-kernel --pvm` and give it with --kernel)"
                } else {
                    ""
                }
            ))),
            Vmm::Qemu => Ok(Box::new(qemu::Qemu {
                kvm: flavour.can_boot_linux(),
            })),
        }
    }
}

/// What a user who boots isola's PVM test kernel is told.
pub const PVM_KERNEL_NOTICE: &str = "this kernel is isola's PVM test kernel: patched to boot on \
     PVM hosts for isola's tests, slow (each guest syscall takes a page fault) and not for real \
     work; on hardware KVM use the kernel `scripts/build-kernel` builds";

/// Room the guest needs besides the decompressed kernel and the
/// initramfs (measured with the Debian kernel and the default image: 80 MiB boots, 77 does not).
const MEMORY_SLACK: u64 = 23 << 20;

/// A guest whose kernel cannot even decompress reboots at once with no word
/// (the kernel has no console yet): say it before booting. A bzImage's
/// setup header gives the size it unpacks to.
fn check_memory(artifact: &Artifact, format: kernel_format::Format) -> Result<(), BackendError> {
    let kernel_format::Format::BzImage { init_size } = format else {
        return Ok(());
    };
    let initrds: u64 = artifact
        .initrds
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let need = init_size + initrds + MEMORY_SLACK;
    if artifact.memory_bytes < need {
        let mib = |b: u64| b.div_ceil(1 << 20);
        return Err(BackendError::Unavailable(format!(
            "the guest needs at least {} MiB of memory (the kernel unpacks to {} MiB and the image's initramfs is {} MiB): give --memory {}m or more",
            mib(need),
            mib(init_size),
            mib(initrds),
            mib(need)
        )));
    }
    Ok(())
}

fn refuse_unsupported(spec: &RunSpec) -> Result<(), BackendError> {
    let no = |what: &str| {
        Err(BackendError::Unavailable(format!(
            "{what}; use --backend container for it"
        )))
    };
    if !spec.mounts.is_empty() {
        return no("the VM backend takes no -v volumes or binds yet (they arrive with virtio-blk)");
    }
    if spec.network == Network::Host {
        return no("the VM backend has no --network host (a guest has only lo)");
    }
    Ok(())
}

/// What the guest's COM1 takes from the caller's stdin.
fn input(spec: &RunSpec) -> Input {
    match (spec.process.tty, spec.process.stdin) {
        (true, _) => Input::Terminal,
        (false, true) => Input::Pipe,
        (false, false) => Input::None,
    }
}

fn guest_spec(spec: &RunSpec) -> GuestSpec {
    GuestSpec {
        version: isola_guest_spec::VERSION,
        args: spec.process.args.clone(),
        env: spec.process.env.clone(),
        cwd: spec.process.cwd.clone(),
        uid: spec.process.user.uid,
        gid: spec.process.user.gid,
        groups: spec.process.user.groups.clone(),
        hostname: spec.hostname.clone(),
        read_only: spec.read_only,
        pids_limit: spec.limits.pids,
        stdin: spec.process.stdin,
        tty: spec.process.tty,
        tty_size: spec
            .process
            .tty
            .then(|| isola_core::terminal::window_size(std::io::stdin().as_fd()))
            .flatten()
            .filter(|ws| ws.ws_row > 0 && ws.ws_col > 0)
            .map(|ws| [ws.ws_row, ws.ws_col]),
    }
}

/// isola-init: `ISOLA_INIT`, else next to the isola binary (where `make
/// release` puts both).
pub fn find_init() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ISOLA_INIT").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "ISOLA_INIT names {}, which is not a file",
                p.display()
            ))
        };
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find isola's own binary: {e}"))?;
    let beside = exe.parent().unwrap_or(Path::new("/")).join("isola-init");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(format!(
            "isola-init (the guest's init) is not at {}: build it with `make release`, or name it with ISOLA_INIT",
            beside.display()
        ))
    }
}

fn setup(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
    BackendError::Setup {
        what: what.into(),
        source: Box::new(e),
    }
}

fn vm_error(e: VmError) -> BackendError {
    match e {
        VmError::Unavailable(msg) => BackendError::Unavailable(msg),
        other => setup("running the guest", other),
    }
}
