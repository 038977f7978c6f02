//! The startup charts: every warm run of each subject with its cold start
//! beside it, and every boot of the monitor's test guest.

use plotters::prelude::*;

use super::legend::{emulated_key, key, Swatch};
use super::strip::{draw_strip, positive, Strip};
use super::style::{color, INK, NEUTRAL};
use super::ChartError;
use crate::report::{emulated, label, ordered, rank};
use crate::results::{ColdStart, Results, StartupSeries};

pub fn startup(results: &Results) -> Result<Option<String>, ChartError> {
    strip(
        "Warm startup, every run (start to exit of /bin/true)",
        results,
        &results.startup.warm,
        &results.startup.cold,
    )
}

pub fn monitor(results: &Results) -> Result<Option<String>, ChartError> {
    strip(
        "Monitor: the test guest booted to its exit, every run",
        results,
        &results.startup.monitor,
        &[],
    )
}

fn strip(
    title: &str,
    results: &Results,
    series: &[StartupSeries],
    cold: &[ColdStart],
) -> Result<Option<String>, ChartError> {
    let rows: Vec<&StartupSeries> = ordered(results, series, |s| &s.subject)
        .into_iter()
        .filter(|s| s.ms.iter().any(positive))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let cold: Vec<Option<f64>> = rows
        .iter()
        .map(|s| {
            cold.iter()
                .find(|c| c.subject == s.subject)
                .map(|c| c.ms)
                .filter(positive)
        })
        .collect();
    let values = || {
        rows.iter()
            .flat_map(|s| s.ms.iter().copied())
            .chain(cold.iter().flatten().copied())
            .filter(positive)
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);

    let emulated: Vec<bool> = rows.iter().map(|s| emulated(results, &s.subject)).collect();
    let mut keys = vec![
        key(Swatch::Dot, NEUTRAL, "one run"),
        key(Swatch::Tick, INK, "median"),
    ];
    if cold.iter().any(Option::is_some) {
        keys.push(key(Swatch::Cross, INK, "cold: first run after the import"));
    }
    if emulated.contains(&true) {
        keys.push(emulated_key(Swatch::Hollow));
    }
    let s = Strip {
        title,
        labels: rows.iter().map(|s| label(results, &s.subject)).collect(),
        colors: rows
            .iter()
            .map(|s| color(rank(results, &s.subject)))
            .collect(),
        rows,
        emulated,
        cold,
        keys,
    };

    // Runs that span more than a decade (a container next to a VM) only
    // read on a log axis; a narrow spread reads better on a linear one.
    if hi / lo > 20.0 {
        draw_strip(
            &s,
            (lo / 1.4..hi * 1.4).log_scale(),
            lo / 1.4,
            "milliseconds (log scale)",
        )
    } else {
        draw_strip(&s, 0.0..hi * 1.1, 0.0, "milliseconds")
    }
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::tests::assert_well_formed;
    use crate::report::sample;

    #[test]
    fn a_narrow_spread_gets_a_linear_axis() {
        let mut r = sample();
        r.startup.warm.retain(|s| s.subject != "vm");
        r.startup.cold.retain(|c| c.subject != "vm");
        let svg = startup(&r).unwrap().unwrap();
        assert!(!svg.contains("log scale"));
        assert_well_formed("startup.svg", &svg);
        let wide = startup(&sample()).unwrap().unwrap();
        assert!(wide.contains("log scale"));
    }
}
