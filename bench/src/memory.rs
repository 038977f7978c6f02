//! Memory and density: what idle sandboxes (the probe waiting) cost the
//! host, one at a time and K at once (in the foreground, and detached with
//! their shims), and what the workload sees inside.

use std::time::{Duration, Instant};

use crate::plan::BackendPlan;
use crate::procfs;
use crate::results::{Density, Memory};
use crate::sandbox::{self, Idle, Runner, SandboxError, PROBE_IN_IMAGE};
use crate::vmm_surface::{self, VmmSurface};

/// Long enough for K emulated guests booting at once on two cores.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Let the sandbox's start-up work (page cache, lazy allocations) settle.
const SETTLE: Duration = Duration::from_millis(300);

/// What one idle sandbox costs, and its VMM's own confinement (a VM's
/// host syscall surface), if it has one.
pub fn idle(b: &BackendPlan) -> Result<(Memory, Option<VmmSurface>), SandboxError> {
    let mut idle = Idle::start(&b.runner.probe(&["idle"], None, false)?)?;
    let measured = idle.ready(READY_TIMEOUT).map(|(_, inside)| {
        std::thread::sleep(SETTLE);
        let pids = procfs::tree(idle.pid());
        let host_pss_kib = pids.iter().filter_map(|&p| procfs::pss_kib(p)).sum();
        let workload = pids
            .iter()
            .copied()
            .find(|&p| procfs::comm(p).as_deref() == Some("isola-probe"));
        let vmm = b.is_vm().then(|| vmm_pid(&pids));
        let memory = Memory {
            subject: b.subject.id.clone(),
            host_pss_kib,
            cgroup_kib: if b.is_vm() {
                None
            } else {
                workload.and_then(procfs::cgroup_memory_kib)
            },
            vmm_rss_kib: vmm.and_then(procfs::rss_kib),
            guest_touched_kib: vmm.zip(b.guest_memory_kib).and_then(|(pid, kib)| {
                // The guest's RAM is one mapping of its size (a few KiB of
                // slack for alignment).
                procfs::largest_mapping_rss_kib(pid, kib.saturating_sub(64))
            }),
            inside_total_kib: inside["mem_total_kib"].as_u64(),
            inside_available_kib: inside["mem_available_kib"].as_u64(),
        };
        (memory, vmm.map(vmm_surface::read))
    });
    idle.stop(STOP_GRACE);
    measured
}

/// The process running the guest: QEMU or isola-vmm below isola, else
/// isola itself.
fn vmm_pid(tree: &[u32]) -> u32 {
    tree.iter()
        .copied()
        .find(|&p| {
            procfs::comm(p).is_some_and(|c| c.starts_with("qemu-system") || c == "isola-vmm")
        })
        .unwrap_or(tree[0])
}

/// K sandboxes started at once: time until every workload runs, and their
/// memory in total once all are idle.
pub fn density(b: &BackendPlan, k: usize) -> Result<Density, SandboxError> {
    // A command line each: an OCI runtime's container ID is per run.
    let argvs = (0..k)
        .map(|_| b.runner.probe(&["idle"], None, false))
        .collect::<Result<Vec<_>, _>>()?;
    let t0 = Instant::now();
    let mut started = Vec::with_capacity(k);
    let mut failure = None;
    for argv in &argvs {
        match Idle::start(argv) {
            Ok(i) => started.push(i),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let mut last = t0;
    if failure.is_none() {
        for idle in &mut started {
            match idle.ready(READY_TIMEOUT) {
                Ok((at, _)) => last = last.max(at),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    let result = match failure {
        Some(e) => Err(e),
        None => {
            std::thread::sleep(SETTLE);
            let host_pss_kib = started
                .iter()
                .flat_map(|i| procfs::tree(i.pid()))
                .filter_map(procfs::pss_kib)
                .sum();
            Ok(Density {
                subject: b.subject.id.clone(),
                sandboxes: k,
                all_running_ms: (last - t0).as_secs_f64() * 1e3,
                host_pss_kib,
            })
        }
    };
    // All told to stop first, so their teardowns overlap.
    for idle in &started {
        idle.terminate();
    }
    for idle in started {
        idle.wait(STOP_GRACE);
    }
    result
}

/// The subject of [`density_detached`]'s figures.
pub const DETACHED: &str = "container-detached";

/// K sandboxes started detached at once (`isola run -d`, all spawned
/// together): time until every `run -d` has returned (each returns once
/// its workload runs), and their memory in total once all are idle, each
/// shim's included. All are removed (`rm -f`) before this returns.
pub fn density_detached(b: &BackendPlan, k: usize) -> Result<Density, SandboxError> {
    let Runner::Isola { isola, .. } = &b.runner else {
        return Err(SandboxError::NotIsola);
    };
    let names: Vec<String> = (0..k)
        .map(|i| format!("isola-bench-{}-density-{i}", std::process::id()))
        .collect();
    let argvs = names
        .iter()
        .map(|n| {
            b.runner
                .isola_run(
                    &["-d".into(), "--name".into(), n.clone()],
                    true,
                    &[PROBE_IN_IMAGE, "idle"],
                )
                .ok_or(SandboxError::NotIsola)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let t0 = Instant::now();
    let started: Vec<_> = argvs.iter().map(|a| sandbox::spawn_piped(a)).collect();
    let mut last = t0;
    let mut failure = None;
    for child in started {
        let done = child.and_then(|c| c.wait_with_output().map_err(SandboxError::Wait));
        last = Instant::now();
        match done {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                failure.get_or_insert(SandboxError::Failed(sandbox::error_line(
                    &out.stderr,
                    out.status,
                )));
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let result = match failure {
        Some(e) => Err(e),
        None => {
            std::thread::sleep(SETTLE);
            let mut host_pss_kib = 0;
            for n in &names {
                let v = sandbox::json(&isola.argv(&["inspect", n]))?;
                let shim = v["pid"]
                    .as_u64()
                    .ok_or_else(|| SandboxError::Failed(format!("isola inspect {n} gave no pid")))?
                    as u32;
                host_pss_kib += procfs::tree(shim)
                    .into_iter()
                    .filter_map(procfs::pss_kib)
                    .sum::<u64>();
            }
            Ok(Density {
                subject: DETACHED.into(),
                sandboxes: k,
                all_running_ms: (last - t0).as_secs_f64() * 1e3,
                host_pss_kib,
            })
        }
    };
    // Those that were made, whichever they are (a name not taken is
    // refused and changes nothing).
    let mut rm = vec!["rm".to_string(), "-f".into()];
    rm.extend(names);
    let removed = sandbox::output(&isola.argv(&rm));
    match (result, removed) {
        (Ok(d), Ok(_)) => Ok(d),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}
