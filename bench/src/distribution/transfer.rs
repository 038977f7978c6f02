//! The timed runs: each subject's command into a destination of its own,
//! made fresh for the run and outside the timed part (an empty store or
//! directory, or a registry just started), the subjects taking turns run by
//! run (A B C D A B C D ...). Every destination is kept until the end of
//! the dimension: removing a tree of thousands of files just before the
//! next run would slow that run's file creation on ext4 (docs/benchmarks.md,
//! "Layer unpack throughput"). But its pages leave the page cache once
//! written back: on a VM host, page cache in memory the guest never used
//! costs a fault in the hypervisor per page, several times the cost of
//! reusing freed memory, and a run would pay for the runs before it
//! (docs/benchmarks.md, "Distribution"). Dirty pages are written back
//! (`sync`) before each run too, so none pays for the one before.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::registry::{LocalRegistry, LocalRegistryError};
use crate::interrupt;
use crate::sandbox::{error_line, spawn_error, SandboxError};
use crate::startup::{self, children_cpu_ms};
use isola_core::chain::chain;

/// What every run needs to know about the images and their sources.
pub struct Sources {
    pub isola: PathBuf,
    /// The source registry's `HOST:PORT`, and the image's repository:tag.
    pub host: String,
    pub image: String,
    /// Its manifest's digest (`sha256:...`), which isola prints, and its
    /// config's hex digest, podman's image ID.
    pub manifest: String,
    pub config_hex: String,
    /// The store isola pushes from (holding `host/image`).
    pub store: PathBuf,
    /// The OCI layout skopeo pushes from (tag `full`).
    pub layout: PathBuf,
    /// podman's environment (its containers.conf and storage.conf).
    pub podman_env: Vec<(String, String)>,
    /// Where podman's run roots go: a short path, since podman refuses one
    /// longer than 50 characters.
    pub podman_runroots: PathBuf,
}

/// The subjects, each a command a user would type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    IsolaPull,
    PodmanPull,
    IsolaFetch,
    SkopeoFetch,
    IsolaPush,
    SkopeoPush,
}

