//! The disk chart: the image (what it shares with other images and what is
//! its own), what one sandbox adds and what the VM needs besides the store.

use super::bars::{hbars, lane, BarRow, Lane, Panel, Seg};
use super::legend::{emulated_key, key, Swatch};
use super::style::color;
use super::ChartError;
use crate::report::{emulated, fmt_bytes, label, ordered};
use crate::results::Results;

/// MiB unless everything is under one, then KiB: `(divisor, unit)`.
pub(super) fn byte_unit(max: u64) -> (f64, &'static str) {
    if max >= 1024 * 1024 {
        (1024.0 * 1024.0, "MiB")
    } else {
        (1024.0, "KiB")
    }
}

pub fn disk(results: &Results) -> Result<Option<String>, ChartError> {
    let d = &results.disk;
    let has_image = d.image.bytes > 0;
    if !has_image && d.per_sandbox.is_empty() && d.vm_extra.is_empty() {
        return Ok(None);
    }
    let max = d
        .per_sandbox
        .iter()
        .chain(&d.vm_extra)
        .map(|i| i.bytes)
        .chain([d.image.bytes, d.image.shared_bytes + d.image.unique_bytes])
        .max()
        .unwrap_or(0);
    let (div, unit) = byte_unit(max);
    let mut rows = Vec::new();
    if has_image {
        let shared = d.image.shared_bytes as f64 / div;
        let unique = d.image.unique_bytes as f64 / div;
        rows.push(BarRow {
            label: format!("image {}", d.image.name),
            lanes: vec![Lane {
                segs: vec![
                    Seg {
                        from: 0.0,
                        to: shared,
                        color: color(0),
                        hatched: false,
                    },
                    Seg {
                        from: shared,
                        to: shared + unique,
                        color: color(1),
                        hatched: false,
                    },
                ],
                text: fmt_bytes(d.image.bytes),
            }],
        });
    }
    let items = ordered(results, &d.per_sandbox, |i| &i.subject)
        .into_iter()
        .map(|i| (i, 2))
        .chain(
            ordered(results, &d.vm_extra, |i| &i.subject)
                .into_iter()
                .map(|i| (i, 3)),
        );
    for (item, c) in items {
        rows.push(BarRow {
            label: format!("{}: {}", label(results, &item.subject), item.what),
            lanes: vec![lane(
                item.bytes as f64 / div,
                color(c),
                emulated(results, &item.subject),
                fmt_bytes(item.bytes),
            )],
        });
    }
    let mut keys = Vec::new();
    if has_image {
        keys.push(key(
            Swatch::Box,
            color(0),
            "image: shared with other images",
        ));
        keys.push(key(Swatch::Box, color(1), "image: unique to it"));
    }
    if !d.per_sandbox.is_empty() {
        keys.push(key(Swatch::Box, color(2), "what one sandbox adds"));
    }
    if !d.vm_extra.is_empty() {
        keys.push(key(
            Swatch::Box,
            color(3),
            "what the VM needs besides the store",
        ));
    }
    if d.per_sandbox
        .iter()
        .chain(&d.vm_extra)
        .any(|i| emulated(results, &i.subject))
    {
        keys.push(emulated_key(Swatch::Hatched));
    }
    let panel = Panel {
        x_desc: unit.to_string(),
        rows,
    };
    hbars("Disk", &[panel], &keys).map(Some)
}
