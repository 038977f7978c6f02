//! The real directory tree the throughput benchmarks (layer unpack,
//! initramfs build) work on, so they measure the same files.

use std::path::{Path, PathBuf};

/// Trees that exist on a stock Debian 12 host; the first present one is used.
pub const CANDIDATES: &[&str] = &[
    "/usr/lib/python3.11",
    "/usr/share/perl/5.36",
    "/usr/lib/x86_64-linux-gnu/perl-base",
    "/usr/share/zoneinfo",
];

/// The first candidate present here, resolved (perl's 5.36 may be a
/// symlink to its versioned directory). Panics, naming the candidates, on a
/// host that has none: a benchmark cannot run without its input.
pub fn source_tree() -> PathBuf {
    let src = CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!("none of the layer source trees exists on this host: {CANDIDATES:?}")
        });
    src.canonicalize().expect("resolving the layer source tree")
}
