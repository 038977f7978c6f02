//! `isola bench [IMAGE]`: puts the benchmark's plan together from the flags
//! (which backends, which peers; each backend's rows as it describes them:
//! `isola_bench::plan`), runs it with a progress bar, prints a table per
//! dimension and writes the report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use isola_bench::lifecycle::{self, LifecyclePlan};
use isola_bench::plan::{self, BackendPlan, Plan};
use isola_bench::results::{Config, Machine, Subject};
use isola_bench::sandbox::Runner;
use isola_bench::{peers, report, suite};
use isola_core::backend::Backend;
use isola_core::image::derive::{self, NewFile};
use isola_core::image::{default_image, ImageStore};
use isola_core::spec::RunSpec;
use isola_core::Root;

use super::progress::Bar;
use super::{isola_cli, peer_list, BenchArgs};
use crate::backends::{self, vm::kernel_store, vm::QEMU};

/// The benchmark's own image: the default image plus the probe.
const BENCH_IMAGE: &str = "isola/bench:latest";

pub fn run(root: &Root, args: &BenchArgs) -> Result<()> {
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 20 });
    let density = args.density.unwrap_or(if args.quick { 2 } else { 10 });
    if runs == 0 || density == 0 {
        bail!("--runs and --density must be at least 1");
    }
    for b in &args.backends {
        if !backends::NAMES.contains(&b.as_str()) {
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
    let host = HostFacts::of(root);
    let mut plan = Plan {
        isola: isola_cli(root)?,
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
        lifecycle: None,
        kernel_runs: if args.quick { 1 } else { 3 },
        errors: Vec::new(),
        work_dir: work.path().to_path_buf(),
        runs,
        warmup: if args.quick { 1 } else { 3 },
        density,
        work_ms: if args.quick { 100 } else { 300 },
        sharing_images: if args.quick { 3 } else { 5 },
    };
    let resolved = store.get(&image)?;
    let spec = RunSpec::new(
        "bench",
        &image,
        resolved.digest.as_ref(),
        store.layer_dirs(&resolved),
        vec!["/bin/true".into()],
    );
    let vms = Vms { root };
    backend_rows(&mut plan, args, &spec, &vms, &wanted_peers, auto)?;
    let container_peers: Vec<&str> = wanted_peers
        .iter()
        .copied()
        .filter(|p| peers::CONTAINER_PEERS.contains(p))
        .collect();
    if !container_peers.is_empty() {
        let rootfs = work.path().join("rootfs");
        std::fs::create_dir_all(&rootfs)?;
        store.export(&resolved, &rootfs)?;
        container_peer_rows(&mut plan, &container_peers, auto, &rootfs)?;
    }
    if let Some(flags) = container_flags(&plan) {
        // The lifecycle's peers run on a rootfs of their own: podman and
        // runc add mount points to the one they run on.
        let (peers, not_run) = lifecycle::peers(&wanted_peers, auto)?;
        plan.errors.extend(not_run);
        let dir = work.path().join("lifecycle");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs)?;
        store.export(&resolved, &rootfs)?;
        plan.lifecycle = Some(LifecyclePlan {
            isola: plan.isola.clone(),
            flags,
            image: plan.image.clone(),
            rootfs,
            work: dir,
            peers,
            runs: plan.runs,
            warmup: plan.warmup,
            vm: vm_exec_row(&plan),
        });
    }
    monitor_rows(&mut plan, args, host.kvm != "none");
    kernel_rows(&mut plan, args, &spec, &vms)?;
    let reported = measure_and_report(&plan, host, args);
    // A signal during the lifecycle dimension: its work is removed, and
    // the scratch too, before the signal takes its course.
    drop(work);
    lifecycle::end_if_interrupted();
    reported
}

/// The VM row and its flags, if it is measured and `isola exec` reaches
/// its guests (its kernel has the agent channel).
fn vm_exec_row(plan: &Plan) -> Option<(Subject, Vec<String>)> {
    plan.backends
        .iter()
        .find(|b| b.is_vm() && b.how.as_ref().is_some_and(|h| h.exec))
        .and_then(|b| match &b.runner {
            Runner::Isola { flags, .. } => Some((b.subject.clone(), flags.clone())),
            _ => None,
        })
}

/// `isola run`'s flags for the container row, if the container backend is
/// measured.
fn container_flags(plan: &Plan) -> Option<Vec<String>> {
    plan.backends
        .iter()
        .filter(|b| b.subject.id == "container")
        .find_map(|b| match &b.runner {
            Runner::Isola { flags, .. } => Some(flags.clone()),
            _ => None,
        })
}

/// The VM backend for the rows: on whichever monitor boots the kernel here.
struct Vms<'a> {
    root: &'a Root,
}

impl Vms<'_> {
    fn with_kernel(&self, kernel: Option<PathBuf>) -> Result<Box<dyn Backend>> {
        backends::build(
            "vm",
            &backends::Options {
                state_dir: self.root.dir().to_path_buf(),
                vmm: Some("auto".into()),
                kernel,
            },
        )
    }
}

/// What the backends say of this host, as the results record it.
struct HostFacts {
    kvm: String,
    cgroups: String,
}

