//! Timing contenders run by run and the table of their figures: what
//! `isola bench startup` and `isola bench monitor` share.

use std::io::Write;

use anyhow::Result;
use isola_bench::startup::{self, Contender};

pub(super) fn measure(
    contenders: &[Contender],
    runs: usize,
    warmup: usize,
) -> Vec<startup::Result> {
    eprintln!(
        "measuring {} contender(s), {runs} runs each after {warmup} warm-up...",
        contenders.len(),
    );
    let results = startup::measure(contenders, runs, warmup, |done| {
        eprint!("\r  {done}/{runs}");
        let _ = std::io::stderr().flush();
    });
    eprintln!();
    results
}

/// The table on stderr (JSON on stdout with `json`), each contender's
/// median paired ratio to the one whose name starts with `reference`.
pub(super) fn print_results(
    results: &[startup::Result],
    reference: &str,
    ratio_header: &str,
    json: bool,
) -> Result<()> {
    let base = results
        .iter()
        .find(|r| r.name.starts_with(reference) && r.error.is_none());
    let mut rows = Vec::new();
    for r in results {
        if let Some(s) = r.summary() {
            rows.push(vec![
                r.name.clone(),
                format!("{:.2}", s.min),
                format!("{:.2}", s.median),
                format!("{:.2}", s.p90),
                format!("{:.2}", s.max),
                startup::median(&r.cpu_ms)
                    .map(|ms| format!("{ms:.2}"))
                    .unwrap_or_else(|| "-".into()),
                r.peak_rss_kib
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))
                    .unwrap_or_else(|| "-".into()),
                base.and_then(|b| startup::paired_ratio(r, b))
                    .map(|x| format!("{x:.2}x"))
                    .unwrap_or_default(),
            ]);
        }
    }
    if json {
        crate::output::json(&results)?;
    }
    crate::output::table_to(
        &mut std::io::stderr(),
        &[
            "CONTENDER",
            "MIN ms",
            "MEDIAN ms",
            "P90 ms",
            "MAX ms",
            "CPU ms",
            "PEAK RSS MiB",
            ratio_header,
        ],
        &rows,
    );
    for r in results.iter().filter(|r| r.error.is_some()) {
        eprintln!(
            "{} did not run: {}",
            r.name,
            r.error.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}
