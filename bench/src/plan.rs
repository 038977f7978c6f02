//! What one benchmark run measures: the subjects (host, isola's backends,
//! the peers found here), how each is started, and how many times. The
//! rows of isola's backends come from asking each backend how it would run
//! here (`Backend::describe`); the frontend puts the plan together from its
//! flags, and [`crate::suite`] runs it.

use std::path::{Path, PathBuf};

use isola_core::backend::{Backend, BackendError, Description};
use isola_core::spec::RunSpec;

use crate::results::{RunError, Subject};
use crate::sandbox::{IsolaCli, Runner};
use crate::startup::Contender;

pub struct Plan {
    pub isola: IsolaCli,
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
    /// Detached sandboxes against their peers, when the container backend
    /// is measured.
    pub lifecycle: Option<crate::lifecycle::LifecyclePlan>,
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
    pub vmm: String,
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
    /// How the backend said it runs here (isola's rows only).
    pub how: Option<Description>,
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

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the {backend} rows cannot run here")]
    Backend {
        backend: String,
        #[source]
        source: BackendError,
    },
    #[error("peer qemu is not installed: install qemu-system-x86")]
    NoQemu,
    #[error(
        "--kernels: {0} is neither a file nor a kernel in isola's store (`isola kernel ls` lists them)"
    )]
    NoKernel(String),
}

/// The row of isola backend `name`, run as its `describe` says it will
/// run here (the VM: on whichever monitor boots its kernel, emulated or
/// not, as the label then says).
pub fn backend_row(
    name: &str,
    backend: &dyn Backend,
    spec: &RunSpec,
    isola: &IsolaCli,
) -> Result<BackendPlan, PlanError> {
    let how = backend
        .describe(spec)
        .map_err(|source| PlanError::Backend {
            backend: name.to_string(),
            source,
        })?;
    let mut flags = vec!["--backend".to_string(), name.to_string()];
    flags.extend(how.flags.iter().cloned());
    Ok(BackendPlan {
        subject: Subject {
            id: name.to_string(),
            label: match &how.emulated {
                Some(why) => format!("{name} ({why})"),
                None => name.to_string(),
            },
            kind: "isola".into(),
            emulated: how.emulated.is_some(),
        },
        runner: Runner::Isola {
            isola: isola.clone(),
            flags,
            image: spec.image.clone(),
        },
        artefacts: how.artefacts.clone(),
        guest_memory_kib: how.guest_memory.map(|b| b >> 10),
        kernel: how.kernel.clone(),
        how: Some(how),
    })
}

/// QEMU microvm booting the VM row's kernel and rootfs, as a startup peer,
/// where it can run on KVM beside isola's monitor; otherwise why not.
pub fn qemu_peer(
    vm: &BackendPlan,
    isola: &IsolaCli,
    image: &str,
    qemu_found: bool,
    auto: bool,
) -> Result<Result<(Subject, Contender), RunError>, PlanError> {
    let how = vm.how.clone().unwrap_or_default();
    let on_kvm = how.monitor.as_deref() == Some("isola") && how.emulated.is_none();
    if !on_kvm {
        return Ok(Err(crate::peers::not_run(
            "qemu-microvm",
            if how.monitor.as_deref() == Some("qemu") {
                "not run as a peer: the vm row itself runs on QEMU here, since this host's KVM cannot boot Linux"
            } else {
                "not run as a peer: QEMU cannot use this host's KVM for Linux, and a software CPU against isola's monitor would compare nothing"
            },
        )));
    }
    if !qemu_found {
        return if auto {
            Ok(Err(crate::peers::not_run(
                "qemu-microvm",
                "not run: qemu-system-x86_64 is not installed",
            )))
        } else {
            Err(PlanError::NoQemu)
        };
    }
    let mut flags = vec![
        "--backend".to_string(),
        "vm".into(),
        "--vmm".into(),
        "qemu".into(),
    ];
    if let Some(k) = &how.kernel {
        flags.extend(["--kernel".to_string(), k.display().to_string()]);
    }
    let runner = Runner::Isola {
        isola: isola.clone(),
        flags,
        image: image.to_string(),
    };
    Ok(match runner.command(&["/bin/true"]) {
        Some(argv) => Ok((
            crate::peers::subject("qemu-microvm", "qemu microvm (same kernel and rootfs)"),
            Contender::new("qemu-microvm", argv),
        )),
        None => Err(crate::peers::not_run(
            "qemu-microvm",
            "not run: no command line",
        )),
    })
}

