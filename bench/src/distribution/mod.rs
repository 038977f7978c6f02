//! Distribution: an image moved between a registry and a store, against
//! its peers. `isola pull` (fetched, verified, unpacked) against `podman
//! pull`, which also unpacks; the fetch part alone (`isola pull
//! --fetch-only`) against `skopeo copy` to an OCI layout, which fetches and
//! verifies; `isola push` against `skopeo copy` from an OCI layout. Every
//! run goes into a fresh destination, the subjects interleaved run by run,
//! from a docker-registry the dimension starts on 127.0.0.1 and stops; and
//! what a pull fetches when the store holds the image's base already.

pub mod copy;
pub mod image;
pub mod registry;
mod transfer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use isola_core::image::media::Compression;
use isola_core::image::{ImageError, ImageStore};
use isola_core::registry::RegistryError;
use isola_core::Root;

use crate::interrupt;
use crate::lifecycle::podman;
use crate::peers::found;
use crate::results::{
    Distribution, DistributionImage, Goal, PullOnBase, RunError, Subject, Summary, TransferSeries,
};
use crate::startup;
use image::{ImageMakeError, Recipe, BASE_TAG, FULL_TAG, REPOSITORY};
use isola_core::chain::chain;
use registry::{LocalRegistry, LocalRegistryError};
use transfer::{Kind, Sources};

/// The peers this dimension knows, as `--peers` names them.
pub const PEERS: [&str; 2] = ["podman", "skopeo"];

/// The pairs whose run-by-run ratios are reported: (isola's, the peer's).
const PAIRS: [(&str, &str); 3] = [
    ("isola", "podman"),
    ("isola-fetch", "skopeo"),
    ("isola", "skopeo"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `podman pull` into overlay storage of its own.
    Podman,
    /// `skopeo copy` between the registry and an OCI layout, both ways.
    Skopeo,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::Podman => "podman",
            Peer::Skopeo => "skopeo",
        }
    }
}

/// The peers of `wanted` (names of other dimensions are left out) that are
/// installed; one named but missing is an error, with `auto` it is reported
/// as not run, with why.
pub fn peers(
    wanted: &[&str],
    auto: bool,
) -> Result<(Vec<Peer>, Vec<RunError>), crate::peers::PeersError> {
    let mut out = Vec::new();
    let mut not_run = Vec::new();
    for peer in [Peer::Podman, Peer::Skopeo] {
        if !wanted.contains(&peer.name()) {
            continue;
        }
        if found(peer.name()) {
            out.push(peer);
        } else if auto {
            not_run.push(error(
                peer.name(),
                format!(
                    "not run: {} is not installed (scripts/setup --peers installs it)",
                    peer.name()
                ),
            ));
        } else {
            return Err(crate::peers::PeersError::NotInstalled(peer.name().into()));
        }
    }
    Ok((out, not_run))
}

/// What the dimension runs.
pub struct DistributionPlan {
    /// The isola binary whose pull and push are timed (this one).
    pub isola: PathBuf,
    pub recipe: Recipe,
    /// Scratch: the stores, registries and directories of every run, all
    /// removed when the plan's owner removes it.
    pub work: PathBuf,
    pub peers: Vec<Peer>,
    pub runs: usize,
    pub warmup: usize,
}

