//! Workloads that stay in the process: integer arithmetic and memory
//! bandwidth, which virtualisation should barely touch.

use std::hint::black_box;
use std::io;
use std::time::Duration;

use super::measure;

/// Each buffer of `memcpy`: larger than common last-level caches, so the
/// copy measures memory rather than cache.
pub const COPY_MIB: usize = 16;

pub fn cpu(time: Duration) -> io::Result<(u64, f64)> {
    const BATCH: u64 = 1 << 16;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    measure(time, || {
        for _ in 0..BATCH {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        // Else the loop, whose result nothing reads, could be dropped.
        x = black_box(x);
        Ok(BATCH)
    })
}

pub fn memcpy(time: Duration) -> io::Result<(u64, f64)> {
    // Filled, not zeroed, so that every page is mapped before timing starts.
    let mut a = vec![0x5au8; COPY_MIB << 20];
    let mut b = vec![0xa5u8; COPY_MIB << 20];
    measure(time, || {
        b.copy_from_slice(black_box(&a));
        black_box(&mut b);
        std::mem::swap(&mut a, &mut b);
        Ok(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counts_whole_batches() {
        let (ops, _) = cpu(Duration::from_millis(5)).unwrap();
        assert!(ops > 0 && ops % (1 << 16) == 0);
    }
}
