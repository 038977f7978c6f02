//! The report as a browser shows it: report.html written from the sample
//! results and rendered by headless Chromium must not come out blank, and
//! its charts must show, in colour.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use common::browser::{hues, screenshot, CHROMIUM};
use isola_test_support::host_has;

#[test]
fn report_html_renders_in_headless_chromium() {
    if !host_has(
        &format!("{CHROMIUM} (scripts/setup installs it)"),
        Path::new(CHROMIUM).exists(),
    ) {
        return;
    }
    let sample = common::sample();
    let dir = tempfile::tempdir().unwrap();
    let written = isola_bench::report::write(&dir.path().join("report"), &sample).unwrap();
    let html = written.iter().find(|p| p.ends_with("report.html")).unwrap();
    // The same page without its charts: what the page alone draws in
    // colour (links, the emulated warning), to tell the charts' part.
    let bare = dir.path().join("bare.html");
    std::fs::write(&bare, isola_bench::report::html::render(&sample, &[])).unwrap();

    let started = Instant::now();
    let page = screenshot(html, &dir.path().join("page.png"), started);
    let control = screenshot(&bare, &dir.path().join("bare.png"), started);
    eprintln!("two screenshots in {:?}", started.elapsed());

    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for p in &page {
        *counts.entry(*p).or_insert(0) += 1;
    }
    let (background, bg_count) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(c, n)| (*c, *n))
        .unwrap();
    let drawn = (page.len() - bg_count) as f64 / page.len() as f64;
    assert_eq!(
        background,
        [255, 255, 255],
        "the page background is not white"
    );
    assert!(
        drawn > 0.04,
        "the page is almost blank: {:.2}% drawn",
        drawn * 100.0
    );
    assert!(counts.len() > 50, "only {} colours", counts.len());

    let (page_hues, control_hues) = (hues(&page), hues(&control));
    let extra: Vec<_> = page_hues
        .iter()
        .filter(|(h, _)| !control_hues.iter().any(|(c, _)| c == h))
        .collect();
    eprintln!(
        "{:.1}% drawn, {} colours; hues of 300+ pixels: page {page_hues:?}, without charts \
         {control_hues:?}",
        drawn * 100.0,
        counts.len(),
    );
    assert!(
        extra.len() >= 3,
        "the charts did not render in colour: hues {page_hues:?}, without charts {control_hues:?}"
    );
}
