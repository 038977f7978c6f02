//! The sharing chart: what the store holds against the images' sizes added
//! up, for N images sharing one base layer.

use super::bars::{hbars, lane, BarRow, Panel};
use super::disk::byte_unit;
use super::legend::{key, Swatch};
use super::style::color;
use super::ChartError;
use crate::report::fmt_bytes;
use crate::results::Results;

pub fn sharing(results: &Results) -> Result<Option<String>, ChartError> {
    let sharing = &results.disk.sharing;
    if sharing.is_empty() {
        return Ok(None);
    }
    let max = sharing
        .iter()
        .map(|s| s.store_bytes.max(s.sum_of_images_bytes))
        .max()
        .unwrap_or(0);
    let (div, unit) = byte_unit(max);
    let rows = sharing
        .iter()
        .map(|s| BarRow {
            label: format!("{} image{}", s.images, if s.images == 1 { "" } else { "s" }),
            lanes: vec![
                lane(
                    s.store_bytes as f64 / div,
                    color(0),
                    false,
                    fmt_bytes(s.store_bytes),
                ),
                lane(
                    s.sum_of_images_bytes as f64 / div,
                    color(7),
                    false,
                    fmt_bytes(s.sum_of_images_bytes),
                ),
            ],
        })
        .collect();
    let keys = [
        key(Swatch::Box, color(0), "what the store holds"),
        key(
            Swatch::Box,
            color(7),
            "the images' sizes added up (unshared)",
        ),
    ];
    let panel = Panel {
        x_desc: unit.to_string(),
        rows,
    };
    hbars("N images sharing one base layer", &[panel], &keys).map(Some)
}
