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

/// One way of starting a sandbox: a command line run to completion.
#[derive(Debug, Clone)]
pub struct Contender {
    pub name: String,
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Result {
    pub name: String,
    /// Wall time of each run, milliseconds, in run order.
    pub ms: Vec<f64>,
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

/// Run each contender `warmup` times, then `runs` times interleaved. A
/// contender whose first run fails is dropped with its error; `progress`
/// is called after each round.
pub fn measure(
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
            peak_rss_kib: None,
            error: None,
        })
        .collect();
    for round in 0..warmup + runs {
        for (c, r) in contenders.iter().zip(results.iter_mut()) {
            if r.error.is_some() {
                continue;
            }
            match run_once(&c.argv) {
                Ok(ms) if round >= warmup => r.ms.push(ms),
                Ok(_) => {}
                Err(e) => r.error = Some(e),
            }
        }
        if round >= warmup {
            progress(round - warmup + 1);
        }
    }
    for (c, r) in contenders
        .iter()
        .zip(results.iter_mut())
        .filter(|(_, r)| r.error.is_none())
    {
        r.peak_rss_kib = peak_rss(&c.argv, 5);
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

fn run_once(argv: &[String]) -> std::result::Result<f64, String> {
    let t = Instant::now();
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("exited non-zero")
            .to_string());
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_ratio() {
        let a = Result {
            name: "a".into(),
            ms: vec![4.0, 2.0, 6.0],
            peak_rss_kib: None,
            error: None,
        };
        let b = Result {
            name: "b".into(),
            ms: vec![2.0, 2.0, 2.0],
            peak_rss_kib: None,
            error: None,
        };
        let s = a.summary().unwrap();
        assert_eq!((s.min, s.median, s.max), (2.0, 4.0, 6.0));
        assert_eq!(paired_ratio(&a, &b), Some(2.0));
    }

    #[test]
    fn a_failing_contender_keeps_its_error() {
        let c = Contender {
            name: "false".into(),
            argv: vec!["sh".into(), "-c".into(), "echo nope >&2; exit 3".into()],
        };
        let r = measure(&[c], 3, 0, |_| {});
        assert_eq!(r[0].error.as_deref(), Some("nope"));
        assert!(r[0].ms.is_empty());
    }
}
