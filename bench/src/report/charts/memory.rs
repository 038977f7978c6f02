//! The memory chart: what one idle sandbox costs by each measure that
//! applies to it (host PSS, cgroup charge, VMM resident set, guest memory).

use super::bars::{hbars, lane, BarRow, Panel};
use super::legend::{emulated_key, key, Key, Swatch};
use super::style::color;
use super::ChartError;
use crate::report::{emulated, fmt_mib_of_kib, label, ordered};
use crate::results::Results;

pub fn memory(results: &Results) -> Result<Option<String>, ChartError> {
    if results.memory.is_empty() {
        return Ok(None);
    }
    const METRICS: [&str; 4] = [
        "host PSS (what the host pays)",
        "cgroup charge",
        "VMM resident set",
        "guest memory touched",
    ];
    let mut used = [false; 4];
    let rows = ordered(results, &results.memory, |m| &m.subject)
        .into_iter()
        .map(|m| {
            let hatched = emulated(results, &m.subject);
            let figures = [
                Some(m.host_pss_kib),
                m.cgroup_kib,
                m.vmm_rss_kib,
                m.guest_touched_kib,
            ];
            let lanes = figures
                .iter()
                .enumerate()
                .filter_map(|(i, kib)| {
                    let kib = (*kib)?;
                    used[i] = true;
                    Some(lane(
                        kib as f64 / 1024.0,
                        color(i),
                        hatched,
                        format!("{} MiB", fmt_mib_of_kib(kib)),
                    ))
                })
                .collect();
            BarRow {
                label: label(results, &m.subject).to_string(),
                lanes,
            }
        })
        .collect::<Vec<_>>();
    let mut keys: Vec<Key> = METRICS
        .iter()
        .enumerate()
        .filter(|(i, _)| used[*i])
        .map(|(i, m)| key(Swatch::Box, color(i), *m))
        .collect();
    if results.memory.iter().any(|m| emulated(results, &m.subject)) {
        keys.push(emulated_key(Swatch::Hatched));
    }
    let panel = Panel {
        x_desc: "MiB".to_string(),
        rows,
    };
    hbars("Memory of one idle sandbox", &[panel], &keys).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::EMULATED_NOTE;
    use crate::report::sample;

    #[test]
    fn an_emulated_subject_is_never_drawn_like_a_real_one() {
        let mut r = sample();
        let svg = memory(&r).unwrap().unwrap();
        assert!(svg.contains(EMULATED_NOTE));
        for s in &mut r.subjects {
            s.emulated = false;
        }
        let svg = memory(&r).unwrap().unwrap();
        assert!(!svg.contains(EMULATED_NOTE));
    }
}
