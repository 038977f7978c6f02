//! Runs a [`Plan`]: every dimension, for every subject, into one
//! [`Results`]. A subject that fails a dimension is reported with its own
//! error line and the run goes on.

use isola_core::backend::{Description, Phase};
use isola_core::image::ImageStore;
use isola_core::Root;

use crate::disk::DiskError;
use crate::distribution::registry;
use crate::isolation::{self, Probed};
use crate::plan::{BackendPlan, Plan};
use crate::results::{
    ColdStart, Config, Disk, Harness, Isolation, KernelBoot, Machine, Phases, Results, RunError,
    Startup, StartupSeries, Subject, Summary,
};
use crate::sandbox::Runner;
use crate::sandbox::SandboxError;
use crate::startup::{self, Contender};
use crate::{disk, lifecycle, memory, runtime, sandbox};
use isola_core::chain::chain;

/// Told what the run is doing.
pub trait Progress {
    /// Dimension `done` of `total` starts (`done == total`: all finished).
    fn step(&mut self, what: &str, done: usize, total: usize);
    /// A line on where the current dimension is.
    fn detail(&mut self, what: &str);
}

/// The dimensions, in the order they run.
pub const DIMENSIONS: [&str; 7] = [
    "startup",
    "memory",
    "disk",
    "runtime",
    "density",
    "lifecycle",
    "isolation",
];

pub fn run(plan: &Plan, machine: Machine, config: Config, progress: &mut dyn Progress) -> Results {
    let mut errors = plan.errors.clone();
    let mut fail = |subject: &str, dimension: &str, message: String| {
        errors.push(RunError {
            subject: subject.to_string(),
            dimension: dimension.to_string(),
            message,
        })
    };
    let created = crate::time::now_rfc3339();
    let total = DIMENSIONS.len();
    let mut step = 0;
    let mut next = |what: &str, progress: &mut dyn Progress| {
        progress.step(what, step, total);
        step += 1;
    };

    next("startup", progress);
    let harness = Harness {
        overhead_ms: harness_overhead(plan),
    };
    let cold = cold_starts(plan, &mut fail);
    let (warm, monitor) = warm_starts(plan, &mut fail, progress);
    let phases = phases(plan, &mut fail);
    let kernels = kernels(plan, &mut fail);

    // The OCI peers whose startup runs worked run the other workloads too.
    let measured: Vec<&BackendPlan> = plan
        .backends
        .iter()
        .chain(
            plan.oci
                .iter()
                .filter(|p| warm.iter().any(|s| s.subject == p.subject.id)),
        )
        .collect();
    let runners = plan.runners(&measured);

    next("memory", progress);
    let mut memory = Vec::new();
    let mut vmm_surface = Vec::new();
    for &b in &measured {
        match memory::idle(b) {
            Ok((m, surface)) => {
                memory.push(m);
                vmm_surface.push((b.subject.id.clone(), surface));
            }
            Err(e) => fail(&b.subject.id, "memory", chain(&e)),
        }
    }

    next("disk", progress);
    let disk = disk(plan, &mut fail);

    next("runtime", progress);
    let (runtime, runtime_errors) = runtime::measure(
        &plan.isola,
        &runners,
        &able(&measured, |h| h.volumes),
        &able(&measured, |h| h.networks),
        plan.work_ms,
        &plan.work_dir,
    );
    for (subject, e) in runtime_errors {
        fail(&subject, "runtime", chain(&e));
    }

    next("density", progress);
    let mut density = Vec::new();
    let mut subjects = plan.subjects();
    for &b in &measured {
        match memory::density(b, plan.density) {
            Ok(d) => density.push(d),
            Err(e) => fail(&b.subject.id, "density", chain(&e)),
        }
        // Detached, each sandbox has a shim beside its workload.
        if b.subject.id == "container" {
            match memory::density_detached(b, plan.density) {
                Ok(d) => density.push(d),
                Err(e) => fail(memory::DETACHED, "density", chain(&e)),
            }
            subjects.push(Subject {
                id: memory::DETACHED.into(),
                label: "container, detached (run -d: shim + workload)".into(),
                kind: "isola".into(),
                emulated: false,
            });
        }
    }

    next("lifecycle", progress);
    let lifecycle = plan.lifecycle.as_ref().map(|l| {
        let outcome = lifecycle::run(l, &mut |what| progress.detail(what));
        for s in outcome.subjects {
            if !subjects.iter().any(|known| known.id == s.id) {
                subjects.push(s);
            }
        }
        for e in outcome.errors {
            fail(&e.subject, &e.dimension, e.message);
        }
        outcome.lifecycle
    });

    next("isolation", progress);
    let mut probed: Vec<Probed> = Vec::new();
    // Interrupted during the lifecycle: what is left is not run.
    let runners = if lifecycle::interrupted() {
        Vec::new()
    } else {
        runners
    };
    for (subject, runner) in runners {
        match isolation::probe(&subject, &runner) {
            Ok(mut p) => {
                p.vmm = vmm_surface
                    .iter()
                    .find(|(s, _)| *s == subject)
                    .and_then(|(_, m)| m.clone());
                probed.push(p)
            }
            Err(e) => fail(&subject, "isolation", chain(&e)),
        }
    }
    progress.step("done", total, total);

    Results {
        schema: crate::results::SCHEMA,
        created,
        isola_version: env!("CARGO_PKG_VERSION").to_string(),
        machine,
        config,
        subjects,
        harness,
        startup: Startup {
            warm,
            cold,
            phases,
            monitor,
            kernels,
        },
        memory,
        disk,
        runtime,
        density,
        isolation: Isolation {
            rows: isolation::rows(&probed),
            facts: probed.into_iter().map(|p| (p.subject, p.facts)).collect(),
        },
        lifecycle,
        distribution: None,
        build: None,
        oci: None,
        errors,
    }
}

