//! The benchmark's results: what `isola bench --out DIR` writes as
//! `results.json`, what the report draws from and what `--compare` reads.
//! docs/benchmarks.md documents every field; bump [`SCHEMA`] when one
//! changes meaning.

use serde::{Deserialize, Serialize};

pub const SCHEMA: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    pub schema: u32,
    /// When the run started, RFC 3339 UTC.
    pub created: String,
    pub isola_version: String,
    pub machine: Machine,
    pub config: Config,
    /// Who was measured, in the order tables and charts show them.
    pub subjects: Vec<Subject>,
    pub harness: Harness,
    pub startup: Startup,
    pub memory: Vec<Memory>,
    pub disk: Disk,
    pub runtime: Vec<RuntimeFigure>,
    pub density: Vec<Density>,
    pub isolation: Isolation,
    /// Detached sandboxes against podman, containerd and runc: measured
    /// with the container backend; absent from runs that did not measure
    /// it (and from results written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Pulls and pushes against podman and skopeo (`isola bench
    /// distribution`); absent from runs that did not measure them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// Dockerfile builds against buildah (`isola bench build`); absent
    /// from runs that did not measure them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// isola-runtime against runc and crun (`isola bench oci`); absent
    /// from runs that did not measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<Oci>,
    /// A subject or dimension that could not run, with its own error line.
    pub errors: Vec<RunError>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub mem_total_kib: u64,
    pub kernel: String,
    /// `v1`, `v2` or `hybrid`.
    pub cgroup: String,
    /// `hardware`, `pvm` or `none`.
    pub kvm: String,
    /// The guest kernel the VM rows boot (path and size), if any.
    pub guest_kernel: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    pub image: String,
    pub backends: Vec<String>,
    pub peers: Vec<String>,
    pub runs: usize,
    pub warmup: usize,
    pub density: usize,
    pub quick: bool,
}

