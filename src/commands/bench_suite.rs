//! `isola bench [IMAGE]`: builds the benchmark's plan from the flags and
//! this host (which backends, which peers, which monitor for the VM, what
//! is emulated), runs it with a progress bar, prints a table per dimension
//! and writes the report; `--compare` reads two results back.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use isola_bench::plan::{BackendPlan, KernelPlan, Plan};
use isola_bench::results::{Config, Machine, Subject};
use isola_bench::sandbox::{Isola, Runner};
use isola_bench::startup::Contender;
use isola_bench::{compare as cmp, peers, report, suite};
use isola_core::image::derive::{self, NewFile};
use isola_core::image::{default_image, ImageStore};
use isola_core::Root;
use isola_vm::host::KvmFlavour;
use isola_vm::kernel_store;

use super::bench::{peer_list, BenchArgs};

/// The benchmark's own image: the default image plus the probe.
pub const BENCH_IMAGE: &str = "isola/bench:latest";

pub fn run(root: &Root, args: &BenchArgs) -> Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 20 });
    let density = args.density.unwrap_or(if args.quick { 2 } else { 10 });
    if runs == 0 || density == 0 {
        bail!("--runs and --density must be at least 1");
    }
    for b in &args.backends {
        if !matches!(b.as_str(), "container" | "vm") {
            bail!("unknown backend {b:?} in --backends: use container, vm or both");
        }
    }
    let (wanted_peers, auto) = peer_list(&args.peers)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("isola bench starts containers, which needs root; run it as root");
    }
    let store = ImageStore::open(root.clone())?;
    let (probe, probe_bytes) = find_probe()?;
    let image = match &args.image {
        Some(i) => {
            // Named and missing: said once, before anything starts.
            default_image::get(&store, i)?;
            i.clone()
        }
        None => bench_image(&store, &probe_bytes)?,
    };
    let work = tempfile::Builder::new()
        .prefix("isola-bench-")
        .tempdir_in(root.tmp())
        .context("creating a work directory")?;
    let isola = Isola {
        exe: std::env::current_exe().context("finding isola's own binary")?,
        root: root.dir().to_path_buf(),
    };
    let kvm = isola_vm::host::detect();
    let mut plan = Plan {
        isola: isola.clone(),
        image: image.clone(),
        host: Subject {
            id: "host".into(),
            label: "host (no isolation)".into(),
            kind: "host".into(),
            emulated: false,
        },
        host_probe: probe,
        backends: Vec::new(),
        peers: Vec::new(),
        oci: Vec::new(),
        monitor: Vec::new(),
        kernels: Vec::new(),
        kernel_runs: if args.quick { 1 } else { 3 },
        errors: Vec::new(),
        work_dir: work.path().to_path_buf(),
        runs,
        warmup: if args.quick { 1 } else { 3 },
        density,
        work_ms: if args.quick { 100 } else { 300 },
        sharing_images: if args.quick { 3 } else { 5 },
    };
    let mut guest_kernel = None;
    for b in &args.backends {
        if b == "container" {
            plan.backends.push(BackendPlan {
                subject: Subject {
                    id: "container".into(),
                    label: "container".into(),
                    kind: "isola".into(),
                    emulated: false,
                },
                runner: runner(&isola, &[], &image),
                artefacts: None,
                guest_memory_kib: None,
                kernel: None,
            });
            continue;
        }
        let kernel = isola_vm::kernel::find(root.dir(), args.kernel.as_deref())
            .map_err(anyhow::Error::msg)
            .context("the vm rows need a guest kernel")?;
        guest_kernel = Some(format!(
            "{} ({})",
            kernel.display(),
            crate::output::size(std::fs::metadata(&kernel).map(|m| m.len()).unwrap_or(0))
        ));
        // isola's own monitor where it can boot Linux (on PVM: isola's PVM
        // test kernel only); QEMU where it can't, on a software CPU when KVM
        // can't run Linux either: said in the label.
        let (vmm, label, emulated) = if kvm.can_boot_linux() {
            ("isola", "vm".to_string(), false)
        } else if kvm == KvmFlavour::Pvm && is_pvm_test_kernel(&kernel) {
            ("isola", format!("vm ({PVM_LABEL})"), true)
        } else {
            (
                "qemu",
                "vm (qemu-tcg: emulated, not KVM speed)".to_string(),
                true,
            )
        };
        let kernel_s = kernel.display().to_string();
        let vm_flags = |vmm| ["--backend", "vm", "--vmm", vmm, "--kernel", &kernel_s];
        let flags = vm_flags(vmm);
        let digest = store.resolve(&image)?;
        plan.backends.push(BackendPlan {
            subject: Subject {
                id: "vm".into(),
                label,
                kind: "isola".into(),
                emulated,
            },
            runner: runner(&isola, &flags, &image),
            artefacts: Some((root.vm_rootfs(), format!("{}-", digest.digest()))),
            guest_memory_kib: Some(isola_vm::backend::DEFAULT_MEMORY >> 10),
            kernel: Some(kernel.clone()),
        });
        if wanted_peers.contains(&"qemu") {
            if kvm.can_boot_linux() && peers::found(isola_vm::qemu::BINARY) {
                let r = runner(&isola, &vm_flags("qemu"), &image);
                if let Some(argv) = r.command(&["/bin/true"]) {
                    plan.peers.push((
                        peers::subject("qemu-microvm", "qemu microvm (same kernel and rootfs)"),
                        Contender::new("qemu-microvm", argv),
                    ));
                }
            } else if kvm.can_boot_linux() && !auto {
                bail!("peer qemu is not installed: install qemu-system-x86");
            } else if !kvm.can_boot_linux() {
                plan.errors.push(peers::not_run(
                    "qemu-microvm",
                    if vmm == "qemu" {
                        "not run as a peer: the vm row itself runs on QEMU here, since this host's KVM cannot boot Linux"
                    } else {
                        "not run as a peer: QEMU cannot use this host's KVM for Linux, and a software CPU against isola's monitor would compare nothing"
                    },
                ));
            }
        }
    }
    if plan.backends.is_empty() {
        bail!("--backends names no backend: use container, vm or both");
    }

    let container_peers: Vec<&str> = wanted_peers
        .iter()
        .copied()
        .filter(|p| peers::CONTAINER_PEERS.contains(p))
        .collect();
    if !container_peers.is_empty() {
        let rootfs = work.path().join("rootfs");
        std::fs::create_dir_all(&rootfs)?;
        store.export(&store.get(&image)?, &rootfs)?;
        let found = peers::container_peers(&container_peers, auto, &rootfs, work.path())
            .map_err(anyhow::Error::msg)?;
        for (subject, _) in found.iter().filter(|(s, _)| s.id != "floor") {
            plan.oci.push(BackendPlan {
                subject: subject.clone(),
                runner: Runner::Oci {
                    runtime: subject.id.clone(),
                    rootfs: rootfs.clone(),
                    work: work.path().join("bundles"),
                },
                artefacts: None,
                guest_memory_kib: None,
                kernel: None,
            });
        }
        plan.peers.extend(found);
    }
    monitor_rows(&mut plan, args, kvm.as_str() != "none");
    kernel_rows(&mut plan, args, root, &kvm, &image)?;

    let machine = machine(kvm.as_str(), guest_kernel);
    let config = Config {
        image,
        backends: args.backends.clone(),
        peers: plan.peers.iter().map(|(s, _)| s.id.clone()).collect(),
        runs: plan.runs,
        warmup: plan.warmup,
        density: plan.density,
        quick: args.quick,
    };
    eprintln!(
        "isola bench: {} on {} backend(s), {} peer(s), {} runs each{}",
        config.image,
        plan.backends.len(),
        plan.peers.len() + plan.monitor.len(),
        runs,
        if args.quick { " (--quick)" } else { "" }
    );
    let mut bar = Bar {
        tty: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ..Bar::default()
    };
    let results = suite::run(&plan, machine, config, &mut bar);
    bar.finish();

    for (title, header, rows) in report::tables::render(&results) {
        eprintln!("\n{title}");
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        crate::output::table_to(&mut std::io::stderr(), &header, &rows);
    }
    eprintln!(
        "\nthe harness's own cost per measured run: {:.3} ms (timing the smallest static program)",
        results.harness.overhead_ms
    );
    if args.json {
        crate::output::json(&results)?;
    }
    if let Some(dir) = &args.out {
        let files = report::write(dir, &results)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
        eprintln!("\nwrote {} files into {}", files.len(), dir.display());
        eprintln!("report: {}", dir.join("report.html").display());
    }
    Ok(())
}

