//! Startup: start-to-exit wall time of `/bin/true` in the default image, for
//! isola and for the peers installed here (the kernel floor of `unshare` +
//! `chroot`, runc, crun), run interleaved (A B C A B C ...) so drift on a
//! noisy machine hits all alike. Each run is a whole process, as a user
//! starts it. Peak RSS is measured apart, under GNU time: a process forked
//! from this (large) one would carry our own resident set into its
//! ru_maxrss, a fork of the small `time` does not.

use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::sandbox::{spawn_error, SandboxError};
use isola_core::chain::chain;

/// One way of starting a sandbox: a command line run to completion.
#[derive(Debug, Clone)]
pub struct Contender {
    pub name: String,
    pub argv: Vec<String>,
    /// The exit status of a run that worked (QEMU's isa-debug-exit turns
    /// the guest's 0 into 1).
    pub success: i32,
}

impl Contender {
    pub fn new(name: impl Into<String>, argv: Vec<String>) -> Self {
        Contender {
            name: name.into(),
            argv,
            success: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Result {
    pub name: String,
    /// Wall time of each run, milliseconds, in run order.
    pub ms: Vec<f64>,
    /// CPU time (user + system) of each run and what it waited for,
    /// milliseconds, in run order.
    pub cpu_ms: Vec<f64>,
    /// Median peak resident set of the started process and what it waited
    /// for, KiB (`None` without GNU time).
    pub peak_rss_kib: Option<u64>,
    /// Why it could not run (its own error line), if it could not.
    pub error: Option<String>,
}

impl Result {
    pub fn summary(&self) -> Option<Summary> {
        if self.ms.is_empty() {
            return None;
        }
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Summary {
            min: sorted[0],
            median: pick(0.5),
            p90: pick(0.9),
            max: sorted[sorted.len() - 1],
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

/// Run each contender `warmup` times, then `runs` times interleaved, then
/// measure the peak RSS of those that worked. A contender whose first run
/// fails is dropped with its error; `progress` is called after each round.
pub fn measure(
    contenders: &[Contender],
    runs: usize,
    warmup: usize,
    progress: impl FnMut(usize),
) -> Vec<Result> {
    let mut results = measure_times(contenders, runs, warmup, progress);
    for (c, r) in contenders
        .iter()
        .zip(results.iter_mut())
        .filter(|(_, r)| r.error.is_none())
    {
        r.peak_rss_kib = peak_rss(&c.argv, 5);
    }
    results
}

/// [`measure`] without the peak RSS runs: times only.
pub fn measure_times(
    contenders: &[Contender],
    runs: usize,
    warmup: usize,
    mut progress: impl FnMut(usize),
) -> Vec<Result> {
    let mut results: Vec<Result> = contenders
        .iter()
        .map(|c| Result {
            name: c.name.clone(),
            ms: Vec::new(),
            cpu_ms: Vec::new(),
            peak_rss_kib: None,
            error: None,
        })
        .collect();
    for round in 0..warmup + runs {
        for (c, r) in contenders.iter().zip(results.iter_mut()) {
            if r.error.is_some() {
                continue;
            }
            match run_once(c) {
                Ok((ms, cpu)) if round >= warmup => {
                    r.ms.push(ms);
                    r.cpu_ms.push(cpu);
                }
                Ok(_) => {}
                Err(e) => r.error = Some(chain(&e)),
            }
        }
        if round >= warmup {
            progress(round - warmup + 1);
        }
    }
    results
}

/// Median over `n` runs of GNU time's %M (peak RSS, KiB).
fn peak_rss(argv: &[String], n: usize) -> Option<u64> {
    let mut all: Vec<u64> = (0..n)
        .filter_map(|_| {
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M"])
                .args(argv)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()?
                .trim()
                .parse()
                .ok()
        })
        .collect();
    all.sort_unstable();
    all.get(all.len() / 2).copied()
}

/// Median of the run-by-run ratios `a[i] / b[i]` (runs are paired).
pub fn paired_ratio(a: &Result, b: &Result) -> Option<f64> {
    let mut r: Vec<f64> = a.ms.iter().zip(&b.ms).map(|(x, y)| x / y).collect();
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    Some(r[r.len() / 2])
}

/// Median of `values`, for a column of per-run figures.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// One run: its wall time and the CPU time of everything it waited for.
fn run_once(c: &Contender) -> std::result::Result<(f64, f64), SandboxError> {
    let argv = &c.argv;
    let cpu_before = children_cpu_ms();
    let t = Instant::now();
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(spawn_error(argv))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let cpu = children_cpu_ms() - cpu_before;
    if out.status.code() != Some(c.success) {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(SandboxError::Failed(
            err.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("exited non-zero")
                .to_string(),
        ));
    }
    Ok((ms, cpu))
}

/// User + system time of all waited-for children so far, milliseconds:
/// runs are one at a time, so the difference around one is its own.
pub(crate) fn children_cpu_ms() -> f64 {
    // SAFETY: getrusage fills the struct it is given and nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_ratio() {
        let a = Result {
            name: "a".into(),
            ms: vec![4.0, 2.0, 6.0],
            cpu_ms: vec![],
            peak_rss_kib: None,
            error: None,
        };
        let b = Result {
            name: "b".into(),
            ms: vec![2.0, 2.0, 2.0],
            cpu_ms: vec![],
            peak_rss_kib: None,
            error: None,
        };
        let s = a.summary().unwrap();
        assert_eq!((s.min, s.median, s.max), (2.0, 4.0, 6.0));
        assert_eq!(paired_ratio(&a, &b), Some(2.0));
    }

    #[test]
    fn a_failing_contender_keeps_its_error() {
        let c = Contender::new(
            "false",
            vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()],
        );
        let r = measure(&[c], 3, 0, |_| {});
        assert_eq!(r[0].error.as_deref(), Some("nope"));
        assert!(r[0].ms.is_empty());
    }

    #[test]
    fn the_expected_status_counts_as_success_and_cpu_time_is_measured() {
        // A busy loop of a few ms, exiting 1 as QEMU does for a guest's 0.
        let c = Contender {
            success: 1,
            ..Contender::new(
                "busy",
                vec![
                    "sh".into(),
                    "-c".into(),
                    "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 1".into(),
                ],
            )
        };
        let r = measure(&[c], 2, 0, |_| {});
        assert_eq!(r[0].error, None);
        assert_eq!(r[0].cpu_ms.len(), 2);
        assert!(r[0].cpu_ms.iter().all(|&ms| ms > 0.0), "{:?}", r[0].cpu_ms);
    }
}
