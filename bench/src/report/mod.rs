//! The report of a benchmark run: titled tables (the same text in the
//! terminal and the page), SVG charts and one self-contained HTML page,
//! written next to the results.json they come from.

pub mod charts;
pub mod html;
pub mod tables;

use std::io;
use std::path::{Path, PathBuf};

use crate::results::{Results, Subject};

/// Writes `results.json`, every chart and `report.html` into `dir`
/// (created if need be) and returns their paths in that order.
pub fn write(dir: &Path, results: &Results) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();

    let mut json = serde_json::to_string_pretty(results).map_err(io::Error::other)?;
    json.push('\n');
    written.push(write_file(dir, "results.json", &json)?);

    let charts = charts::all(results);
    for (name, svg) in &charts {
        written.push(write_file(dir, name, svg)?);
    }
    written.push(write_file(
        dir,
        "report.html",
        &html::render(results, &charts),
    )?);
    Ok(written)
}

fn write_file(dir: &Path, name: &str, contents: &str) -> io::Result<PathBuf> {
    // A chart's name becomes a path: never let one climb out of `dir`.
    if Path::new(name).file_name() != Some(name.as_ref()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("report file name {name:?} is not a plain file name"),
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, contents)?;
    Ok(path)
}

pub(crate) fn subject<'a>(results: &'a Results, id: &str) -> Option<&'a Subject> {
    results.subjects.iter().find(|s| s.id == id)
}

/// What a subject is called in every table and chart. An id the subject
/// list does not know (a peer that never started) is shown as is.
pub(crate) fn label<'a>(results: &'a Results, id: &'a str) -> &'a str {
    subject(results, id).map_or(id, |s| s.label.as_str())
}

pub(crate) fn emulated(results: &Results, id: &str) -> bool {
    subject(results, id).is_some_and(|s| s.emulated)
}

/// Position in `results.subjects`, which is the order everything is shown
/// in; unknown ids go last, in the order they came.
pub(crate) fn rank(results: &Results, id: &str) -> usize {
    results
        .subjects
        .iter()
        .position(|s| s.id == id)
        .unwrap_or(usize::MAX)
}

/// `items` in subject order (a stable sort: equal ranks keep their order).
pub(crate) fn ordered<'a, T>(
    results: &Results,
    items: &'a [T],
    id: impl Fn(&T) -> &str,
) -> Vec<&'a T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_key(|t| rank(results, id(t)));
    v
}

pub(crate) fn fmt_ms(ms: f64) -> String {
    format!("{ms:.2}")
}

pub(crate) fn fmt_mib_of_kib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

pub(crate) fn fmt_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

/// A ratio with two decimals; below 0.1 with two significant digits, so
/// that a small one (isola's builds against buildah's) is not shown as
/// "0.00x".
pub fn fmt_ratio(ratio: f64) -> String {
    if !(ratio > 0.0 && ratio < 0.095) {
        return format!("{ratio:.2}x");
    }
    let decimals = (1.0 - ratio.log10().floor()) as usize;
    let text = format!("{ratio:.decimals$}");
    let trimmed = text.trim_end_matches('0');
    let keep = trimmed.len().max("0.00".len());
    format!("{}x", &text[..keep])
}

/// A rate as people read it: whole numbers with thousands separators when
/// large, two decimals when small.
pub(crate) fn fmt_rate(rate: f64) -> String {
    if !rate.is_finite() {
        return rate.to_string();
    }
    if rate.abs() < 100.0 {
        return format!("{rate:.2}");
    }
    let digits = format!("{:.0}", rate.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if rate < 0.0 {
        out.insert(0, '-');
    }
    out
}

pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

#[cfg(test)]
use crate::results;

// One sample shared with the integration tests (bench/tests/common), so the
// page the browser renders there is the one these tests check.
#[cfg(test)]
#[path = "../../tests/common/sample.rs"]
mod sample_data;

#[cfg(test)]
pub(crate) use sample_data::sample;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_human() {
        assert_eq!(fmt_ms(5.349), "5.35");
        assert_eq!(fmt_mib_of_kib(2_764), "2.7");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(12_288), "12.0 KiB");
        assert_eq!(fmt_bytes(4_400_000), "4.2 MiB");
        assert_eq!(fmt_rate(1_234_567.4), "1,234,567");
        assert_eq!(fmt_rate(999.6), "1,000");
        assert_eq!(fmt_rate(3.456), "3.46");
        for (ratio, shown) in [
            (1.234, "1.23x"),
            (0.1, "0.10x"),
            (0.08, "0.08x"),
            (0.0736, "0.074x"),
            (0.00736, "0.0074x"),
            (0.0036, "0.0036x"),
            (0.0, "0.00x"),
            (f64::NAN, "NaNx"),
        ] {
            assert_eq!(fmt_ratio(ratio), shown, "{ratio}");
        }
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn write_puts_every_file_in_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report");
        let paths = write(&out, &sample()).unwrap();
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("results.json"));
        assert_eq!(names.last().map(String::as_str), Some("report.html"));
        assert!(names.iter().any(|n| n == "startup.svg"), "{names:?}");
        for p in &paths {
            assert!(p.starts_with(&out) && p.is_file(), "{}", p.display());
        }
        let back: Results =
            serde_json::from_str(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
        assert_eq!(back.subjects, sample().subjects);
    }

    #[test]
    fn a_chart_name_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_file(dir.path(), "../x.svg", "").is_err());
        assert!(write_file(dir.path(), "x.svg", "").is_ok());
    }
}