fn runner(isola: &Isola, flags: &[&str], image: &str) -> Runner {
    Runner::Isola {
        isola: isola.clone(),
        flags: flags.iter().map(|s| s.to_string()).collect(),
        image: image.to_string(),
    }
}

/// How a row booting isola's PVM test kernel on isola's monitor is labelled.
const PVM_LABEL: &str = "isola monitor + PVM test kernel: a software hypervisor, not KVM speed";

fn is_pvm_test_kernel(kernel: &Path) -> bool {
    isola_vm::elf_notes::file_has(kernel, isola_vm::elf_notes::PVM_TEST_KERNEL)
}

/// The guest kernels timed to init: those `--kernels` names, else the VM
/// rows' kernel and the stored isola-* kernels. Each boots on isola's
/// monitor where it can; otherwise on QEMU (TCG without hardware KVM).
fn kernel_rows(
    plan: &mut Plan,
    args: &BenchArgs,
    root: &Root,
    kvm: &KvmFlavour,
    image: &str,
) -> Result<()> {
    let stored = kernel_store::list(root.dir())?;
    let mut kernels: Vec<(String, PathBuf)> = Vec::new();
    match &args.kernels {
        Some(given) => {
            for k in given {
                let path = Path::new(k);
                if path.is_file() {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    kernels.push((name.into_owned(), path.to_path_buf()));
                } else if let Some(e) = stored.iter().find(|e| e.name.as_str() == k) {
                    kernels.push((k.clone(), e.path.clone()));
                } else {
                    bail!("--kernels: {k} is neither a file nor a kernel in isola's store (`isola kernel ls` lists them)");
                }
            }
        }
        None => {
            if let Some(k) = plan.backends.iter().find_map(|b| b.kernel.clone()) {
                let name = k.file_name().unwrap_or_default().to_string_lossy();
                kernels.push((name.into_owned(), k));
            }
            for e in stored
                .iter()
                .filter(|e| e.name.as_str().starts_with("isola-"))
            {
                if !kernels.iter().any(|(_, p)| *p == e.path) {
                    kernels.push((e.name.to_string(), e.path.clone()));
                }
            }
        }
    }
    for (name, kernel) in kernels {
        let pvm = is_pvm_test_kernel(&kernel);
        let (vmm, label, emulated) = if kvm.can_boot_linux() {
            ("isola", format!("isola monitor + {name}"), false)
        } else if pvm && *kvm == KvmFlavour::Pvm {
            ("isola", format!("{name} ({PVM_LABEL})"), true)
        } else if pvm {
            continue;
        } else {
            ("qemu", format!("qemu-tcg + {name} (emulated)"), true)
        };
        let k = kernel.display().to_string();
        plan.kernels.push(KernelPlan {
            subject: Subject {
                id: format!("kernel-{vmm}-{name}"),
                label,
                kind: if name.starts_with("isola-") {
                    "isola"
                } else {
                    "peer"
                }
                .into(),
                emulated,
            },
            runner: runner(
                &plan.isola,
                &["--backend", "vm", "--vmm", vmm, "--kernel", &k],
                image,
            ),
            kernel,
            vmm,
        });
    }
    Ok(())
}