impl HostFacts {
    fn of(root: &Root) -> HostFacts {
        let facts: Vec<_> = backends::all(root.dir())
            .iter()
            .flat_map(|b| b.host_report())
            .collect();
        let fact = |key: &str| {
            facts
                .iter()
                .find(|f| f.key == Some(key))
                .and_then(|f| f.value.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        HostFacts {
            kvm: fact("kvm"),
            cgroups: fact("cgroups"),
        }
    }
}

/// A row per isola backend asked for, as each describes how it runs here;
/// beside the VM row, QEMU microvm as its peer where that compares.
fn backend_rows(
    plan: &mut Plan,
    args: &BenchArgs,
    spec: &RunSpec,
    vms: &Vms,
    wanted_peers: &[&str],
    auto: bool,
) -> Result<()> {
    for name in &args.backends {
        let backend = match name.as_str() {
            "vm" => vms.with_kernel(args.kernel.clone())?,
            other => backends::build(other, &backends::Options::default())?,
        };
        let row = plan::backend_row(name, backend.as_ref(), spec, &plan.isola)
            .context(format!("the {name} rows"))?;
        if name == "vm" && wanted_peers.contains(&"qemu") {
            match plan::qemu_peer(&row, &plan.isola, &plan.image, peers::found(QEMU), auto)? {
                Ok(peer) => plan.peers.push(peer),
                Err(not_run) => plan.errors.push(not_run),
            }
        }
        plan.backends.push(row);
    }
    if plan.backends.is_empty() {
        bail!("--backends names no backend: use container, vm or both");
    }
    Ok(())
}

/// The floor, runc and crun asked for and found, on `rootfs` (the image
/// flattened); runc and crun also run the probe.
fn container_peer_rows(plan: &mut Plan, wanted: &[&str], auto: bool, rootfs: &Path) -> Result<()> {
    let found = peers::container_peers(wanted, auto, rootfs, &plan.work_dir)?;
    for (subject, _) in found.iter().filter(|(s, _)| s.id != "floor") {
        plan.oci.push(BackendPlan {
            subject: subject.clone(),
            runner: Runner::Oci {
                runtime: subject.id.clone(),
                rootfs: rootfs.to_path_buf(),
                work: plan.work_dir.join("bundles"),
            },
            artefacts: None,
            guest_memory_kib: None,
            kernel: None,
            how: None,
        });
    }
    plan.peers.extend(found);
    Ok(())
}

/// The bare monitor's rows, or why they cannot run.
fn monitor_rows(plan: &mut Plan, args: &BenchArgs, has_kvm: bool) {
    let guest = args
        .guest
        .clone()
        .or_else(|| std::env::var_os("ISOLA_TESTGUEST").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from("backend-vm/testguest/target/x86_64-unknown-none/release/isola-testguest")
        });
    let qemu = peers::found(QEMU).then_some(QEMU);
    match plan::monitor_rows(&plan.isola, &guest, has_kvm, qemu) {
        Ok(rows) => plan.monitor = rows,
        Err(not_run) => plan.errors.push(not_run),
    }
}

/// The guest kernels timed to init: `--kernels`, else the VM row's and the
/// stored isola-* ones.
fn kernel_rows(plan: &mut Plan, args: &BenchArgs, spec: &RunSpec, vms: &Vms) -> Result<()> {
    let stored: Vec<(String, PathBuf)> = kernel_store::list(vms.root.dir())?
        .into_iter()
        .map(|k| (k.name.to_string(), k.path))
        .collect();
    let vm_kernel = plan.backends.iter().find_map(|b| b.kernel.clone());
    let kernels = plan::kernels_to_time(args.kernels.as_deref(), vm_kernel.as_deref(), &stored)?;
    plan.kernels = plan::kernel_rows(
        &kernels,
        &|k: &Path| vms.with_kernel(Some(k.to_path_buf())).ok(),
        spec,
        &plan.isola,
    );
    Ok(())
}

/// Run the plan with a progress bar, print a table per dimension, and
/// write the results and the report where asked.
fn measure_and_report(plan: &Plan, host: HostFacts, args: &BenchArgs) -> Result<()> {
    let guest_kernel = plan
        .backends
        .iter()
        .find_map(|b| b.kernel.as_ref())
        .map(|k| {
            format!(
                "{} ({})",
                k.display(),
                crate::output::size(std::fs::metadata(k).map(|m| m.len()).unwrap_or(0))
            )
        });
    let machine = machine(&host.kvm, host.cgroups, guest_kernel);
    let config = Config {
        image: plan.image.clone(),
        backends: args.backends.clone(),
        peers: {
            let mut ids: Vec<String> = plan.peers.iter().map(|(s, _)| s.id.clone()).collect();
            for p in plan.lifecycle.iter().flat_map(|l| &l.peers) {
                if !ids.iter().any(|id| id == p.name()) {
                    ids.push(p.name().to_string());
                }
            }
            ids
        },
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
        plan.runs,
        if args.quick { " (--quick)" } else { "" }
    );
    let mut bar = Bar::new();
    let results = suite::run(plan, machine, config, &mut bar);
    bar.finish();
    if lifecycle::interrupted() {
        return Ok(());
    }

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

fn machine(kvm: &str, cgroup: String, guest_kernel: Option<String>) -> Machine {
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
        cgroup,
        kvm: kvm.to_string(),
        guest_kernel,
    }
}