/// The harness's own cost per measured run: the same spawn-and-wait path
/// timing the smallest static program there is (the probe doing nothing).
/// An upper bound: it includes that program's own exec and exit.
fn harness_overhead(plan: &Plan) -> f64 {
    let noop = Contender::new(
        "noop",
        vec![plan.host_probe.display().to_string(), "noop".into()],
    );
    let r = startup::measure_times(&[noop], 20, 3, |_| {});
    r.first()
        .and_then(|r| r.summary())
        .map(|s| s.median)
        .unwrap_or(f64::NAN)
}

/// One run per backend with its per-image artefacts removed first: what
/// the first start after an import costs.
fn cold_starts(plan: &Plan, fail: &mut impl FnMut(&str, &str, String)) -> Vec<ColdStart> {
    let mut out = Vec::new();
    for b in &plan.backends {
        for a in b.artefact_files() {
            let _ = std::fs::remove_file(a);
        }
        let Some(argv) = b.runner.command(&["/bin/true"]) else {
            continue;
        };
        let r = startup::measure_times(&[Contender::new(&b.subject.id, argv)], 1, 0, |_| {});
        match r.first() {
            Some(r) if r.error.is_none() => out.push(ColdStart {
                subject: b.subject.id.clone(),
                ms: r.ms[0],
            }),
            Some(r) => fail(
                &b.subject.id,
                "startup (cold)",
                r.error.clone().unwrap_or_default(),
            ),
            None => {}
        }
    }
    out
}

/// Warm runs of every backend and startup peer, interleaved run by run;
/// then the bare monitors, interleaved with each other.
fn warm_starts(
    plan: &Plan,
    fail: &mut impl FnMut(&str, &str, String),
    progress: &mut dyn Progress,
) -> (Vec<StartupSeries>, Vec<StartupSeries>) {
    let contenders: Vec<Contender> = plan
        .backends
        .iter()
        .filter_map(|b| {
            Some(Contender::new(
                &b.subject.id,
                b.runner.command(&["/bin/true"])?,
            ))
        })
        .chain(plan.peers.iter().map(|(_, c)| c.clone()))
        .collect();
    let mut series = |cs: &[Contender], what: &str, progress: &mut dyn Progress| {
        let results = startup::measure(cs, plan.runs, plan.warmup, |done| {
            progress.detail(&format!("{what}: run {done}/{}", plan.runs))
        });
        for r in &results {
            if let Some(e) = &r.error {
                fail(&r.name, "startup", e.clone());
            }
        }
        to_series(&results)
    };
    let warm = series(&contenders, "startup", progress);
    let monitor: Vec<Contender> = plan.monitor.iter().map(|(_, c)| c.clone()).collect();
    let monitor = if monitor.is_empty() {
        Vec::new()
    } else {
        series(&monitor, "monitor", progress)
    };
    (warm, monitor)
}

fn to_series(results: &[startup::Result]) -> Vec<StartupSeries> {
    results
        .iter()
        .filter_map(|r| {
            let s = r.summary()?;
            Some(StartupSeries {
                subject: r.name.clone(),
                ms: r.ms.clone(),
                cpu_ms: r.cpu_ms.clone(),
                summary: Summary {
                    min: s.min,
                    median: s.median,
                    p90: s.p90,
                    max: s.max,
                },
                peak_rss_kib: r.peak_rss_kib,
                // isola's rows against every other; a peer's against isola's.
                paired: results
                    .iter()
                    .filter(|o| o.name != r.name && !o.ms.is_empty())
                    .filter(|o| is_isola(&r.name) || is_isola(&o.name))
                    .filter_map(|o| Some((o.name.clone(), startup::paired_ratio(r, o)?)))
                    .collect(),
            })
        })
        .collect()
}

fn is_isola(name: &str) -> bool {
    matches!(name, "container" | "vm" | "monitor-isola")
}

/// Where each backend's time goes: a few more runs, each writing the phase
/// times isola measured, and the median of each.
fn phases(plan: &Plan, fail: &mut impl FnMut(&str, &str, String)) -> Vec<Phases> {
    let mut out = Vec::new();
    for b in &plan.backends {
        let runs = match phase_runs(plan, &b.runner, plan.runs.clamp(1, 5)) {
            Ok(runs) => runs,
            Err(e) => {
                fail(&b.subject.id, "startup (phases)", chain(&e));
                continue;
            }
        };
        let Some(first) = runs.first() else { continue };
        let at_ms = first
            .iter()
            .enumerate()
            .map(|(i, (label, _))| {
                let values: Vec<f64> = runs.iter().filter_map(|r| r.get(i).map(|p| p.1)).collect();
                (label.clone(), startup::median(&values).unwrap_or(f64::NAN))
            })
            .collect();
        out.push(Phases {
            subject: b.subject.id.clone(),
            at_ms,
        });
    }
    out
}

