//! The phases chart: each backend's startup phases (medians) as one stacked
//! bar, on an axis of its own.

use super::bars::{hbars, BarRow, Lane, Panel, Seg};
use super::legend::{emulated_key, key, Key, Swatch};
use super::style::color;
use super::ChartError;
use crate::report::{emulated, fmt_ms, label, ordered};
use crate::results::Results;

pub fn phases(results: &Results) -> Result<Option<String>, ChartError> {
    let all = ordered(results, &results.startup.phases, |p| &p.subject);
    let all: Vec<_> = all.into_iter().filter(|p| !p.at_ms.is_empty()).collect();
    if all.is_empty() {
        return Ok(None);
    }
    // One colour per phase name, the same in every backend's bar.
    let mut names: Vec<&str> = Vec::new();
    for p in &all {
        for (name, _) in &p.at_ms {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let any_emulated = all.iter().any(|p| emulated(results, &p.subject));
    // Each backend gets its own axis: a VM's boot next to a container's
    // few milliseconds would leave the container's phases invisible.
    let panels = all
        .iter()
        .map(|p| {
            let hatched = emulated(results, &p.subject);
            let mut previous = 0.0;
            let segs = p
                .at_ms
                .iter()
                .map(|(name, at)| {
                    let from = previous;
                    previous = at.max(previous);
                    Seg {
                        from,
                        to: previous,
                        color: color(names.iter().position(|n| n == name).unwrap_or(0)),
                        hatched,
                    }
                })
                .collect();
            Panel {
                x_desc: "milliseconds since the backend's start".to_string(),
                rows: vec![BarRow {
                    label: label(results, &p.subject).to_string(),
                    lanes: vec![Lane {
                        segs,
                        text: format!("{} ms", fmt_ms(previous)),
                    }],
                }],
            }
        })
        .collect::<Vec<_>>();
    let mut keys: Vec<Key> = names
        .iter()
        .enumerate()
        .map(|(i, n)| key(Swatch::Box, color(i), *n))
        .collect();
    if any_emulated {
        keys.push(emulated_key(Swatch::Hatched));
    }
    hbars("Startup phases (median), per isola backend", &panels, &keys).map(Some)
}