/// The bare monitor rows need KVM and the test guest; without them they
/// are reported as not run, with what to do.
fn monitor_rows(plan: &mut Plan, args: &BenchArgs, has_kvm: bool) {
    let guest = args
        .guest
        .clone()
        .or_else(|| std::env::var_os("ISOLA_TESTGUEST").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from("backend-vm/testguest/target/x86_64-unknown-none/release/isola-testguest")
        });
    if !has_kvm {
        plan.errors.push(peers::not_run(
            "monitor-isola",
            "not run: the bare monitor needs /dev/kvm",
        ));
    } else if !guest.is_file() {
        plan.errors.push(peers::not_run(
            "monitor-isola",
            &format!(
                "not run: no test guest at {} (`make testguest` builds it; or give --guest)",
                guest.display()
            ),
        ));
    } else {
        let qemu = peers::found(isola_vm::qemu::BINARY).then_some(isola_vm::qemu::BINARY);
        plan.monitor = peers::monitor_contenders(&plan.isola, &guest, 128, qemu);
    }
}

/// isola-probe, static: `ISOLA_PROBE`, else next to the isola binary
/// (where `make release` puts it): its path and its bytes.
fn find_probe() -> Result<(PathBuf, Vec<u8>)> {
    let path = match std::env::var_os("ISOLA_PROBE").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .context("finding isola's own binary")?
            .with_file_name("isola-probe"),
    };
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "isola-probe is not at {}: build it with `make release`, or name it with ISOLA_PROBE",
            path.display()
        )
    })?;
    if !default_image::is_static_elf(&bytes) {
        bail!(
            "{} is dynamically linked and would not run inside an image: build it with `make release`",
            path.display()
        );
    }
    Ok((path, bytes))
}

