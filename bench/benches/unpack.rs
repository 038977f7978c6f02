//! Layer unpack throughput: isola's safe unpack against `tar -x` on the same
//! real directory tree, because importing a layer must cost about what tar does.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;

/// Trees that exist on a stock Debian 12 host, the first present one is used.
const CANDIDATES: &[&str] = &[
    "/usr/lib/python3.11",
    "/usr/share/perl/5.36",
    "/usr/lib/x86_64-linux-gnu/perl-base",
    "/usr/share/zoneinfo",
];

/// The same read buffer the image import puts in front of unpack.
const READ_BUFFER: usize = 256 * 1024;

struct Layer {
    /// Holds the tar and every extraction directory; removed on drop.
    work: TempDir,
    tar: PathBuf,
    size: u64,
}

fn build_layer() -> Layer {
    let src = CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("none of the layer source trees exists on this host: {CANDIDATES:?}"));
    // A candidate may be a symlink to its versioned directory (perl's 5.36).
    let src = src.canonicalize().expect("resolving the layer source tree");
    let work = tempfile::Builder::new()
        .prefix("isola-bench-unpack-")
        .tempdir()
        .expect("creating the bench work directory");
    let tar = work.path().join("layer.tar");
    let mut builder = tar::Builder::new(File::create(&tar).expect("creating the layer tar"));
    builder.follow_symlinks(false);
    builder.append_dir_all("", &src).expect("writing the layer tar");
    builder.into_inner().expect("finishing the layer tar");

    let size = std::fs::metadata(&tar).expect("sizing the layer tar").len();
    let entries = tar::Archive::new(File::open(&tar).expect("reopening the layer tar"))
        .entries()
        .expect("reading the layer tar")
        .count();
    eprintln!(
        "layer: {} as an uncompressed tar, {size} bytes ({:.1} MiB), {entries} entries",
        src.display(),
        size as f64 / (1024.0 * 1024.0),
    );
    Layer { work, tar, size }
}

fn fresh_dir(work: &Path) -> TempDir {
    tempfile::tempdir_in(work).expect("creating an extraction directory")
}

fn layer_unpack(c: &mut Criterion) {
    let layer = build_layer();
    let mut group = c.benchmark_group("layer_unpack");
    group
        .throughput(Throughput::Bytes(layer.size))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10));

    // Each routine returns its directory, so criterion drops (removes) it
    // outside the timed section.
    group.bench_function("isola_unpack", |b| {
        b.iter_batched(
            || fresh_dir(layer.work.path()),
            |dir| {
                let file = File::open(&layer.tar).expect("opening the layer tar");
                isola_core::image::unpack::unpack(BufReader::with_capacity(READ_BUFFER, file), dir.path())
                    .expect("isola unpack");
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("tar_x", |b| {
        b.iter_batched(
            || fresh_dir(layer.work.path()),
            |dir| {
                let status = Command::new("tar")
                    .arg("-xf")
                    .arg(&layer.tar)
                    .arg("-C")
                    .arg(dir.path())
                    .status()
                    .expect("running tar");
                assert!(status.success(), "tar -x failed: {status}");
                dir
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, layer_unpack);
criterion_main!(benches);
