//! The image the distribution dimension moves, made in a store of its own:
//! Debian bookworm minbase from mmdebstrap, with a second layer adding a
//! few packages, built once and cached as an OCI layout (a few minutes);
//! or, without mmdebstrap (and with `--quick`), a synthetic image: the
//! default image and layers of generated files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use isola_core::image::default_image::{self, DefaultImageError};
use isola_core::image::derive::{self, NewFile};
use isola_core::image::{digest, ImageError, ImageStore, ImportOptions};

/// The names the two images have in the store they are made in, and the
/// repository they are pushed to.
pub const REPOSITORY: &str = "bench/dist";
pub const BASE_TAG: &str = "base";
pub const FULL_TAG: &str = "full";

/// The Debian recipe; any change makes a new cache entry.
const SUITE: &str = "bookworm";
const PACKAGES: &str = "ca-certificates,curl,procps,less";
/// Every file's time clamped to this (mmdebstrap honours it), so the files
/// the two trees share are alike and the second layer holds only the change.
const EPOCH: &str = "1700000000";
const RECIPE: u32 = 1;

/// Which image to make.
#[derive(Debug, Clone)]
pub enum Recipe {
    /// Debian bookworm minbase (its base) and the same with [`PACKAGES`],
    /// cached under `cache`.
    Debian { cache: PathBuf },
    /// The default image (its base), then two layers of generated files
    /// of `mib` MiB and a quarter of that.
    Synthetic { mib: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum ImageMakeError {
    #[error(transparent)]
    Store(#[from] ImageError),
    #[error(transparent)]
    DefaultImage(#[from] DefaultImageError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{command} failed: {line} (its output is in {log})")]
    Step {
        command: String,
        line: String,
        log: PathBuf,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImageMakeError {
    let what = what.into();
    move |source| ImageMakeError::Io { what, source }
}

impl Recipe {
    /// What the image is, for the tables.
    pub fn label(&self) -> String {
        match self {
            Recipe::Debian { .. } => format!(
                "Debian {SUITE} minbase (mmdebstrap), then + {}",
                PACKAGES.replace(',', " ")
            ),
            Recipe::Synthetic { mib } => format!(
                "synthetic: the default image, then {mib} MiB and {} MiB of generated files",
                quarter(*mib)
            ),
        }
    }

    /// Make both images in `store`, named `REPOSITORY:BASE_TAG` and
    /// `REPOSITORY:FULL_TAG`; `say` is told of a long step.
    pub fn make(
        &self,
        store: &ImageStore,
        say: &mut dyn FnMut(&str),
    ) -> Result<(), ImageMakeError> {
        let base = format!("{REPOSITORY}:{BASE_TAG}");
        let full = format!("{REPOSITORY}:{FULL_TAG}");
        match self {
            Recipe::Debian { cache } => {
                let layout = debian_layout(cache, say)?;
                for (name, tag) in [(&base, BASE_TAG), (&full, FULL_TAG)] {
                    let opts = ImportOptions {
                        name: Some(name.clone()),
                        reference: Some(tag.to_string()),
                        ..ImportOptions::default()
                    };
                    store.import(&layout, &opts)?;
                }
            }
            Recipe::Synthetic { mib } => {
                default_image::build(store)?;
                store.tag(default_image::NAME, &base)?;
                let first = derive::add_layer(
                    store,
                    &store.get(&base)?,
                    &format!("{REPOSITORY}:middle"),
                    &generated("opt/data", *mib << 20, 1),
                    "COPY data /opt/data",
                )?;
                let middle = store.get(&first.name.to_string())?;
                derive::add_layer(
                    store,
                    &middle,
                    &full,
                    &generated("opt/more", quarter(*mib) << 20, 2),
                    "COPY more /opt/more",
                )?;
            }
        }
        Ok(())
    }
}

fn quarter(mib: u64) -> u64 {
    (mib / 4).max(1)
}

/// Where the Debian layout is cached: the recipe's own directory.
pub fn debian_dir(cache: &Path) -> PathBuf {
    let recipe = format!("{RECIPE} {SUITE} minbase {PACKAGES} {EPOCH}");
    let d = digest::of_bytes(recipe.as_bytes());
    cache.join(format!("debian-{SUITE}-minbase-{}", &d.digest()[..12]))
}

/// The cached OCI layout (tags `base` and `full`), built first if missing.
fn debian_layout(cache: &Path, say: &mut dyn FnMut(&str)) -> Result<PathBuf, ImageMakeError> {
    let dir = debian_dir(cache);
    let layout = dir.join("oci");
    if layout.join("index.json").is_file() {
        return Ok(layout);
    }
    say(&format!(
        "distribution: building the Debian {SUITE} image with mmdebstrap and umoci (a few minutes, once; cached in {})",
        dir.display()
    ));
    let partial = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial).map_err(io_err(format!("creating {}", partial.display())))?;
    let log = partial.join("build.log");
    let step = |argv: &[&str]| run_step(argv, &log);
    let p = |name: &str| partial.join(name).display().to_string();
    let (base_tar, full_tar, oci, bundle) = (p("base.tar"), p("full.tar"), p("oci"), p("bundle"));
    let include = format!("--include={PACKAGES}");
    step(&[
        "mmdebstrap",
        "--variant=minbase",
        "--skip=output/dev",
        "--format=tar",
        SUITE,
        &base_tar,
    ])?;
    step(&[
        "mmdebstrap",
        "--variant=minbase",
        "--skip=output/dev",
        &include,
        "--format=tar",
        SUITE,
        &full_tar,
    ])?;
    let (oci_base, oci_full) = (format!("{oci}:{BASE_TAG}"), format!("{oci}:{FULL_TAG}"));
    step(&["umoci", "init", "--layout", &oci])?;
    step(&["umoci", "new", "--image", &oci_base])?;
    // The base: its tree in an unpacked bundle, repacked as a layer.
    step(&["umoci", "unpack", "--image", &oci_base, &bundle])?;
    let rootfs = format!("{bundle}/rootfs");
    let untar = |tar: &str| {
        step(&[
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            tar,
            "-C",
            &rootfs,
        ])
    };
    untar(&base_tar)?;
    step(&["umoci", "repack", "--image", &oci_base, &bundle])?;
    fs::remove_dir_all(&bundle).map_err(io_err(format!("removing {bundle}")))?;
    // The second layer: the base unpacked, its tree replaced by the one
    // with the packages; umoci repacks what differs.
    step(&["umoci", "unpack", "--image", &oci_base, &bundle])?;
    empty_dir(Path::new(&rootfs))?;
    untar(&full_tar)?;
    step(&["umoci", "repack", "--image", &oci_full, &bundle])?;
    step(&["umoci", "gc", "--layout", &oci])?;
    for tmp in [&bundle, &base_tar, &full_tar] {
        let _ = fs::remove_dir_all(tmp).or_else(|_| fs::remove_file(tmp));
    }
    fs::rename(&partial, &dir)
        .map_err(io_err(format!("moving the image into {}", dir.display())))?;
    Ok(layout)
}

/// Run one step of the build, its output appended to `log`.
fn run_step(argv: &[&str], log: &Path) -> Result<(), ImageMakeError> {
    let command = argv[..2.min(argv.len())].join(" ");
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(format!("opening {}", log.display())))?;
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(io_err("opening the build log"))?)
        .stderr(out)
        .status()
        .map_err(io_err(format!("running {}", argv[0])))?;
    if status.success() {
        return Ok(());
    }
    let text = fs::read_to_string(log).unwrap_or_default();
    Err(ImageMakeError::Step {
        command,
        line: text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_string(),
        log: log.to_path_buf(),
    })
}

fn empty_dir(dir: &Path) -> Result<(), ImageMakeError> {
    for e in fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
        let path = e
            .map_err(io_err(format!("reading {}", dir.display())))?
            .path();
        let removed = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err(format!("removing {}", path.display())))?;
    }
    Ok(())
}

/// `bytes` of files under `dir`, 256 KiB each, half of each random and
/// half text, so that gzip takes them to about 60%, near what it does to
/// binaries; the same `seed` gives the same files.
fn generated(dir: &str, bytes: u64, seed: u64) -> Vec<NewFile> {
    const FILE: usize = 256 << 10;
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let text = b"the quick brown fox jumps over the lazy dog 0123456789\n";
    (0..bytes.div_ceil(FILE as u64))
        .map(|i| {
            let mut data = vec![0u8; FILE];
            let (random, plain) = data.split_at_mut(FILE / 2);
            rng.fill(random);
            for (j, b) in plain.iter_mut().enumerate() {
                *b = text[(j + i as usize) % text.len()];
            }
            NewFile {
                path: format!("{dir}/{i:05}.bin"),
                mode: 0o644,
                data,
            }
        })
        .collect()
}

struct XorShift(u64);

impl XorShift {
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// The program missing to build the Debian image with, if one is.
pub fn can_build_debian() -> Option<&'static str> {
    ["mmdebstrap", "umoci", "tar"]
        .into_iter()
        .find(|p| !crate::peers::found(p))
}

/// The content of the files `image`'s layers hold, as the store counted
/// them when it unpacked them.
pub fn unpacked_bytes(store: &ImageStore, image: &isola_core::image::Image) -> u64 {
    store
        .layers(image)
        .iter()
        .filter_map(|l| l.meta.as_ref())
        .map(|m| m.content_bytes)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_the_size_asked_and_the_same_for_a_seed() {
        let a = generated("opt/x", 600 << 10, 1);
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|f| f.data.len() == 256 << 10));
        assert_eq!(a[2].path, "opt/x/00002.bin");
        let b = generated("opt/x", 600 << 10, 1);
        assert!(a.iter().zip(&b).all(|(a, b)| a.data == b.data));
        let c = generated("opt/x", 600 << 10, 2);
        assert_ne!(a[0].data, c[0].data);
    }

    #[test]
    fn the_debian_cache_is_keyed_by_the_recipe() {
        let d = debian_dir(Path::new("/cache"));
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("debian-bookworm-minbase-"), "{name}");
        assert_eq!(name.len(), "debian-bookworm-minbase-".len() + 12);
        assert_eq!(d, debian_dir(Path::new("/cache")));
    }

    #[test]
    fn a_synthetic_image_has_its_base_and_two_more_layers() {
        if !isola_test_support::tool("busybox") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(isola_core::Root::new(dir.path())).unwrap();
        Recipe::Synthetic { mib: 1 }
            .make(&store, &mut |_| {})
            .unwrap();
        let base = store.get(&format!("{REPOSITORY}:{BASE_TAG}")).unwrap();
        let full = store.get(&format!("{REPOSITORY}:{FULL_TAG}")).unwrap();
        assert_eq!(
            full.manifest.layers().len(),
            base.manifest.layers().len() + 2
        );
        assert_eq!(full.manifest.layers()[0], base.manifest.layers()[0]);
        assert!(unpacked_bytes(&store, &full) >= (1 << 20) + (1 << 20));
    }
}