/// The default image with the probe in it, made (or found unchanged) now.
fn bench_image(store: &ImageStore, probe: &[u8]) -> Result<String> {
    let base = default_image::ensure(store)?;
    derive::add_layer(
        store,
        &base,
        BENCH_IMAGE,
        &[NewFile {
            path: "usr/bin/isola-probe".into(),
            mode: 0o755,
            data: probe.to_vec(),
        }],
        "COPY isola-probe /usr/bin/",
    )
    .context("adding isola-probe to the default image")?;
    Ok(BENCH_IMAGE.to_string())
}

fn machine(kvm: &str, guest_kernel: Option<String>) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    Machine {
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total_kib: isola_bench::procfs::mem_total_kib(),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        cgroup: match isola_container::cgroup::detect() {
            Ok(h) => h.to_string(),
            Err(e) => e.to_string(),
        },
        kvm: kvm.to_string(),
        guest_kernel,
    }
}

pub fn compare(old: &Path, new: &Path) -> Result<()> {
    let read = |p: &Path| -> Result<serde_json::Value> {
        let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a results.json of isola bench", p.display()))
    };
    let changes = cmp::compare(&read(old)?, &read(new)?)
        .map_err(anyhow::Error::msg)
        .context("comparing the two results")?;
    print!("{}", cmp::format(&changes));
    Ok(())
}

/// The progress bar on stderr: which dimension, how far, what it does now.
#[derive(Default)]
struct Bar {
    /// Redrawn in place on a terminal; a line per dimension elsewhere.
    tty: bool,
    dimension: String,
    done: usize,
    total: usize,
}

impl suite::Progress for Bar {
    fn step(&mut self, what: &str, done: usize, total: usize) {
        self.dimension = what.to_string();
        self.done = done;
        self.total = total;
        if self.tty {
            self.draw("");
        } else if done < total {
            eprintln!("[{}/{total}] {what}", done + 1);
        }
    }

    fn detail(&mut self, what: &str) {
        if self.tty {
            self.draw(what);
        }
    }
}

impl Bar {
    fn draw(&self, detail: &str) {
        const WIDTH: usize = 24;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(0);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K[{}{}] {}/{} {} {detail}",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.dimension
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
