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

use crate::agent::Dial;
use crate::choice::Choice;
use crate::guest;
use crate::host::{self, KvmFlavour};
use crate::init_binary::find_init;
use crate::kernel::{format as kernel_format, vmlinux};
use crate::monitor::{Artifact, Input};
use crate::sandbox::{Parts, VmSandbox};

pub use crate::choice::{Vmm, DEFAULT_MEMORY, PVM_EMULATED, PVM_KERNEL_NOTICE, TCG_EMULATED};

pub struct VmBackend {
    pub vmm: Vmm,
    /// `--kernel`, else discovered (see [`crate::kernel::find`]).
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

impl VmBackend {
    fn choose(&self, spec: &RunSpec) -> Result<Choice, BackendError> {
        Choice::of(self.vmm, self.kernel.as_deref(), &self.state_dir, spec)
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
        std::fs::write(
            &spec_archive,
            guest::spec_archive(&guest_spec(spec, ctx.park)),
        )
        .map_err(|e| BackendError::step("writing the run spec for the guest", e))?;
        // Only a sandbox a shim owns (it parks) can be exec'd into: a
        // foreground run's guest gets no channel, and boots as before.
        let agent = if ctx.park {
            agent_channel(&choice, &self.state_dir, &boot_kernel, &ctx.instance_dir)
        } else {
            Err("exec reaches only a detached sandbox (isola run -d, isola create)".to_string())
        };
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
            disks: Vec::new(),
            agent: agent.as_ref().ok().map(|d| d.path().to_path_buf()),
        };
        // From here on, a failure removes the spec archive through Drop.
        let mut sandbox = VmSandbox::new(Parts {
            monitor: choice.monitor(),
            artifact,
            input: input(spec),
            tty: spec.process.tty,
            spec_archive,
            explain: ctx.explain,
            clock: ctx.clock,
            phases,
            park: ctx.park,
            agent,
        })?;
        check_memory(sandbox.artifact(), choice.format)?;
        // Asked to park: the guest boots now and isola-init waits for
        // `start`'s go-ahead (a foreground run boots in `start`, sparing
        // the round trip).
        if ctx.park {
            sandbox.park()?;
        }
        Ok(Box::new(sandbox))
    }
}

/// How the guest's agent channel (`isola exec`) is reached, or why the
/// guest has none, in a sentence.
fn agent_channel(
    choice: &Choice,
    state_dir: &std::path::Path,
    kernel: &std::path::Path,
    instance_dir: &std::path::Path,
) -> Result<Dial, String> {
    if choice.vmm != Vmm::Qemu {
        return Err(
            "isola's monitor has no agent channel for exec yet (its vsock device is \
                    coming): run the sandbox with --vmm qemu to exec into it"
                .to_string(),
        );
    }
    if !crate::kernel::features::features(state_dir, kernel).virtio_serial() {
        return Err(format!(
            "the guest kernel {} lacks built-in virtio (virtio-mmio and virtio-serial), which \
             exec into a VM needs: build isola's kernel with `make kernel` and run the sandbox \
             with it (--kernel or `isola kernel default`)",
            choice.kernel.display()
        ));
    }
    Ok(Dial::Socket(instance_dir.join(AGENT_SOCKET)))
}

/// The agent channel's socket in the instance's directory.
const AGENT_SOCKET: &str = "agent.sock";

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

fn guest_spec(spec: &RunSpec, park: bool) -> GuestSpec {
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
        park,
    }
}
