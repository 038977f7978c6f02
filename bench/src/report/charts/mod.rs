//! SVG charts of the results, drawn with plotters' SVG backend: startup runs,
//! phase breakdown, memory and disk. Emulated subjects are drawn lighter
//! (hollow points, hatched bars) with a legend note wherever they appear.

mod axis;
mod bars;
mod disk;
mod hatch;
mod legend;
mod memory;
mod phases;
mod sharing;
mod startup;
mod strip;
mod style;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::results::Results;
pub use disk::disk;
pub use memory::memory;
pub use phases::phases;
pub use sharing::sharing;
pub use startup::{monitor, startup};
use style::WIDTH;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing the chart: {0}")]
    Draw(String),
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        ChartError::Draw(e.to_string())
    }
}

type Chart = fn(&Results) -> Result<Option<String>, ChartError>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The legend's words for an emulated subject, on every chart that has one.
pub const EMULATED_NOTE: &str = "emulated CPU: not KVM speed";

/// Every chart with data, as `(file name, svg)`. A chart that fails to draw
/// is replaced by a small SVG saying why, so the report still shows the gap.
pub fn all(results: &Results) -> Vec<(String, String)> {
    let charts: [(&str, Chart); 6] = [
        ("startup.svg", startup),
        ("monitor.svg", monitor),
        ("phases.svg", phases),
        ("memory.svg", memory),
        ("disk.svg", disk),
        ("sharing.svg", sharing),
    ];
    charts
        .into_iter()
        .filter_map(|(name, draw)| match draw(results) {
            Ok(Some(svg)) => Some((name.to_string(), svg)),
            Ok(None) => None,
            Err(e) => Some((name.to_string(), placeholder(name, &e))),
        })
        .collect()
}

fn placeholder(name: &str, error: &ChartError) -> String {
    let text = format!("{name} could not be drawn: {error}");
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg width=\"{WIDTH}\" height=\"40\" viewBox=\"0 0 {WIDTH} 40\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n<text x=\"10\" y=\"25\" \
         font-family=\"sans-serif\" font-size=\"13\" fill=\"#B00\">{escaped}</text>\n</svg>\n"
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::sample;

    /// A minimal well-formedness check (no XML parser in the dependency
    /// tree): tags nest and close, attributes are quoted, `&` starts an
    /// entity.
    pub(crate) fn assert_well_formed(name: &str, svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            assert_entities(name, text);
            let close = rest[open..]
                .find('>')
                .unwrap_or_else(|| panic!("{name}: unclosed tag"))
                + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if let Some(end) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .unwrap_or_else(|| panic!("{name}: stray </{end}>"));
                assert_eq!(top, end.trim(), "{name}: </{end}> closes <{top}>");
            } else if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            } else {
                assert_eq!(tag.matches('"').count() % 2, 0, "{name}: <{tag}>");
                assert_entities(name, tag);
                let tag_name = tag
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("");
                assert!(!tag_name.is_empty(), "{name}: empty tag");
                if !tag.ends_with('/') {
                    stack.push(tag_name);
                }
            }
        }
        assert!(stack.is_empty(), "{name}: unclosed {stack:?}");
        assert_entities(name, rest);
    }

    fn assert_entities(name: &str, text: &str) {
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#39;"].contains(&entity),
                "{name}: bare & in {text:?}"
            );
        }
    }

    #[test]
    fn every_chart_is_well_formed_and_names_its_subjects_by_label() {
        let r = sample();
        let charts = all(&r);
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        // No monitor series in the sample: no monitor chart.
        assert_eq!(
            names,
            [
                "startup.svg",
                "phases.svg",
                "memory.svg",
                "disk.svg",
                "sharing.svg"
            ]
        );
        for (name, svg) in &charts {
            assert!(svg.starts_with("<svg"), "{name}");
            assert!(svg.trim_end().ends_with("</svg>"), "{name}");
            assert!(!svg.contains("could not be drawn"), "{name}: {svg}");
            assert_well_formed(name, svg);
        }
        let svg = |n: &str| &charts.iter().find(|(name, _)| name == n).unwrap().1;
        for name in ["startup.svg", "phases.svg", "memory.svg"] {
            for l in ["isola container", "vm (qemu-tcg: emulated, not KVM speed)"] {
                assert!(svg(name).contains(l), "{name} lacks {l}");
            }
            assert!(svg(name).contains(EMULATED_NOTE), "{name}");
        }
        assert!(svg("startup.svg").contains("crun 1.8.1"));
        assert!(svg("disk.svg").contains("isola container: upper dir and scratch"));
        assert!(svg("disk.svg").contains("image isola/busybox"));
        assert!(svg("sharing.svg").contains("4 images"));
    }

    #[test]
    fn an_empty_dimension_has_no_chart() {
        let mut r = sample();
        r.startup.warm.clear();
        r.startup.phases.clear();
        r.memory.clear();
        r.disk.sharing.clear();
        let names: Vec<String> = all(&r).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["disk.svg"]);
    }
}
