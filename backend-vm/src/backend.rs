//! The VM backend: the run spec becomes a guest artifact (kernel, the
//! image's cached initramfs with isola-init, a per-run spec archive, a
//! quiet command line) run by a monitor; its exit-port status becomes the
//! sandbox's exit status.

use std::os::fd::AsFd;
use std::path::PathBuf;

use isola_core::backend::{
    Backend, BackendError, Description, HostFact, Phase, RunContext, Sandbox,
};
use isola_core::spec::{Network, RunSpec};
use isola_guest_spec::GuestSpec;

use crate::host::{self, KvmFlavour};
use crate::init_binary::find_init;
use crate::kernel::{elf_notes, format as kernel_format, vmlinux};
use crate::monitor::{qemu, Artifact, Input, Monitor};
use crate::sandbox::{Parts, VmSandbox};
use crate::{guest, kernel};

pub const DEFAULT_MEMORY: u64 = 256 << 20;

/// Which monitor runs the guest (`--vmm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vmm {
    Isola,
    Qemu,
    /// isola's monitor where it can boot the kernel here, else QEMU (on a
    /// software CPU where this host's KVM cannot run Linux).
    Auto,
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

/// How a row booting isola's PVM test kernel on isola's monitor is labelled.
pub const PVM_EMULATED: &str =
    "isola monitor + PVM test kernel: a software hypervisor, not KVM speed";
/// How a VM on QEMU with a software CPU is labelled.
pub const TCG_EMULATED: &str = "qemu-tcg: emulated, not KVM speed";

/// The first stage: which kernel, which monitor, how many vCPUs, and
/// whether it runs emulated; every refusal about them.
struct Choice {
    kernel: PathBuf,
    format: kernel_format::Format,
    pvm_kernel: bool,
    vmm: Vmm,
    /// Whether QEMU uses KVM.
    qemu_kvm: bool,
    emulated: Option<&'static str>,
    vcpus: u8,
    memory: u64,
}

impl Choice {
    fn monitor(&self) -> Box<dyn Monitor> {
        if self.pvm_kernel {
            tracing::warn!("{PVM_KERNEL_NOTICE}");
        }
        match self.vmm {
            Vmm::Qemu => Box::new(qemu::Qemu { kvm: self.qemu_kvm }),
            _ => Box::new(crate::monitor::Isola),
        }
    }
}

impl VmBackend {
    fn choose(&self, spec: &RunSpec) -> Result<Choice, BackendError> {
        let flavour = host::detect();
        let kernel = kernel::find(&self.state_dir, self.kernel.as_deref())?;
        // Anything else would only make the monitor fail later in its own words.
        let Some(format) = kernel_format::file_format(&kernel) else {
            return Err(BackendError::unavailable(format!(
                "{} is not a kernel isola can boot (neither an ELF vmlinux nor a bzImage): give one with --kernel",
                kernel.display()
            )));
        };
        let pvm_kernel = elf_notes::file_has(&kernel, elf_notes::PVM_TEST_KERNEL);
        let isola_boots = flavour.can_boot_linux() || (flavour == KvmFlavour::Pvm && pvm_kernel);
        let vmm = match self.vmm {
            Vmm::Auto if isola_boots => Vmm::Isola,
            Vmm::Auto if pvm_kernel => {
                return Err(BackendError::unavailable(format!(
                    "{} is isola's PVM test kernel, which boots only on isola's monitor on a                      PVM host or with hardware KVM",
                    kernel.display()
                )))
            }
            Vmm::Auto => Vmm::Qemu,
            Vmm::Isola if !isola_boots => {
                return Err(BackendError::unavailable(format!(
                    "isola's monitor cannot boot a Linux guest on this host: {}; use --vmm qemu \
                     (a software CPU here: slow), --backend container, or a host with hardware KVM{}",
                    flavour.describe(),
                    if flavour == KvmFlavour::Pvm {
                        " (for tests, isola's PVM test kernel boots here: build it with \
                         `scripts/build-kernel --pvm` and give it with --kernel)"
                    } else {
                        ""
                    }
                )))
            }
            other => other,
        };
        let emulated = match vmm {
            Vmm::Qemu if !flavour.can_boot_linux() => Some(TCG_EMULATED),
            Vmm::Isola if !flavour.can_boot_linux() => Some(PVM_EMULATED),
            _ => None,
        };
        let vcpus = spec
            .limits
            .cpus
            .map_or(1, |c| c.ceil().clamp(1.0, 32.0) as u8);
        if pvm_kernel && flavour == KvmFlavour::Pvm && vmm == Vmm::Isola && vcpus > 1 {
            // Its second vCPU never leaves the real-mode trampoline under
            // PVM's emulator (docs/kernel.md): refuse rather than hang.
            return Err(BackendError::unavailable(format!(
                "isola's PVM test kernel runs on one vCPU on a PVM host (a second one never \
                 starts there): give --cpus 1 or less, not {vcpus}"
            )));
        }
        Ok(Choice {
            kernel,
            format,
            pvm_kernel,
            vmm,
            qemu_kvm: flavour.can_boot_linux(),
            emulated,
            vcpus,
            memory: spec.limits.memory.unwrap_or(DEFAULT_MEMORY),
        })
    }
}

