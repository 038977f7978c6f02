//! Hatching, the mark of an emulated subject's bar: 45° lines across a
//! rectangle, kept inside it.

use plotters::prelude::*;

use super::{Area, ChartError};

pub(super) fn hatch(
    root: &Area,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    c: RGBColor,
) -> Result<(), ChartError> {
    let (left, right) = (x0.min(x1), x0.max(x1));
    let (top, bottom) = (y0.min(y1), y0.max(y1));
    let h = bottom - top;
    if right - left < 2 || h < 2 {
        return Ok(());
    }
    let mut t = left - h;
    while t < right {
        // The line from (t, bottom) to (t + h, top), clipped to the sides.
        let (mut ax, mut ay) = (t, bottom);
        let (mut bx, mut by) = (t + h, top);
        if ax < left {
            ay -= left - ax;
            ax = left;
        }
        if bx > right {
            by += bx - right;
            bx = right;
        }
        if ax < bx {
            root.draw(&PathElement::new(
                vec![(ax, ay), (bx, by)],
                c.stroke_width(1),
            ))?;
        }
        t += 6;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::charts::style::INK;

    #[test]
    fn hatching_stays_inside_its_rectangle() {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (100, 100)).into_drawing_area();
            hatch(&root, (10, 20), (60, 40), INK).unwrap();
            root.present().unwrap();
        }
        assert!(svg.contains("polyline"), "{svg}");
        for line in svg.lines().filter(|l| l.contains("points=")) {
            let start = line.find("points=\"").unwrap() + 8;
            let end = line[start..].find('"').unwrap() + start;
            for pair in line[start..end].split_whitespace() {
                let (x, y) = pair.split_once(',').unwrap();
                let (x, y): (i32, i32) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((10..=60).contains(&x) && (20..=40).contains(&y), "{pair}");
            }
        }
    }
}