/// The guest kernels to time to init: those `given` (paths or names in
/// `stored`), else the VM row's kernel and the stored isola-* kernels.
pub fn kernels_to_time(
    given: Option<&[String]>,
    vm_kernel: Option<&Path>,
    stored: &[(String, PathBuf)],
) -> Result<Vec<(String, PathBuf)>, PlanError> {
    let name_of = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let mut kernels: Vec<(String, PathBuf)> = Vec::new();
    match given {
        Some(given) => {
            for k in given {
                let path = Path::new(k);
                if path.is_file() {
                    kernels.push((name_of(path), path.to_path_buf()));
                } else if let Some((_, p)) = stored.iter().find(|(n, _)| n == k) {
                    kernels.push((k.clone(), p.clone()));
                } else {
                    return Err(PlanError::NoKernel(k.clone()));
                }
            }
        }
        None => {
            if let Some(k) = vm_kernel {
                kernels.push((name_of(k), k.to_path_buf()));
            }
            for (name, path) in stored.iter().filter(|(n, _)| n.starts_with("isola-")) {
                if !kernels.iter().any(|(_, p)| p == path) {
                    kernels.push((name.clone(), path.clone()));
                }
            }
        }
    }
    Ok(kernels)
}

/// Each kernel booted to init on whichever monitor boots it here, as the
/// VM backend describes it; a kernel nothing here boots is left out.
pub fn kernel_rows(
    kernels: &[(String, PathBuf)],
    vm_with_kernel: &dyn Fn(&Path) -> Option<Box<dyn Backend>>,
    spec: &RunSpec,
    isola: &IsolaCli,
) -> Vec<KernelPlan> {
    let mut rows = Vec::new();
    for (name, kernel) in kernels {
        let Some(Ok(how)) = vm_with_kernel(kernel).map(|vm| vm.describe(spec)) else {
            continue;
        };
        let vmm = how.monitor.clone().unwrap_or_else(|| "isola".into());
        let label = match (&how.emulated, vmm.as_str()) {
            (None, _) => format!("{vmm} monitor + {name}"),
            (Some(why), "isola") => format!("{name} ({why})"),
            (Some(_), _) => format!("qemu-tcg + {name} (emulated)"),
        };
        let mut flags = vec!["--backend".to_string(), "vm".into()];
        flags.extend(how.flags.iter().cloned());
        rows.push(KernelPlan {
            subject: Subject {
                id: format!("kernel-{vmm}-{name}"),
                label,
                kind: if name.starts_with("isola-") {
                    "isola"
                } else {
                    "peer"
                }
                .into(),
                emulated: how.emulated.is_some(),
            },
            runner: Runner::Isola {
                isola: isola.clone(),
                flags,
                image: spec.image.clone(),
            },
            kernel: kernel.clone(),
            vmm,
        });
    }
    rows
}

/// The bare monitor rows (the test guest on isola's monitor and QEMU's),
/// or why they cannot run: they need /dev/kvm and the test guest.
pub fn monitor_rows(
    isola: &IsolaCli,
    guest: &Path,
    has_kvm: bool,
    qemu: Option<&str>,
) -> Result<Vec<(Subject, Contender)>, RunError> {
    if !has_kvm {
        Err(crate::peers::not_run(
            "monitor-isola",
            "not run: the bare monitor needs /dev/kvm",
        ))
    } else if !guest.is_file() {
        Err(crate::peers::not_run(
            "monitor-isola",
            &format!(
                "not run: no test guest at {} (`make testguest` builds it; or give --guest)",
                guest.display()
            ),
        ))
    } else {
        Ok(crate::peers::monitor_contenders(isola, guest, 128, qemu))
    }
}
