//! The VM backend: the run spec becomes a guest artifact (kernel, the
//! image's cached initramfs with isola-init, a per-run spec archive, a
//! quiet command line) run by a monitor; its exit-port status becomes the
//! sandbox's exit status.

use std::os::fd::AsFd;
use std::path::PathBuf;

use isola_core::backend::{
    Backend, BackendError, Description, HostFact, Phase, RunContext, Sandbox,
};
use isola_core::network::{self, Attachment};
use isola_core::spec::{MountSource, Network, RunSpec};
use isola_core::Root;
use isola_guest_spec::{GuestNet, GuestSpec, VolumeDisk};

use crate::agent::Dial;
use crate::artifact::NetLink;
use crate::choice::Choice;
use crate::guest;
use crate::host::{self, KvmFlavour};
use crate::init_binary::find_init;
use crate::kernel::features::Features;
use crate::kernel::{format as kernel_format, vmlinux};
use crate::monitor::{Artifact, Disk, Input};
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
        let features = crate::kernel::features::of(&self.state_dir, &c.kernel);
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
            volumes: features.virtio_mmio && features.virtio_blk,
            // Whether it would have one: the socket's place does not matter.
            exec: agent_channel(&c, &features, &self.state_dir).is_ok(),
            networks: features.virtio_mmio && features.virtio_net,
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
        let features = crate::kernel::features::of(&self.state_dir, &boot_kernel);
        let volumes = volume_disks(spec, &features)?;
        let (initrds, mut disks, root_disk) = if features.root_disk() {
            let disk = ctx
                .explain
                .step(
                    "build (or reuse) the image's read-only disk (erofs)",
                    "the guest has no access to the host's files: its root is the image as a virtio-blk disk under an overlay, read through the host's page cache",
                    || guest::root_disk(&self.state_dir, &spec.image_digest, &spec.layers),
                )
                .map_err(|e| BackendError::step("building the image's disk for the guest", e))?;
            let init_archive = guest::init_only(&self.state_dir, &init)
                .map_err(|e| BackendError::step("building the guest's initramfs", e))?;
            let root = Disk {
                path: disk,
                read_only: true,
                serial: ROOT_SERIAL.to_string(),
            };
            (
                vec![init_archive],
                vec![root],
                Some(ROOT_SERIAL.to_string()),
            )
        } else {
            let rootfs = ctx
                .explain
                .step(
                    "build (or reuse) the image's initramfs with isola-init as /init",
                    "the guest has no access to the host's files and its kernel has no virtio-blk: its root filesystem is the image, copied into RAM at boot",
                    || guest::rootfs(&self.state_dir, &spec.image_digest, &spec.layers, &init),
                )
                .map_err(|e| BackendError::step("building the guest's root filesystem", e))?;
            (vec![rootfs], Vec::new(), None)
        };
        disks.extend(volumes.iter().map(|(disk, _)| disk.clone()));
        let (network, net_link, guest_net) = join_network(spec, ctx, &features)?;
        // The workload's stdout and stderr over virtio where the kernel can
        // take them: a UART moves well under a MiB/s. A terminal (-t)
        // stays on COM1.
        let stdio_ports = features.virtio_mmio && features.virtio_console && !spec.process.tty;
        // QEMU exits at the exit port, dropping what it could not yet pass
        // on: isola-init waits for the relay to have everything.
        let stdio_end = (stdio_ports && choice.vmm == Vmm::Qemu).then(end_marker);
        let guest = GuestSpec {
            root_disk,
            stdio_ports,
            stdio_end: stdio_end.clone(),
            volumes: volumes.into_iter().map(|(_, v)| v).collect(),
            net: guest_net,
            ..guest_spec(spec, ctx.park)
        };
        let spec_archive = ctx.instance_dir.join("spec.cpio");
        std::fs::write(&spec_archive, guest::spec_archive(&guest))
            .map_err(|e| BackendError::step("writing the run spec for the guest", e))?;
        // Only a sandbox a shim owns (it parks) can be exec'd into: a
        // foreground run's guest gets no channel, and boots as before.
        let agent = if ctx.park {
            agent_channel(&choice, &features, &ctx.instance_dir)
        } else {
            Err("exec reaches only a detached sandbox (isola run -d, isola create)".to_string())
        };
        let phases = vec![(Phase::RootfsReady, ctx.clock.elapsed())];
        let verbose = tracing::enabled!(tracing::Level::DEBUG);
        let artifact = Artifact {
            kernel: boot_kernel,
            initrds: initrds.into_iter().chain([spec_archive.clone()]).collect(),
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
            disks,
            jail: Some(ctx.instance_dir.join("jail")),
            agent: agent.as_ref().ok().map(|d| d.path().to_path_buf()),
            stdio_ports,
            stdio_end,
            net: net_link,
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
            network,
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

/// A VM's place on a bridge network: the lease, the tap for the monitor,
/// and what isola-init sets on eth0.
type OnNetwork = (Option<Attachment>, Option<NetLink>, Option<GuestNet>);

/// With `--network NAME`: an address on the network and its ports held,
/// a tap on its bridge for the guest's virtio-net, and how isola-init is
/// to configure eth0.
fn join_network(
    spec: &RunSpec,
    ctx: &RunContext,
    features: &Features,
) -> Result<OnNetwork, BackendError> {
    let Network::Bridge(join) = &spec.network else {
        return Ok((None, None, None));
    };
    if !(features.virtio_mmio && features.virtio_net) {
        return Err(BackendError::unavailable(format!(
            "network {} needs a guest kernel with virtio-net built in, which this one lacks: boot isola's kernel (`make kernel`, or --kernel PATH)",
            join.network
        )));
    }
    let att = ctx
        .explain
        .step(
            &format!("take an address on network {}, hold its published ports", join.network),
            "the network's leases give each sandbox its own address; a published port is held on the host so nothing else takes it",
            || network::join(&Root::new(&ctx.state_dir), &spec.id, &spec.hostname, join, false),
        )
        .map_err(|e| BackendError::step(format!("joining network {}", join.network), e))?;
    let tap = ctx
        .explain
        .step(
            &format!("create tap {} on bridge {}", att.tap_name(), att.net.bridge),
            "a tap is a virtual NIC whose other side is a file descriptor: the monitor moves the guest's virtio-net frames through it",
            || att.tap(),
        )
        .map_err(|e| BackendError::step(format!("plugging into network {}", join.network), e))?;
    let guest = GuestNet {
        ip: att.ip,
        prefix: att.prefix(),
        gateway: att.net.gateway,
        mtu: att.mtu,
        hosts: att.hosts.clone(),
        resolv: att.resolv.clone(),
    };
    let link = NetLink {
        mac: att.mac,
        tap: Some(std::sync::Arc::new(tap)),
    };
    Ok((Some(att), Some(link), Some(guest)))
}

/// How the guest's agent channel (`isola exec`) is reached, or why the
/// guest has none, in a sentence.
fn agent_channel(
    choice: &Choice,
    features: &crate::kernel::features::Features,
    instance_dir: &std::path::Path,
) -> Result<Dial, String> {
    let socket = instance_dir.join(AGENT_SOCKET);
    // QEMU here has no vhost-vsock: a virtio-serial port there; isola's
    // monitor has its own vsock device, reached through the same socket.
    let (has, what, dial) = if choice.vmm == Vmm::Qemu {
        (
            features.virtio_console,
            "virtio-serial",
            Dial::Socket(socket),
        )
    } else {
        (
            features.vsock,
            "virtio-vsock",
            Dial::HybridVsock {
                socket,
                port: isola_guest_spec::ports::AGENT_VSOCK_PORT,
            },
        )
    };
    if !(features.virtio_mmio && has) {
        return Err(format!(
            "the guest kernel {} lacks built-in virtio (virtio-mmio and {what}), which \
             exec into a VM needs: build isola's kernel with `make kernel` and run the sandbox \
             with it (--kernel or `isola kernel default`)",
            choice.kernel.display()
        ));
    }
    Ok(dial)
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

/// Say before booting what a guest would fail on with no useful word: a
/// kernel that cannot even decompress reboots at once (no console yet; a
/// bzImage's setup header gives the size it unpacks to), and an initramfs
/// the kernel cannot unpack (it keeps the archive while it writes the
/// copy, into a tmpfs that may fill at most half of the memory) leaves
/// isola-init without its spec. With the image on a disk, the initramfs
/// is only isola-init and the spec.
fn check_memory(artifact: &Artifact, format: kernel_format::Format) -> Result<(), BackendError> {
    let initrds: u64 = artifact
        .initrds
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let kernel = match format {
        kernel_format::Format::BzImage { init_size } => init_size,
        // Booted as it is: its size in memory is not known up front.
        kernel_format::Format::Elf => 0,
    };
    let need = kernel + 2 * initrds + MEMORY_SLACK;
    if artifact.memory_bytes >= need {
        return Ok(());
    }
    let mib = |b: u64| b.div_ceil(1 << 20);
    let hint = if artifact.disks.is_empty() {
        "; a kernel with virtio-blk, such as isola's own (`make kernel`), reads the image from a disk instead and needs no more memory for a bigger image"
    } else {
        ""
    };
    Err(BackendError::unavailable(format!(
        "the guest needs at least {} MiB of memory: its initramfs is {} MiB, which the kernel keeps while it unpacks a copy into a RAM filesystem that may fill only half of the memory{}: give --memory {}m or more{hint}",
        mib(need),
        mib(initrds),
        if kernel > 0 {
            format!(", and the kernel unpacks to {} MiB", mib(kernel))
        } else {
            String::new()
        },
        mib(need),
    )))
}

fn refuse_unsupported(spec: &RunSpec) -> Result<(), BackendError> {
    let no = |what: &str| {
        Err(BackendError::Unsupported(format!(
            "{what}; use --backend container for it"
        )))
    };
    if spec
        .mounts
        .iter()
        .any(|m| matches!(m.source, MountSource::Bind(_)))
    {
        return no("a VM cannot bind a host path (-v /host/path:...): its guest sees no host files; give a named volume (-v NAME:/path), a disk of its own");
    }
    if spec.network == Network::Host {
        return no("the VM backend has no --network host (a guest has only lo, or a bridge network's eth0)");
    }
    Ok(())
}

/// The serial of the image's disk, as isola-init looks for it.
const ROOT_SERIAL: &str = "isola-root";

/// Each named volume as a virtio-blk disk of its ext4 image and where the
/// guest mounts it; refused when the kernel has no virtio-blk.
fn volume_disks(
    spec: &RunSpec,
    features: &Features,
) -> Result<Vec<(Disk, VolumeDisk)>, BackendError> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts.iter().enumerate() {
        let MountSource::Volume { name, image } = &m.source else {
            continue;
        };
        if !(features.virtio_mmio && features.virtio_blk) {
            return Err(BackendError::unavailable(format!(
                "volume {name} needs a guest kernel with virtio-blk built in, which this one lacks: boot isola's kernel (`make kernel`, or --kernel PATH)"
            )));
        }
        let serial = format!("isola-vol{i}");
        out.push((
            Disk {
                path: image.clone(),
                read_only: m.read_only,
                serial: serial.clone(),
            },
            VolumeDisk {
                serial,
                target: m.target.clone(),
                read_only: m.read_only,
            },
        ));
    }
    Ok(out)
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
        root_disk: None,
        volumes: Vec::new(),
        stdio_ports: false,
        stdio_end: None,
        net: None,
    }
}

/// A marker for the end of the stdio ports' output (see
/// `GuestSpec::stdio_end`), an APC string as the COM2 records are, which
/// terminals ignore. Unique enough that no workload's output ends with it
/// by chance: the time and the process, hashed.
fn end_marker() -> String {
    use sha2::{Digest, Sha256};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seed = format!(
        "{}.{} {}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    );
    let digest = Sha256::digest(seed.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    isola_guest_spec::wire::record(&format!("end {hex}"))
}
