//! Initramfs build throughput: isola's `write_rootfs` (the VM backend's guest
//! root filesystem, one newc archive streamed from the layer directories)
//! against GNU `cpio -o -H newc` of the same real directory tree, because
//! building a guest's root filesystem should cost about what cpio does.

use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;

/// The write buffer `isola_vm::guest::rootfs` puts in front of `write_rootfs`.
const WRITE_BUFFER: usize = 256 * 1024;

/// Size of the file that stands in for isola-init.
const FAKE_INIT_LEN: usize = 64 * 1024;

struct Input {
    /// Holds the fake init and the two archives; removed on drop.
    work: TempDir,
    /// The layer: a directory, used as it is.
    layer: PathBuf,
    init: PathBuf,
    /// Bytes of regular-file data in the layer.
    size: u64,
}

fn input() -> Input {
    let layer = isola_bench::corpus::source_tree();
    let work = tempfile::Builder::new()
        .prefix("isola-bench-initramfs-")
        .tempdir()
        .expect("creating the bench work directory");
    let init = work.path().join("init");
    fs::write(&init, vec![0x90u8; FAKE_INIT_LEN]).expect("writing the fake init");
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).expect("chmod the fake init");

    let (mut size, mut files, mut entries) = (0u64, 0u64, 0u64);
    let mut stack = vec![layer.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("reading the layer source tree") {
            let entry = entry.expect("reading the layer source tree");
            let meta = entry.metadata().expect("lstat in the layer source tree");
            entries += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                size += meta.len();
                files += 1;
            }
        }
    }
    eprintln!(
        "layer: {}, {entries} entries below its root, {files} regular files holding {size} bytes ({:.1} MiB)",
        layer.display(),
        size as f64 / (1024.0 * 1024.0),
    );

    Input {
        work,
        layer,
        init,
        size,
    }
}

/// Where each contender writes, and whether the timed one goes first in the
/// next pair.
struct Outputs {
    isola: PathBuf,
    cpio: PathBuf,
    timed_first: bool,
}

impl Outputs {
    /// One build of each, untimed: it lays out both files, reports what the
    /// contenders write, and fails early if either cannot run.
    fn new(input: &Input) -> Outputs {
        let outputs = Outputs {
            isola: input.work.path().join("isola.cpio"),
            cpio: input.work.path().join("cpio.cpio"),
            timed_first: true,
        };
        let stats = isola_write_rootfs(input, &outputs);
        eprintln!(
            "isola_write_rootfs: {} entries, {} bytes of archive",
            stats.entries, stats.bytes
        );
        cpio_o(input, &outputs);
        eprintln!("cpio_o: {} bytes of archive", outputs.lengths().1);
        outputs
    }

    fn lengths(&self) -> (u64, u64) {
        let len = |p: &Path| fs::metadata(p).expect("sizing an archive").len();
        (len(&self.isola), len(&self.cpio))
    }
}

/// Time `iters` builds by `timed`, each paired with an untimed build by
/// `other`, alternating which of the two goes first from one pair to the
/// next (across samples too), so that both contenders meet the same state
/// whichever criterion runs first.
///
/// Each contender overwrites its own archive in place, every build (opened
/// without `O_TRUNC`; the archive is the same length every time, so the file
/// keeps its blocks and its cached pages). Neither removing nor truncating
/// is cheap here: on this host's /tmp (ext4, no journal, mounted `discard`)
/// freeing a file's blocks issues their discards synchronously. Keeping every
/// archive is not neutral either: this host is a VM whose balloon reports
/// free guest memory to the hypervisor, and once the recently freed pages are
/// used up each new page of page cache costs a fault in the host, which more
/// than doubled isola's time after ~1.5 GiB of archives (docs/benchmarks.md).
/// Dirty data is flushed before each sample so no build pays for another's
/// writeback.
fn time_builds(
    input: &Input,
    outputs: &mut Outputs,
    iters: u64,
    timed: fn(&Input, &Outputs),
    other: fn(&Input, &Outputs),
) -> Duration {
    let status = Command::new("sync").status().expect("running sync");
    assert!(status.success(), "sync failed: {status}");
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let timed_first = outputs.timed_first;
        outputs.timed_first = !timed_first;
        let mut build = |timing: bool| {
            let start = Instant::now();
            if timing {
                timed(input, outputs);
                total += start.elapsed();
            } else {
                other(input, outputs);
            }
        };
        build(timed_first);
        build(!timed_first);
    }
    total
}

/// Open `path` for writing from its start, without truncating it.
fn overwrite(path: &Path) -> File {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("opening the archive")
}

/// What `isola_vm::guest::rootfs` does to build a missing archive, less its
/// SHA-256 of init (for the cache's file name), `sync_data` and rename, and
/// writing over the last archive rather than into a new file.
fn isola_write_rootfs(input: &Input, outputs: &Outputs) -> isola_vm::guest::ArchiveStats {
    isola_vm::guest::write_rootfs(
        std::slice::from_ref(&input.layer),
        &input.init,
        BufWriter::with_capacity(WRITE_BUFFER, overwrite(&outputs.isola)),
    )
    .expect("isola write_rootfs")
}

fn isola_build(input: &Input, outputs: &Outputs) {
    isola_write_rootfs(input, outputs);
}

/// `cd LAYER && find . -print0 | LC_ALL=C sort -z | cpio -o -H newc --null --quiet 1<>OUT`,
/// the three processes started directly (no shell), cpio's standard output
/// being the archive opened as `overwrite` does.
fn cpio_o(input: &Input, outputs: &Outputs) {
    let mut find = Command::new("find")
        .args([".", "-print0"])
        .current_dir(&input.layer)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running find");
    let mut sort = Command::new("sort")
        .arg("-z")
        .env("LC_ALL", "C")
        .stdin(find.stdout.take().expect("find's stdout"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("running sort");
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--null", "--quiet"])
        .current_dir(&input.layer)
        .stdin(sort.stdout.take().expect("sort's stdout"))
        .stdout(overwrite(&outputs.cpio))
        .spawn()
        .expect("running cpio");
    for (name, child) in [
        ("find", &mut find),
        ("sort", &mut sort),
        ("cpio", &mut cpio),
    ] {
        let status = child.wait().expect("waiting for the pipeline");
        assert!(status.success(), "{name} failed: {status}");
    }
}

fn initramfs_build(c: &mut Criterion) {
    let input = input();
    let mut outputs = Outputs::new(&input);
    let lengths = outputs.lengths();
    let mut group = c.benchmark_group("initramfs_build");
    // A build takes tens of milliseconds (isola) to ~150 (cpio), twice per
    // iteration: the run is bounded by the sample count, so expect criterion
    // to ask for more time.
    group
        .throughput(Throughput::Bytes(input.size))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    group.bench_function("isola_write_rootfs", |b| {
        b.iter_custom(|iters| time_builds(&input, &mut outputs, iters, isola_build, cpio_o))
    });
    group.bench_function("cpio_o", |b| {
        b.iter_custom(|iters| time_builds(&input, &mut outputs, iters, cpio_o, isola_build))
    });
    group.finish();
    // Both archives are the same length every time, so overwriting left no
    // stale tail behind.
    assert_eq!(outputs.lengths(), lengths, "an archive changed length");
}

criterion_group!(benches, initramfs_build);
criterion_main!(benches);