impl Kind {
    /// The subject id its series is recorded under.
    pub fn subject(self) -> &'static str {
        match self {
            Kind::IsolaPull | Kind::IsolaPush => "isola",
            Kind::IsolaFetch => "isola-fetch",
            Kind::PodmanPull => "podman",
            Kind::SkopeoFetch | Kind::SkopeoPush => "skopeo",
        }
    }

    /// What is timed, for the tables.
    pub fn command(self) -> &'static str {
        match self {
            Kind::IsolaPull => "isola pull",
            Kind::PodmanPull => "podman pull (overlay storage)",
            Kind::IsolaFetch => "isola pull --fetch-only",
            Kind::SkopeoFetch => "skopeo copy docker://... oci:DIR",
            Kind::IsolaPush => "isola push",
            Kind::SkopeoPush => "skopeo copy oci:DIR docker://...",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("making its destination {0}")]
    Destination(PathBuf, #[source] std::io::Error),
    #[error("starting the registry to push to")]
    Registry(#[from] LocalRegistryError),
    #[error(transparent)]
    Run(#[from] SandboxError),
    #[error("it printed {got:?} where {want} was expected")]
    Output { got: String, want: String },
}

/// One run made ready: the command, and what must live until it ends.
struct Ready {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// What its standard output must hold.
    expect: Option<String>,
    _registry: Option<LocalRegistry>,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

fn prepare(kind: Kind, src: &Sources, dir: &Path) -> Result<Ready, TransferError> {
    std::fs::create_dir_all(dir).map_err(|e| TransferError::Destination(dir.to_path_buf(), e))?;
    let from = format!("{}/{}", src.host, src.image);
    let isola = src.isola.display().to_string();
    let path = |name: &str| dir.join(name).display().to_string();
    let mut ready = Ready {
        argv: Vec::new(),
        env: Vec::new(),
        expect: None,
        _registry: None,
    };
    match kind {
        Kind::IsolaPull | Kind::IsolaFetch => {
            ready.argv = s(&[&isola, "--root", &path("root"), "pull", "-q"]);
            if kind == Kind::IsolaFetch {
                ready.argv.push("--fetch-only".into());
            }
            ready.argv.push(from);
            ready.expect = Some(src.manifest.clone());
        }
        Kind::PodmanPull => {
            ready.argv = s(&[
                "podman",
                "--root",
                &path("root"),
                "--runroot",
                &src.podman_runroots
                    .join(dir.file_name().unwrap_or_default())
                    .display()
                    .to_string(),
                "--storage-driver",
                "overlay",
                "pull",
                "-q",
                "--tls-verify=false",
                &from,
            ]);
            ready.env = src.podman_env.clone();
            ready.expect = Some(src.config_hex.clone());
        }
        Kind::SkopeoFetch => {
            ready.argv = s(&[
                "skopeo",
                "copy",
                "-q",
                "--src-tls-verify=false",
                &format!("docker://{from}"),
                &format!("oci:{}:full", path("layout")),
            ]);
        }
        Kind::IsolaPush | Kind::SkopeoPush => {
            let registry = LocalRegistry::start(&dir.join("registry"))?;
            let to = format!("{}/{}", registry.host, src.image);
            ready.argv = if kind == Kind::IsolaPush {
                ready.expect = Some(src.manifest.clone());
                s(&[
                    &isola,
                    "--root",
                    &src.store.display().to_string(),
                    "push",
                    "-q",
                    &from,
                    &to,
                ])
            } else {
                s(&[
                    "skopeo",
                    "copy",
                    "-q",
                    "--dest-tls-verify=false",
                    &format!("oci:{}:full", src.layout.display()),
                    &format!("docker://{to}"),
                ])
            };
            ready._registry = Some(registry);
        }
    }
    Ok(ready)
}

/// One run: wall time and the CPU time of all it waited for, ms; then
/// what it wrote written back and dropped from the page cache.
fn once(kind: Kind, src: &Sources, dir: &Path) -> Result<(f64, f64), TransferError> {
    let timed = timed(kind, src, dir);
    // SAFETY: sync has no arguments and cannot fail.
    unsafe { libc::sync() };
    drop_cached(dir);
    timed
}

/// Every regular file's pages under `dir` (not following symlinks) out of
/// the page cache; the files stay.
fn drop_cached(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            drop_cached(&e.path());
        } else if t.is_file() {
            let file: std::io::Result<File> = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(e.path());
            if let Ok(f) = file {
                // SAFETY: an advice on a descriptor we own; nothing is read.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            }
        }
    }
}

fn timed(kind: Kind, src: &Sources, dir: &Path) -> Result<(f64, f64), TransferError> {
    let ready = prepare(kind, src, dir)?;
    // SAFETY: sync has no arguments and cannot fail.
    unsafe { libc::sync() };
    let argv = &ready.argv;
    let cpu_before = children_cpu_ms();
    let t = Instant::now();
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(ready.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(spawn_error(argv))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let cpu = children_cpu_ms() - cpu_before;
    if !out.status.success() {
        return Err(SandboxError::Failed(error_line(&out.stderr, out.status)).into());
    }
    if let Some(want) = &ready.expect {
        let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !got.contains(want.as_str()) {
            return Err(TransferError::Output {
                got,
                want: want.clone(),
            });
        }
    }
    Ok((ms, cpu))
}

/// Each of `kinds` `warmup` times, then `runs` times, interleaved, each run
/// in a new directory under `work`. A subject whose run fails keeps its
/// error and runs no more; none runs once the benchmark was interrupted;
/// `progress` is told after each measured round.
pub fn measure(
    kinds: &[Kind],
    src: &Sources,
    work: &Path,
    runs: usize,
    warmup: usize,
    mut progress: impl FnMut(usize),
) -> Vec<startup::Result> {
    let mut results: Vec<startup::Result> = kinds
        .iter()
        .map(|k| startup::Result {
            name: k.subject().to_string(),
            ms: Vec::new(),
            cpu_ms: Vec::new(),
            peak_rss_kib: None,
            error: None,
        })
        .collect();
    for round in 0..warmup + runs {
        for (&kind, r) in kinds.iter().zip(results.iter_mut()) {
            if r.error.is_some() || interrupt::interrupted() {
                continue;
            }
            let dir = work.join(format!("{}-{round}", kind.subject()));
            match once(kind, src, &dir) {
                Ok((ms, cpu)) if round >= warmup => {
                    r.ms.push(ms);
                    r.cpu_ms.push(cpu);
                }
                Ok(_) => {}
                Err(e) => r.error = Some(chain(&e)),
            }
        }
        if interrupt::interrupted() {
            break;
        }
        if round >= warmup {
            progress(round - warmup + 1);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources {
            isola: "/bin/isola".into(),
            host: "127.0.0.1:5000".into(),
            image: "bench/dist:full".into(),
            manifest: "sha256:aa".into(),
            config_hex: "bb".into(),
            store: "/src".into(),
            layout: "/layout".into(),
            podman_env: vec![("CONTAINERS_CONF".into(), "/c".into())],
            podman_runroots: "/tmp/r".into(),
        }
    }

    #[test]
    fn pulls_go_into_a_fresh_directory_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("isola-0");
        let r = prepare(Kind::IsolaFetch, &sources(), &d).unwrap();
        assert!(d.is_dir());
        assert_eq!(
            r.argv[1..],
            [
                "--root",
                &d.join("root").display().to_string(),
                "pull",
                "-q",
                "--fetch-only",
                "127.0.0.1:5000/bench/dist:full"
            ]
        );
        assert_eq!(r.expect.as_deref(), Some("sha256:aa"));
        let r = prepare(Kind::PodmanPull, &sources(), &d).unwrap();
        assert!(r.argv.contains(&"--tls-verify=false".to_string()));
        assert!(r.argv.contains(&"/tmp/r/isola-0".to_string()));
        assert_eq!(r.env[0].0, "CONTAINERS_CONF");
        assert_eq!(r.expect.as_deref(), Some("bb"));
        let r = prepare(Kind::SkopeoFetch, &sources(), &d).unwrap();
        assert_eq!(
            r.argv.last().unwrap(),
            &format!("oci:{}:full", d.join("layout").display())
        );
    }

    /// How many of `path`'s pages are in the page cache (mincore).
    fn resident_pages(path: &Path) -> usize {
        let f = File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        // SAFETY: a private read-only mapping of a file we hold open, only
        // asked which of its pages are resident, then unmapped.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let mut v = vec![0u8; len.div_ceil(4096)];
            assert_eq!(libc::mincore(p, len, v.as_mut_ptr()), 0);
            libc::munmap(p, len);
            v.iter().filter(|b| **b & 1 == 1).count()
        }
    }

    #[test]
    fn a_run_s_files_stay_but_leave_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/layer");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, vec![1u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("a/link")).unwrap();
        // SAFETY: as in `once`.
        unsafe { libc::sync() };
        drop_cached(dir.path());
        // tmpfs keeps its pages: they are the files.
        let tmpfs = {
            let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: statfs fills the struct it is given from a valid path.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            unsafe { libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC }
        };
        if !tmpfs {
            assert_eq!(resident_pages(&file), 0);
        }
        assert_eq!(fs::metadata(&file).unwrap().len(), 1 << 20);
    }

    #[test]
    fn a_run_that_prints_something_else_fails_and_runs_no_more() {
        let dir = tempfile::tempdir().unwrap();
        // isola is `echo`: it prints its arguments, not the digest.
        let src = Sources {
            isola: "/bin/echo".into(),
            ..sources()
        };
        let r = measure(&[Kind::IsolaPull], &src, dir.path(), 2, 0, |_| {});
        let e = r[0].error.as_deref().unwrap();
        assert!(e.contains("where sha256:aa was expected"), "{e}");
        assert!(r[0].ms.is_empty());
        assert!(dir.path().join("isola-0").is_dir());
        assert!(!dir.path().join("isola-1").exists());
    }
}
