//! Memory and density: what idle sandboxes (the probe waiting) cost the
//! host, one at a time and K at once, and what the workload sees inside.

use std::time::{Duration, Instant};

use crate::plan::BackendPlan;
use crate::procfs;
use crate::results::{Density, Memory};
use crate::sandbox::{Idle, SandboxError};

/// Long enough for K emulated guests booting at once on two cores.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Let the sandbox's start-up work (page cache, lazy allocations) settle.
const SETTLE: Duration = Duration::from_millis(300);

/// What one idle sandbox costs, and the seccomp mode of its VMM (a VM's
/// own host syscall surface), if it has one.
pub fn idle(b: &BackendPlan) -> Result<(Memory, Option<u8>), SandboxError> {
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
        (memory, vmm.and_then(procfs::seccomp_mode))
    });
    idle.stop(STOP_GRACE);
    measured
}

/// The process running the guest: QEMU below isola, else isola itself.
fn vmm_pid(tree: &[u32]) -> u32 {
    tree.iter()
        .copied()
        .find(|&p| procfs::comm(p).is_some_and(|c| c.starts_with("qemu-system")))
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