/// One thing measured: an isola backend, a peer runtime, or the host itself
/// (the baseline of the runtime and isolation dimensions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subject {
    /// Stable key used everywhere else in this file: `host`, `container`,
    /// `vm`, `floor`, `crun`, `runc`, `qemu-microvm`, `monitor-isola`,
    /// `monitor-qemu`, `kernel-<monitor>-<kernel name>`; and for detached
    /// sandboxes `container-detached` (density), `podman`, `containerd`
    /// and `nsenter` (lifecycle).
    pub id: String,
    /// What tables and charts print, e.g. "vm (qemu-tcg: emulated, not KVM
    /// speed)".
    pub label: String,
    /// `host`, `isola` or `peer`.
    pub kind: String,
    /// The guest's CPU is emulated (QEMU TCG): its figures are not KVM
    /// figures and are never shown without saying so.
    pub emulated: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Harness {
    /// The harness's own cost per measured run (spawn, wait, bookkeeping),
    /// median milliseconds, measured by timing a no-op run.
    pub overhead_ms: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Startup {
    /// Warm start-to-exit of `/bin/true`, one series per subject.
    pub warm: Vec<StartupSeries>,
    /// The first run after the image was imported: it builds the per-image
    /// artefacts (the VM's rootfs archive) the warm runs reuse.
    pub cold: Vec<ColdStart>,
    /// Median time from the start of the backend's run at which each phase
    /// ended, per isola backend.
    pub phases: Vec<Phases>,
    /// The bare monitor: the test guest booted to its exit, isola's monitor
    /// against QEMU microvm (`monitor-isola`, `monitor-qemu`).
    pub monitor: Vec<StartupSeries>,
    /// Guest kernels booted to init and to exit with `/bin/true`: isola's
    /// own kernels against the distribution's, each on a monitor that can
    /// boot it here (subjects `kernel-<monitor>-<kernel name>`).
    #[serde(default)]
    pub kernels: Vec<KernelBoot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelBoot {
    pub subject: String,
    /// The kernel's file and size.
    pub kernel: String,
    pub kernel_bytes: u64,
    /// `isola` or `qemu`.
    pub vmm: String,
    /// From isola's start to isola-init's first mark, ms, per run.
    pub to_init_ms: Vec<f64>,
    /// From isola's start to the guest's end, ms, per run.
    pub to_exit_ms: Vec<f64>,
    /// The medians of the two.
    pub to_init_median_ms: Option<f64>,
    pub to_exit_median_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartupSeries {
    pub subject: String,
    /// Wall time of each run, milliseconds, in run order.
    pub ms: Vec<f64>,
    /// CPU time of each run (user + system of all it waited for), ms.
    pub cpu_ms: Vec<f64>,
    pub summary: Summary,
    pub peak_rss_kib: Option<u64>,
    /// Median of the run-by-run ratios "this subject's time / the other's"
    /// within the same interleaved series: `(other subject, ratio)`.
    pub paired: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdStart {
    pub subject: String,
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phases {
    pub subject: String,
    /// `(phase label, ms since the backend's start)`, in phase order.
    pub at_ms: Vec<(String, f64)>,
}

/// One idle sandbox (the probe waiting), seen from the host and from inside.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Memory {
    pub subject: String,
    /// What the host pays: PSS of every process of the sandbox (isola's
    /// own included; the VMM's for a VM), KiB.
    pub host_pss_kib: u64,
    /// The container's cgroup charge (pages and kernel memory), KiB.
    pub cgroup_kib: Option<u64>,
    /// The VMM's resident set, and the part of it that is guest memory
    /// the guest has touched, KiB.
    pub vmm_rss_kib: Option<u64>,
    pub guest_touched_kib: Option<u64>,
    /// MemTotal and MemAvailable as the workload reads them inside.
    pub inside_total_kib: Option<u64>,
    pub inside_available_kib: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Disk {
    /// The benchmark image in the store.
    pub image: ImageDisk,
    /// What one sandbox adds while it exists, per backend.
    pub per_sandbox: Vec<DiskItem>,
    /// What the VM backend needs besides the store: kernel, rootfs archive.
    pub vm_extra: Vec<DiskItem>,
    /// N images sharing one base layer: what the store really holds against
    /// what they would take unshared, for N = 1, 2, ...
    pub sharing: Vec<Sharing>,
    /// What a pull fetches for an image whose base the store already has,
    /// against the image's size; absent when it could not be measured (no
    /// docker-registry here) and from results written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<PullOnBase>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageDisk {
    pub name: String,
    pub layers: usize,
    pub bytes: u64,
    pub shared_bytes: u64,
    pub unique_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskItem {
    pub subject: String,
    pub what: String,
    pub bytes: u64,
}

/// An image pulled from a registry into a store that holds its base.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullOnBase {
    /// The image pulled, and the base pulled before it.
    pub image: String,
    pub base: String,
    /// The image's layers, and those the pull fetched.
    pub layers: usize,
    pub layers_fetched: usize,
    /// Compressed bytes received (isola's `Pulled`), and the compressed
    /// size of all the image's layers.
    pub bytes_fetched: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sharing {
    pub images: usize,
    pub store_bytes: u64,
    pub sum_of_images_bytes: u64,
}

/// One workload on one subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeFigure {
    /// `cpu`, `getpid`, `fork_exec`, `write_fsync`, `memcpy`, `stdout`.
    pub workload: String,
    pub subject: String,
    /// Operations per second (MiB/s for `memcpy` and `stdout`).
    pub rate: f64,
    pub unit: String,
    /// `rate` over the host's: 1.0 is no overhead, below 1 is slower.
    pub ratio_to_host: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Density {
    pub subject: String,
    pub sandboxes: usize,
    /// From the first start until every sandbox's workload was running.
    pub all_running_ms: f64,
    /// Host memory of all of them, idle (sum of PSS), KiB.
    pub host_pss_kib: u64,
}

/// The lifecycle of a detached sandbox, against its peers' own: started
/// detached, joined by a second process, and the memory of the process
/// that supervises it while it runs (isola's shim, podman's conmon,
/// containerd-shim-runc-v2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The isola binary the sandboxes ran with, and so their shims' (a
    /// shim is isola re-executed).
    pub isola: IsolaBuild,
    /// `isola run -d` until it returns with the workload started, the
    /// floor's start to exit, `podman run -d`, `ctr run -d`, and `runc
    /// create` then `runc start`: interleaved run by run, each sandbox
    /// removed after its run, outside the timed part.
    pub start: Vec<LifecycleSeries>,
    /// `true` run in a running sandbox: `isola exec`, `runc exec`, and the
    /// floor, `nsenter -a` into isola's sandbox; interleaved run by run.
    pub exec: Vec<LifecycleSeries>,
    /// The supervisor of one idle sandbox.
    pub shims: Vec<ShimMemory>,
    /// The lifecycle issue's goals, as measured.
    pub goals: Vec<Goal>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsolaBuild {
    pub path: String,
    /// `release` or `debug`, and `static` when it is.
    pub profile: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleSeries {
    pub subject: String,
    /// What was timed, as a user would type it (IDs and paths left out).
    pub command: String,
    /// Wall time of each run, milliseconds, in run order.
    pub ms: Vec<f64>,
    pub summary: Summary,
    /// Median of the run-by-run ratios "this subject's time / the other's"
    /// within the same interleaved series: `(other subject, ratio)`.
    pub paired: Vec<(String, f64)>,
}

#[cfg(test)]
impl LifecycleSeries {
    /// A one-run series of 1 ms with these paired ratios, for the goals' tests.
    pub fn with_ratios(subject: &str, paired: &[(&str, f64)]) -> LifecycleSeries {
        LifecycleSeries {
            subject: subject.into(),
            command: String::new(),
            ms: vec![1.0],
            summary: Summary {
                min: 1.0,
                median: 1.0,
                p90: 1.0,
                max: 1.0,
            },
            paired: paired.iter().map(|(o, r)| (o.to_string(), *r)).collect(),
        }
    }
}

/// One supervisor process, from /proc/PID/status and smaps_rollup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimMemory {
    pub subject: String,
    /// Its executable's name: `isola`, `conmon`, `containerd-shim-runc-v2`.
    pub process: String,
    /// Measured once the sandbox had started and settled: VmRSS, Pss, and
    /// its private pages (Private_Clean + Private_Dirty), KiB.
    pub rss_kib: u64,
    pub pss_kib: u64,
    pub private_kib: u64,
    /// The same 1.5 s after the exec runs went through it (isola's shim
    /// only).
    pub rss_after_exec_kib: Option<u64>,
    pub pss_after_exec_kib: Option<u64>,
}

/// A goal of an issue (the lifecycle's, the registry's) and what this run
/// measured against it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Goal {
    /// `start_vs_floor`, `exec_vs_runc`, `exec_vs_nsenter`, `shim_rss`;
    /// `pull_vs_podman`, `fetch_vs_skopeo`, `push_vs_skopeo`;
    /// `cold_vs_buildah`, `cached_vs_buildah`, `cached_ms`; `vs_crun`.
    pub key: String,
    /// What is measured, in words.
    pub label: String,
    /// At most this: a paired ratio, KiB or ms.
    pub limit: f64,
    pub unit: String,
    /// None when a figure it needs was not measured.
    pub value: Option<f64>,
    pub met: Option<bool>,
}

impl Goal {
    /// "At most `limit` `unit`", met when `value` (if measured) is.
    pub fn at_most(key: &str, label: &str, limit: f64, unit: &str, value: Option<f64>) -> Goal {
        Goal {
            key: key.into(),
            label: label.into(),
            limit,
            unit: unit.into(),
            value,
            met: value.map(|v| v <= limit),
        }
    }
}

/// Moving an image between a registry and a store, against podman and
/// skopeo, each run into a fresh destination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Distribution {
    /// The isola binary that pulled and pushed.
    pub isola: IsolaBuild,
    pub image: DistributionImage,
    /// `isola pull`, `podman pull`, `isola pull --fetch-only` and `skopeo
    /// copy` to an OCI layout, interleaved run by run, each into a fresh
    /// store or directory.
    pub pull: Vec<TransferSeries>,
    /// `isola push` and `skopeo copy` from an OCI layout, interleaved, each
    /// to a fresh registry.
    pub push: Vec<TransferSeries>,
    /// The image pulled into a store that holds its base already.
    pub on_base: Option<PullOnBase>,
    /// The registry issue's goals, as measured.
    pub goals: Vec<Goal>,
}

/// A Dockerfile built by isola and by buildah from the same base, the two
/// interleaved run by run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    /// The isola binary that built.
    pub isola: IsolaBuild,
    /// The Dockerfile, in words.
    pub workload: String,
    /// Each run on a store holding only the base image: no cache.
    pub cold: Vec<LifecycleSeries>,
    /// Each run on a store that built the same thing before: every step
    /// from the cache.
    pub cached: Vec<LifecycleSeries>,
    /// The build issue's goals, as measured.
    pub goals: Vec<Goal>,
}

/// One `/bin/true` bundle taken through runc's command line by
/// isola-runtime, runc and crun, each on a `--root` of its own, and the
/// same image through containerd with each as its runtime; the runtimes
/// interleaved run by run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Oci {
    /// The isola-runtime binary measured.
    pub runtime: IsolaBuild,
    /// The bundle, in words.
    pub workload: String,
    /// `create`, `start`, the init reaped by the benchmark (a child
    /// subreaper, as containerd's shim is), `delete`: one series per
    /// runtime, the four steps timed together.
    pub create_start_delete: Vec<LifecycleSeries>,
    /// The median of each of those steps, per runtime.
    pub steps: Vec<OciSteps>,
    /// `RUNTIME run`: the same life in one call, the runtime waiting.
    pub run: Vec<LifecycleSeries>,
    /// `ctr run --rm --runc-binary RUNTIME`; absent without containerd.
    pub containerd: Option<OciContainerd>,
    /// The OCI runtime issue's goals, as measured.
    pub goals: Vec<Goal>,
    /// How the runtimes saw the cgroups, when not as the host has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_view: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciSteps {
    pub subject: String,
    /// `(step, median ms)`: `create`, `start`, `exited` (from `start`'s
    /// return to the init reaped), `delete`.
    pub median_ms: Vec<(String, f64)>,
}

/// containerd end to end: one daemon of the benchmark's own, the image
/// imported once, each runtime as containerd-shim-runc-v2's binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciContainerd {
    /// `containerd 1.6.20~ds1`.
    pub label: String,
    /// Each runtime's first run after the import, in the order they ran
    /// (the first of all also pays the daemon's first task).
    pub first: Vec<ColdStart>,
    /// The warm runs, interleaved run by run.
    pub warm: Vec<LifecycleSeries>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistributionImage {
    /// What it is, in words: `Debian bookworm minbase (mmdebstrap) + ...`
    /// or `synthetic ...`.
    pub label: String,
    pub layers: usize,
    /// The compressed size of its layers (what a pull fetches), and the
    /// size of the files they hold unpacked.
    pub compressed_bytes: u64,
    pub unpacked_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferSeries {
    pub subject: String,
    /// What was timed, as a user would type it (addresses and paths left out).
    pub command: String,
    /// Wall time of each run, milliseconds, in run order.
    pub ms: Vec<f64>,
    /// CPU time of each run (user + system of all it waited for), ms.
    pub cpu_ms: Vec<f64>,
    pub summary: Summary,
    pub cpu_median_ms: f64,
    /// The image's compressed bytes over the median wall time.
    pub mib_per_s: f64,
    /// Median of the run-by-run ratios "this subject's time / the other's"
    /// within the same interleaved series: `(other subject, ratio)`.
    pub paired: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Isolation {
    pub rows: Vec<IsolationRow>,
    /// The probe's own JSON per subject, as it printed it.
    pub facts: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsolationRow {
    pub key: String,
    pub label: String,
    /// Why it matters, in a few words.
    pub why: String,
    /// `(subject, value as shown)`.
    pub values: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunError {
    pub subject: String,
    pub dimension: String,
    pub message: String,
}
