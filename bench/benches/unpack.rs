//! Layer unpack throughput: isola's safe unpack against `tar -x` on the same
//! real directory tree, because importing a layer must cost about what tar does.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;

/// The same read buffer the image import puts in front of unpack.
const READ_BUFFER: usize = 256 * 1024;

struct Layer {
    /// Holds the tar and every extraction directory; removed on drop.
    work: TempDir,
    tar: PathBuf,
    size: u64,
}

fn build_layer() -> Layer {
    let src = isola_bench::corpus::source_tree();
    let work = tempfile::Builder::new()
        .prefix("isola-bench-unpack-")
        .tempdir()
        .expect("creating the bench work directory");
    let tar = work.path().join("layer.tar");
    let mut builder = tar::Builder::new(File::create(&tar).expect("creating the layer tar"));
    builder.follow_symlinks(false);
    builder
        .append_dir_all("", &src)
        .expect("writing the layer tar");
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

/// Time `iters` extractions by `timed` into fresh directories, each paired
/// with an untimed one by `other` (alternating which goes first), so that both
/// contenders meet the same filesystem state whichever criterion runs first.
/// Trees are kept until the group is done: on ext4 without a journal (as /tmp
/// is here) creating an inode first steps over every inode deleted in the last
/// minutes, so removing trees between runs would mostly measure that scan.
/// Dirty data is flushed before each sample so no run pays for another's writeback.
fn time_extractions(
    layer: &Layer,
    kept: &mut Vec<TempDir>,
    iters: u64,
    timed: fn(&Path, &Path),
    other: fn(&Path, &Path),
) -> Duration {
    let status = Command::new("sync").status().expect("running sync");
    assert!(status.success(), "sync failed: {status}");
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let mut extract = |timing: bool| {
            let dir =
                tempfile::tempdir_in(layer.work.path()).expect("creating an extraction directory");
            let start = Instant::now();
            if timing {
                timed(&layer.tar, dir.path());
                total += start.elapsed();
            } else {
                other(&layer.tar, dir.path());
            }
            kept.push(dir);
        };
        let timed_first = i % 2 == 0;
        extract(timed_first);
        extract(!timed_first);
    }
    total
}

fn isola_unpack(tar: &Path, dest: &Path) {
    let file = File::open(tar).expect("opening the layer tar");
    isola_core::image::unpack::unpack(BufReader::with_capacity(READ_BUFFER, file), dest)
        .expect("isola unpack");
}

fn tar_x(tar: &Path, dest: &Path) {
    let status = Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(dest)
        .status()
        .expect("running tar");
    assert!(status.success(), "tar -x failed: {status}");
}

fn layer_unpack(c: &mut Criterion) {
    let layer = build_layer();
    let mut kept = Vec::new();
    let mut group = c.benchmark_group("layer_unpack");
    // Every timed extraction leaves a ~50 MiB tree until the end, so the run
    // is bounded by the sample count: expect criterion to ask for more time.
    group
        .throughput(Throughput::Bytes(layer.size))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("isola_unpack", |b| {
        b.iter_custom(|iters| time_extractions(&layer, &mut kept, iters, isola_unpack, tar_x))
    });
    group.bench_function("tar_x", |b| {
        b.iter_custom(|iters| time_extractions(&layer, &mut kept, iters, tar_x, isola_unpack))
    });
    group.finish();
    eprintln!("removing {} extracted trees", kept.len());
}

criterion_group!(benches, layer_unpack);
criterion_main!(benches);