impl Backend for VmBackend {
    fn name(&self) -> &'static str {
        "vm"
    }

    fn check(&self, spec: &RunSpec) -> Result<(), BackendError> {
        spec.validate()?;
        refuse_unsupported(spec)?;
        self.choose(spec)?;
        find_init()?;
        Ok(())
    }

    fn describe(&self, spec: &RunSpec) -> Result<Description, BackendError> {
        let c = self.choose(spec)?;
        let monitor = match c.vmm {
            Vmm::Qemu => "qemu",
            _ => "isola",
        };
        let kernel = c.kernel.display().to_string();
        Ok(Description {
            runs_on: match (c.vmm, c.emulated) {
                (Vmm::Qemu, Some(_)) => "QEMU microvm with a software CPU (TCG)".to_string(),
                (Vmm::Qemu, None) => "QEMU microvm on KVM".to_string(),
                (_, Some(_)) => "isola's monitor on PVM, a software hypervisor".to_string(),
                _ => "isola's monitor on KVM".to_string(),
            },
            monitor: Some(monitor.to_string()),
            emulated: c.emulated.map(str::to_string),
            kernel: Some(c.kernel.clone()),
            guest_memory: Some(c.memory),
            flags: vec!["--vmm".into(), monitor.into(), "--kernel".into(), kernel],
            artefacts: Some((
                isola_core::Root::new(&self.state_dir).vm_rootfs(),
                format!("{}-", spec.image_digest.trim_start_matches("sha256:")),
            )),
        })
    }

    fn host_report(&self) -> Vec<HostFact> {
        let kvm = host::detect();
        vec![
            HostFact::text("kvm", "kvm", kvm.as_str().to_string()),
            HostFact::text("kvm_detail", "kvm detail", kvm.describe()),
            HostFact::flag("vm_linux_guests", kvm.can_boot_linux(), None),
            HostFact::line("vm backend", vm_backend_line(&kvm)),
        ]
    }

    fn create(&self, spec: &RunSpec, ctx: &RunContext) -> Result<Box<dyn Sandbox>, BackendError> {
        let choice = self.choose(spec)?;
        let init = find_init()?;
        let boot_kernel = match choice.format {
            kernel_format::Format::BzImage { .. } => ctx
                .explain
                .step(
                    "take the kernel's ELF vmlinux out of its bzImage (once; cached)",
                    "entered through its PVH note, the guest skips the bzImage's own decompressor",
                    || vmlinux::for_boot(&self.state_dir, &choice.kernel),
                )
                .unwrap_or_else(|| choice.kernel.clone()),
            kernel_format::Format::Elf => choice.kernel.clone(),
        };
        let rootfs = ctx
            .explain
            .step(
                "build (or reuse) the image's initramfs with isola-init as /init",
                "the guest has no access to the host's files: its root filesystem is the image, copied into RAM at boot",
                || guest::rootfs(&self.state_dir, &spec.image_digest, &spec.layers, &init),
            )
            .map_err(|e| BackendError::step("building the guest's root filesystem", e))?;
        let spec_archive = ctx.instance_dir.join("spec.cpio");
        std::fs::write(&spec_archive, guest::spec_archive(&guest_spec(spec)))
            .map_err(|e| BackendError::step("writing the run spec for the guest", e))?;
        let phases = vec![(Phase::RootfsReady, ctx.clock.elapsed())];
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
            memory_bytes: choice.memory,
            vcpus: choice.vcpus,
        };
        // From here on, a failure removes the spec archive through Drop.
        let sandbox = VmSandbox::new(Parts {
            monitor: choice.monitor(),
            artifact,
            input: input(spec),
            tty: spec.process.tty,
            spec_archive,
            explain: ctx.explain,
            clock: ctx.clock,
            phases,
        })?;
        check_memory(sandbox.artifact(), choice.format)?;
        Ok(Box::new(sandbox))
    }
}

/// Whether `isola run --backend vm` can boot a Linux guest here, and why not.
fn vm_backend_line(kvm: &KvmFlavour) -> String {
    match kvm {
        KvmFlavour::Hardware { .. } => {
            "Linux guests boot on isola's KVM monitor (`isola run --backend vm`)".to_string()
        }
        KvmFlavour::Pvm => "cannot boot a Linux guest here: PVM cannot run an unmodified \
                            Linux kernel at a useful speed; use a host with hardware KVM"
            .to_string(),
        KvmFlavour::Unavailable { .. } => {
            "cannot boot a Linux guest here: it needs a usable /dev/kvm (see kvm detail)"
                .to_string()
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
        return Err(BackendError::unavailable(format!(
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
        Err(BackendError::Unsupported(format!(
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