impl DistributionPlan {
    fn has(&self, peer: Peer) -> bool {
        self.peers.contains(&peer)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    #[error("making the image")]
    Image(#[source] Box<ImageMakeError>),
    #[error(transparent)]
    Store(#[from] ImageError),
    #[error("the registry")]
    LocalRegistry(#[from] LocalRegistryError),
    #[error("filling the registry")]
    Registry(#[from] RegistryError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

/// The figures, the subjects they name, and what could not run.
pub struct Outcome {
    pub distribution: Option<Distribution>,
    pub subjects: Vec<Subject>,
    pub errors: Vec<RunError>,
}

fn error(subject: &str, message: String) -> RunError {
    RunError {
        subject: subject.into(),
        dimension: "distribution".into(),
        message,
    }
}

/// Make the image, fill a registry with it, then time every subject.
pub fn run(plan: &DistributionPlan, progress: &mut dyn FnMut(&str)) -> Outcome {
    // Dropped last: a signal meanwhile stops the runs, the registries are
    // stopped, and then the signal takes its course.
    let _interrupt = interrupt::Guard::install();
    let mut errors = Vec::new();
    let set_up = match SetUp::new(plan, progress) {
        Ok(s) => s,
        Err(e) => {
            errors.push(error("isola", chain(&e)));
            return Outcome {
                distribution: None,
                subjects: Vec::new(),
                errors,
            };
        }
    };
    let mut subjects = vec![
        subject("isola", "isola", "isola"),
        subject(
            "isola-fetch",
            "isola, its fetch part (--fetch-only)",
            "isola",
        ),
    ];
    let mut pull_kinds = vec![Kind::IsolaPull];
    let mut fetch_kinds = vec![Kind::IsolaFetch];
    let mut push_kinds = vec![Kind::IsolaPush];
    if plan.has(Peer::Podman) {
        subjects.push(subject(
            "podman",
            &format!("podman {}", podman::version("podman")),
            "peer",
        ));
        pull_kinds.push(Kind::PodmanPull);
    }
    if plan.has(Peer::Skopeo) {
        match &set_up.layout_error {
            None => {
                subjects.push(subject(
                    "skopeo",
                    &format!("skopeo {}", skopeo_version()),
                    "peer",
                ));
                fetch_kinds.push(Kind::SkopeoFetch);
                push_kinds.push(Kind::SkopeoPush);
            }
            Some(e) => errors.push(error("skopeo", e.clone())),
        }
    }
    let kinds: Vec<Kind> = pull_kinds.into_iter().chain(fetch_kinds).collect();
    let runs = plan.work.join("runs");
    let timed = |kinds: &[Kind], what: &str, progress: &mut dyn FnMut(&str)| {
        transfer::measure(kinds, &set_up.sources, &runs, plan.runs, plan.warmup, |n| {
            progress(&format!("distribution, {what}: run {n}/{}", plan.runs))
        })
    };
    let pulled = timed(&kinds, "pull", progress);
    let pushed = timed(&push_kinds, "push", progress);
    for r in pulled.iter().chain(&pushed) {
        if let Some(e) = &r.error {
            errors.push(error(&r.name, e.clone()));
        }
    }
    if interrupt::interrupted() {
        errors.push(error(
            "isola",
            "interrupted by a signal: the runs stopped, what they started was stopped".into(),
        ));
    }
    let bytes = set_up.image.compressed_bytes;
    let pull = series(&kinds, &pulled, bytes);
    let push = series(&push_kinds, &pushed, bytes);
    let goals = goals(&pull, &push);
    Outcome {
        distribution: Some(Distribution {
            isola: crate::lifecycle::build(&plan.isola),
            image: set_up.image.clone(),
            pull,
            push,
            on_base: Some(set_up.on_base.clone()),
            goals,
        }),
        subjects,
        errors,
    }
}

fn subject(id: &str, label: &str, kind: &str) -> Subject {
    Subject {
        id: id.into(),
        label: label.into(),
        kind: kind.into(),
        emulated: false,
    }
}

/// Everything the runs need, made before the first: the image, the
/// registry it is served from, the store and layout pushes start from.
struct SetUp {
    sources: Sources,
    image: DistributionImage,
    on_base: PullOnBase,
    /// Why skopeo has no layout to push from, if it has none.
    layout_error: Option<String>,
    /// Stopped when the set-up is dropped, after the runs.
    _registry: LocalRegistry,
    /// podman's run roots, removed with the set-up.
    _runroots: tempfile::TempDir,
}

impl SetUp {
    fn new(
        plan: &DistributionPlan,
        progress: &mut dyn FnMut(&str),
    ) -> Result<SetUp, DistributionError> {
        progress("distribution: making the image");
        let made = ImageStore::open(Root::new(plan.work.join("made")))?;
        plan.recipe
            .make(&made, progress)
            .map_err(|e| DistributionError::Image(Box::new(e)))?;
        progress("distribution: starting a registry and filling it");
        let registry = LocalRegistry::start(&plan.work.join("registry"))?;
        // Layers a registry holds are compressed: the synthetic image's
        // (plain tars, as isola derives images) are gzipped on the way.
        for tag in [BASE_TAG, FULL_TAG] {
            let name = format!("{REPOSITORY}:{tag}");
            copy::push(&made, &name, &registry.host, &name, Some(Compression::Gzip))?;
        }
        // The store isola pushes from: the base pulled, then the image,
        // which fetches only what the base lacks.
        let store = ImageStore::open(Root::new(plan.work.join("source")))?;
        let base = format!("{REPOSITORY}:{BASE_TAG}");
        let full = format!("{REPOSITORY}:{FULL_TAG}");
        let on_base = copy::pull_on_base(&store, &registry.host, &base, &full)?;
        let stored = store.get(&format!("{}/{full}", registry.host))?;
        let image = DistributionImage {
            label: plan.recipe.label(),
            layers: stored.manifest.layers().len(),
            compressed_bytes: stored.manifest.layers().iter().map(|l| l.size()).sum(),
            unpacked_bytes: image::unpacked_bytes(&store, &stored),
        };
        let layout = plan.work.join("layout");
        let layout_error = if plan.has(Peer::Skopeo) {
            skopeo_layout(&registry.host, &full, &layout).err()
        } else {
            None
        };
        let podman_env =
            podman_env(&plan.work.join("podman")).map_err(|source| DistributionError::Io {
                what: "writing podman's configuration".into(),
                source,
            })?;
        let runroots = tempfile::Builder::new()
            .prefix("isola-bench-")
            .tempdir()
            .map_err(|source| DistributionError::Io {
                what: "creating a directory for podman's run roots".into(),
                source,
            })?;
        Ok(SetUp {
            sources: Sources {
                isola: plan.isola.clone(),
                host: registry.host.clone(),
                image: full,
                manifest: stored.digest.to_string(),
                config_hex: stored.config_digest.digest().to_string(),
                store: store.root().dir().to_path_buf(),
                layout,
                podman_env,
                podman_runroots: runroots.path().to_path_buf(),
            },
            image,
            on_base,
            layout_error,
            _registry: registry,
            _runroots: runroots,
        })
    }
}

/// The image copied from the registry into an OCI layout (tag `full`), the
/// blobs as the registry has them: what skopeo pushes from.
fn skopeo_layout(host: &str, image: &str, layout: &Path) -> Result<(), String> {
    let out = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/{image}"))
        .arg(format!("oci:{}:full", layout.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running skopeo: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "copying the image into an OCI layout for skopeo to push: {}",
        crate::sandbox::error_line(&out.stderr, out.status)
    ))
}

/// podman with a configuration of the benchmark's own (lifecycle's
/// containers.conf: file locks, events in a file, everything under `dir`)
/// and overlay storage, as podman stores images by default; each run
/// names its own `--root` and `--runroot`.
fn podman_env(dir: &Path) -> io::Result<Vec<(String, String)>> {
    fs::create_dir_all(dir)?;
    let conf = dir.join("containers.conf");
    let storage = dir.join("storage.conf");
    fs::write(&conf, podman::containers_conf(dir))?;
    fs::write(
        &storage,
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.join("storage").display(),
            dir.join("run").display()
        ),
    )?;
    Ok(vec![
        ("CONTAINERS_CONF".into(), conf.display().to_string()),
        (
            "CONTAINERS_STORAGE_CONF".into(),
            storage.display().to_string(),
        ),
    ])
}

fn skopeo_version() -> String {
    podman::version("skopeo")
}

/// The series that ran, with MiB/s of the image's compressed bytes and
/// the paired ratios of [`PAIRS`] (each both ways).
fn series(kinds: &[Kind], results: &[startup::Result], bytes: u64) -> Vec<TransferSeries> {
    kinds
        .iter()
        .zip(results)
        .filter_map(|(k, r)| {
            let s = r.summary()?;
            let paired = results
                .iter()
                .filter(|o| !o.ms.is_empty())
                .filter(|o| {
                    PAIRS
                        .iter()
                        .any(|&(a, b)| (a == r.name && b == o.name) || (b == r.name && a == o.name))
                })
                .filter_map(|o| Some((o.name.clone(), startup::paired_ratio(r, o)?)))
                .collect();
            Some(TransferSeries {
                subject: r.name.clone(),
                command: k.command().to_string(),
                ms: r.ms.clone(),
                cpu_ms: r.cpu_ms.clone(),
                summary: Summary {
                    min: s.min,
                    median: s.median,
                    p90: s.p90,
                    max: s.max,
                },
                cpu_median_ms: startup::median(&r.cpu_ms).unwrap_or(f64::NAN),
                mib_per_s: bytes as f64 / (1024.0 * 1024.0) / (s.median / 1e3),
                paired,
            })
        })
        .collect()
}

/// The registry issue's goals against what was measured.
fn goals(pull: &[TransferSeries], push: &[TransferSeries]) -> Vec<Goal> {
    let paired = |series: &[TransferSeries], a: &str, b: &str| {
        series
            .iter()
            .find(|s| s.subject == a)
            .and_then(|s| s.paired.iter().find(|(o, _)| o == b))
            .map(|(_, r)| *r)
    };
    [
        (
            "pull_vs_podman",
            "isola pull against podman pull (paired)",
            0.6,
            paired(pull, "isola", "podman"),
        ),
        (
            "fetch_vs_skopeo",
            "isola pull's fetch part (--fetch-only) against skopeo copy to an OCI layout (paired)",
            1.2,
            paired(pull, "isola-fetch", "skopeo"),
        ),
        (
            "push_vs_skopeo",
            "isola push against skopeo copy from an OCI layout (paired)",
            1.2,
            paired(push, "isola", "skopeo"),
        ),
    ]
    .into_iter()
    .map(|(key, label, limit, value)| Goal::at_most(key, label, limit, "x", value))
    .collect()
}

/// The default cache of the Debian image: `target/bench-images` under the
/// working directory (the project's, as `make` runs from).
pub fn default_cache() -> PathBuf {
    PathBuf::from("target/bench-images")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, ms: &[f64]) -> startup::Result {
        startup::Result {
            name: name.into(),
            ms: ms.to_vec(),
            cpu_ms: ms.iter().map(|m| m / 2.0).collect(),
            peak_rss_kib: None,
            error: None,
        }
    }

    #[test]
    fn series_pair_isola_with_its_peers_only_and_goals_read_them() {
        let kinds = [
            Kind::IsolaPull,
            Kind::PodmanPull,
            Kind::IsolaFetch,
            Kind::SkopeoFetch,
        ];
        let results = [
            result("isola", &[1000.0, 1200.0, 1100.0]),
            result("podman", &[3000.0, 2000.0, 2200.0]),
            result("isola-fetch", &[100.0, 100.0, 100.0]),
            result("skopeo", &[300.0, 200.0, 400.0]),
        ];
        let s = series(&kinds, &results, 100 << 20);
        let find = |id: &str| s.iter().find(|s| s.subject == id).unwrap();
        let names = |id: &str| {
            find(id)
                .paired
                .iter()
                .map(|(o, _)| o.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("isola"), ["podman", "skopeo"]);
        assert_eq!(names("isola-fetch"), ["skopeo"]);
        assert_eq!(names("podman"), ["isola"]);
        assert_eq!(names("skopeo"), ["isola", "isola-fetch"]);
        assert_eq!(find("isola").paired[0].1, 0.5);
        assert_eq!(find("isola").summary.median, 1100.0);
        assert_eq!(find("isola").cpu_median_ms, 550.0);
        assert!((find("isola").mib_per_s - 100.0 / 1.1).abs() < 1e-9);
        assert_eq!(find("skopeo").command, "skopeo copy docker://... oci:DIR");

        let push = series(
            &[Kind::IsolaPush, Kind::SkopeoPush],
            &[result("isola", &[300.0]), result("skopeo", &[200.0])],
            1,
        );
        let g = goals(&s, &push);
        let met: Vec<(&str, Option<bool>)> = g.iter().map(|g| (g.key.as_str(), g.met)).collect();
        assert_eq!(
            met,
            [
                ("pull_vs_podman", Some(true)),
                ("fetch_vs_skopeo", Some(true)),
                ("push_vs_skopeo", Some(false)),
            ]
        );
        assert!(goals(&[], &[]).iter().all(|g| g.met.is_none()));
    }

    #[test]
    fn a_peer_asked_for_by_name_must_be_there() {
        let (found_peers, not_run) = peers(&["floor", "podman", "skopeo"], true).unwrap();
        assert_eq!(found_peers.len() + not_run.len(), 2);
        assert!(not_run
            .iter()
            .all(|e| e.message.contains("scripts/setup --peers")));
        let (none, not_run) = peers(&["floor", "runc"], false).unwrap();
        assert!(none.is_empty() && not_run.is_empty());
    }
}