/// Each guest kernel booted to init and to exit, a few times.
fn kernels(plan: &Plan, fail: &mut impl FnMut(&str, &str, String)) -> Vec<KernelBoot> {
    let mut out = Vec::new();
    for k in &plan.kernels {
        let runs = match phase_runs(plan, &k.runner, plan.kernel_runs) {
            Ok(runs) => runs,
            Err(e) => {
                fail(&k.subject.id, "startup (guest kernels)", chain(&e));
                continue;
            }
        };
        let at = |phase: Phase| -> Vec<f64> {
            runs.iter()
                .filter_map(|r| r.iter().find(|(l, _)| l == phase.label()).map(|p| p.1))
                .collect()
        };
        let (to_init_ms, to_exit_ms) = (at(Phase::SandboxCreated), at(Phase::WorkloadExited));
        out.push(KernelBoot {
            subject: k.subject.id.clone(),
            kernel: k.kernel.display().to_string(),
            kernel_bytes: std::fs::metadata(&k.kernel).map_or(0, |m| m.len()),
            vmm: k.vmm.to_string(),
            to_init_median_ms: startup::median(&to_init_ms),
            to_exit_median_ms: startup::median(&to_exit_ms),
            to_init_ms,
            to_exit_ms,
        });
    }
    out
}

/// Why the phase times of a run could not be had.
#[derive(Debug, thiserror::Error)]
enum PhasesError {
    #[error(transparent)]
    Run(#[from] SandboxError),
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Parse(#[from] serde_json::Error),
}

/// `n` runs of `/bin/true` that write the phase times isola measured:
/// `(phase label, ms since the backend's start)` per run.
fn phase_runs(
    plan: &Plan,
    runner: &Runner,
    n: usize,
) -> Result<Vec<Vec<(String, f64)>>, PhasesError> {
    let file = plan.work_dir.join("phases.json");
    let extra = ["--phases-to".to_string(), file.display().to_string()];
    let Some(argv) = runner.isola_run(&extra, false, &["/bin/true"]) else {
        return Ok(Vec::new());
    };
    let mut runs = Vec::new();
    for _ in 0..n {
        sandbox::output(&argv)?;
        let text = std::fs::read(&file)?;
        let _ = std::fs::remove_file(&file);
        let v: serde_json::Value = serde_json::from_slice(&text)?;
        runs.push(serde_json::from_value::<Vec<(String, f64)>>(
            v["phases_ms"].clone(),
        )?);
    }
    Ok(runs)
}

/// isola's backends that can do `what` here: attach a named volume (a VM:
/// where its kernel has virtio-blk built in), join a bridge network (a VM:
/// virtio-net).
fn able(measured: &[&BackendPlan], what: fn(&Description) -> bool) -> Vec<String> {
    measured
        .iter()
        .filter(|b| b.how.as_ref().is_some_and(what))
        .map(|b| b.subject.id.clone())
        .collect()
}

fn disk(plan: &Plan, fail: &mut impl FnMut(&str, &str, String)) -> Disk {
    let image = ImageStore::open(Root::new(&plan.isola.root))
        .map_err(DiskError::from)
        .and_then(|s| disk::image(&s, &plan.image));
    let image = image.unwrap_or_else(|e| {
        fail("store", "disk", chain(&e));
        crate::results::ImageDisk {
            name: plan.image.clone(),
            layers: 0,
            bytes: 0,
            shared_bytes: 0,
            unique_bytes: 0,
        }
    });
    let mut per_sandbox = Vec::new();
    let mut vm_extra = Vec::new();
    for b in &plan.backends {
        match disk::per_sandbox(&plan.isola, b) {
            Ok(item) => per_sandbox.push(item),
            Err(e) => fail(&b.subject.id, "disk", chain(&e)),
        }
        vm_extra.extend(disk::vm_extra(b));
    }
    let scratch = plan.work_dir.join("sharing");
    let sharing = disk::sharing(&scratch, plan.sharing_images).unwrap_or_else(|e| {
        fail("store", "disk (sharing)", chain(&e));
        Vec::new()
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let distribution = if crate::peers::found(registry::PROGRAM) {
        let scratch = plan.work_dir.join("distribution");
        let line = disk::distribution(&scratch, &plan.host_probe);
        let _ = std::fs::remove_dir_all(&scratch);
        line.map_err(|e| fail("store", "disk (distribution)", chain(&e)))
            .ok()
    } else {
        fail(
            "store",
            "disk (distribution)",
            format!(
                "not run: {} is not installed (scripts/setup --registry installs it)",
                registry::PROGRAM
            ),
        );
        None
    };
    Disk {
        image,
        per_sandbox,
        vm_extra,
        sharing,
        distribution,
    }
}
