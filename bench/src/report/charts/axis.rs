//! The axes' share of a chart: tick labels as people read them, and the
//! room the row labels take on the left.

use super::style::CHAR_PX;

pub(super) fn tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(super) fn label_area(labels: impl Iterator<Item = usize>) -> u32 {
    let widest = labels.max().unwrap_or(0) as f64 * CHAR_PX;
    (widest + 24.0).clamp(80.0, 460.0) as u32
}
