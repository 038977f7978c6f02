//! What one benchmark run measures: the subjects (host, isola's backends,
//! the peers found here), how each is started, and how many times. The
//! frontend builds it from its flags and the host; [`crate::suite`] runs it.

use std::path::PathBuf;

use crate::results::{RunError, Subject};
use crate::sandbox::{Isola, Runner};
use crate::startup::Contender;

pub struct Plan {
    pub isola: Isola,
    /// The image every sandbox runs (the default image with the probe).
    pub image: String,
    /// The host: baseline of the runtime and isolation dimensions.
    pub host: Subject,
    pub host_probe: PathBuf,
    pub backends: Vec<BackendPlan>,
    /// Startup peers (floor, crun, runc, QEMU microvm), run interleaved
    /// with isola's backends.
    pub peers: Vec<(Subject, Contender)>,
    /// The startup peers that run the probe too (runc, crun): measured in
    /// the memory, runtime, density and isolation dimensions when their
    /// startup runs worked.
    pub oci: Vec<BackendPlan>,
    /// The bare monitor: the test guest on isola's monitor and on QEMU.
    pub monitor: Vec<(Subject, Contender)>,
    /// Guest kernels timed to init, each on a monitor that boots it here.
    pub kernels: Vec<KernelPlan>,
    /// Boots per guest kernel (under emulation each takes seconds to minutes).
    pub kernel_runs: usize,
    /// Peers that were asked for or found but cannot run here.
    pub errors: Vec<RunError>,
    /// Scratch space on the host's disk (fsync files, bundles, phase files).
    pub work_dir: PathBuf,
    pub runs: usize,
    pub warmup: usize,
    pub density: usize,
    /// How long each runtime workload runs, ms.
    pub work_ms: u64,
    /// How many images share a base in the disk dimension's lesson.
    pub sharing_images: usize,
}

/// A guest kernel on one monitor: `isola run --backend vm --vmm VMM
/// --kernel KERNEL`.
pub struct KernelPlan {
    pub subject: Subject,
    pub kernel: PathBuf,
    pub vmm: &'static str,
    pub runner: Runner,
}

/// One isola backend as the benchmark runs it.
pub struct BackendPlan {
    pub subject: Subject,
    pub runner: Runner,
    /// Per-image artefacts the backend builds on first use (the VM's rootfs
    /// archive), as a directory and a file-name prefix: removed before the
    /// cold run, measured by the disk dimension.
    pub artefacts: Option<(PathBuf, String)>,
    /// Guest memory of a VM, KiB: finds the guest's mapping in the VMM.
    pub guest_memory_kib: Option<u64>,
    /// The guest kernel a VM boots (the disk dimension counts it).
    pub kernel: Option<PathBuf>,
}

impl BackendPlan {
    pub fn is_vm(&self) -> bool {
        self.guest_memory_kib.is_some()
    }

    pub fn artefact_files(&self) -> Vec<PathBuf> {
        let Some((dir, prefix)) = &self.artefacts else {
            return Vec::new();
        };
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix.as_str()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Plan {
    /// Every subject, in the order of the tables: host, backends, peers.
    pub fn subjects(&self) -> Vec<Subject> {
        std::iter::once(self.host.clone())
            .chain(self.backends.iter().map(|b| b.subject.clone()))
            .chain(self.peers.iter().map(|(s, _)| s.clone()))
            .chain(self.monitor.iter().map(|(s, _)| s.clone()))
            .chain(self.kernels.iter().map(|k| k.subject.clone()))
            .collect()
    }

    /// The host and each of `measured`, with how each runs the probe.
    pub fn runners(&self, measured: &[&BackendPlan]) -> Vec<(String, Runner)> {
        std::iter::once((
            self.host.id.clone(),
            Runner::Host {
                probe: self.host_probe.clone(),
            },
        ))
        .chain(
            measured
                .iter()
                .map(|b| (b.subject.id.clone(), b.runner.clone())),
        )
        .collect()
    }
}
