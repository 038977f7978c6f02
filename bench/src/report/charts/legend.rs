//! The legend under a chart: keys (a swatch and its words) flowed into
//! lines that fit the chart's width.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::hatch::hatch;
use super::style::{font, lighter, text_px, FONT, NEUTRAL, WIDTH};
use super::{Area, ChartError, EMULATED_NOTE};

#[derive(Clone, Copy)]
pub(super) enum Swatch {
    Box,
    Hatched,
    Dot,
    Hollow,
    Tick,
    Cross,
}

pub(super) struct Key {
    swatch: Swatch,
    color: RGBColor,
    text: String,
}

pub(super) fn key(swatch: Swatch, color: RGBColor, text: impl Into<String>) -> Key {
    Key {
        swatch,
        color,
        text: text.into(),
    }
}

pub(super) fn emulated_key(swatch: Swatch) -> Key {
    let how = match swatch {
        Swatch::Hollow => "hollow",
        _ => "hatched, lighter",
    };
    key(swatch, NEUTRAL, format!("{how}: {EMULATED_NOTE}"))
}

const LEGEND_LINE: i32 = 22;

/// Keys flowed into lines that fit the width.
fn legend_lines(keys: &[Key]) -> Vec<Vec<&Key>> {
    let mut lines: Vec<Vec<&Key>> = Vec::new();
    let mut used = 0;
    for k in keys {
        let w = 26 + text_px(&k.text) + 20;
        if lines.is_empty() || used + w > WIDTH as i32 - 40 {
            lines.push(Vec::new());
            used = 0;
        }
        used += w;
        if let Some(line) = lines.last_mut() {
            line.push(k);
        }
    }
    lines
}

pub(super) fn legend_height(keys: &[Key]) -> u32 {
    let lines = legend_lines(keys).len() as u32;
    if lines == 0 {
        0
    } else {
        lines * LEGEND_LINE as u32 + 12
    }
}

pub(super) fn draw_legend(root: &Area, top: i32, keys: &[Key]) -> Result<(), ChartError> {
    for (n, line) in legend_lines(keys).into_iter().enumerate() {
        let y = top + 6 + n as i32 * LEGEND_LINE + LEGEND_LINE / 2;
        let mut x = 20;
        for k in line {
            draw_swatch(root, (x, y), k.swatch, k.color)?;
            root.draw(&Text::new(
                k.text.clone(),
                (x + 22, y),
                font(FONT).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
            x += 26 + text_px(&k.text) + 20;
        }
    }
    Ok(())
}

fn draw_swatch(
    root: &Area,
    (x, y): (i32, i32),
    swatch: Swatch,
    c: RGBColor,
) -> Result<(), ChartError> {
    match swatch {
        Swatch::Box => root.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()))?,
        Swatch::Hatched => {
            root.draw(&Rectangle::new(
                [(x, y - 6), (x + 14, y + 6)],
                lighter(c).filled(),
            ))?;
            hatch(root, (x, y - 6), (x + 14, y + 6), c)?;
        }
        Swatch::Dot => root.draw(&Circle::new((x + 7, y), 4, c.filled()))?,
        Swatch::Hollow => root.draw(&Circle::new((x + 7, y), 4, c.stroke_width(2)))?,
        Swatch::Tick => root.draw(&PathElement::new(
            vec![(x + 7, y - 8), (x + 7, y + 8)],
            c.stroke_width(3),
        ))?,
        Swatch::Cross => root.draw(&Cross::new((x + 7, y), 5, c.stroke_width(2)))?,
    }
    Ok(())
}
