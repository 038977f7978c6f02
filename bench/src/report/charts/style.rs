//! What every chart looks like: its width, fonts, palette and ink, and how
//! wide a label is taken to be.

use plotters::prelude::*;

pub(super) const WIDTH: u32 = 960;
/// plotters' SVG backend writes `font-size` as size / 1.24: these are about
/// 13 px, 11 px and 18 px on the page.
pub(super) const FONT: f64 = 16.0;
pub(super) const SMALL: f64 = 14.0;
pub(super) const TITLE: f64 = 22.0;
/// A sans-serif character at 13 px is about this wide; labels are laid out
/// with it since no font metrics are at hand.
pub(super) const CHAR_PX: f64 = 7.0;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
pub(super) const INK: RGBColor = RGBColor(40, 40, 40);
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);
/// The legend's emulated swatch: no data colour, it stands for all of them.
pub(super) const NEUTRAL: RGBColor = RGBColor(110, 110, 110);

pub(super) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(super) fn lighter(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * 0.6).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

pub(super) fn font(size: f64) -> TextStyle<'static> {
    (FontFamily::SansSerif, size).into_font().color(&INK)
}

pub(super) fn text_px(text: &str) -> i32 {
    (text.chars().count() as f64 * CHAR_PX).ceil() as i32
}
