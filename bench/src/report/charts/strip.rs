//! A strip chart: a row per subject with every run a point, its median a
//! tick and its cold start a cross, on a linear or a log axis.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{label_area, tick};
use super::legend::{draw_legend, legend_height, Key};
use super::style::{font, text_px, FONT, GRID, INK, SMALL, TITLE, WIDTH};
use super::ChartError;
use crate::report::fmt_ms;
use crate::results::StartupSeries;

/// A time that can be drawn, on a log axis too.
pub(super) fn positive(v: &f64) -> bool {
    v.is_finite() && *v > 0.0
}

/// What a strip chart shows, a row per subject in subject order.
pub(super) struct Strip<'r> {
    pub(super) title: &'r str,
    pub(super) rows: Vec<&'r StartupSeries>,
    pub(super) labels: Vec<&'r str>,
    pub(super) emulated: Vec<bool>,
    pub(super) colors: Vec<RGBColor>,
    pub(super) cold: Vec<Option<f64>>,
    pub(super) keys: Vec<Key>,
}

const STRIP_ROW: u32 = 46;

pub(super) fn draw_strip<X>(
    s: &Strip,
    x: X,
    x_start: f64,
    x_desc: &str,
) -> Result<String, ChartError>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = s.rows.len();
    let plot_h = n as u32 * STRIP_ROW;
    let upper_h = 50 + plot_h + 50;
    let height = upper_h + legend_height(&s.keys) + 10;
    let label_w = label_area(s.labels.iter().map(|l| l.chars().count()));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, _) = root.split_vertically(upper_h);
        let mut chart = ChartBuilder::on(&upper)
            .margin(10)
            .margin_right(30)
            .caption(s.title, font(TITLE))
            .x_label_area_size(45)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x, -0.5..n as f64 - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .y_label_formatter(&|_| String::new())
            .x_labels(10)
            .x_label_formatter(&|v| tick(*v))
            .x_desc(x_desc)
            .label_style(font(SMALL))
            .axis_desc_style(font(FONT))
            .bold_line_style(GRID)
            .light_line_style(WHITE)
            .draw()?;

        for (i, series) in s.rows.iter().enumerate() {
            // The first subject on top.
            let y = (n - 1 - i) as f64;
            let (c, hollow) = (s.colors[i], s.emulated[i]);
            if i % 2 == 1 {
                let (left, top) = chart.backend_coord(&(x_start, y + 0.5));
                let (_, bottom) = chart.backend_coord(&(x_start, y - 0.5));
                let right = root.dim_in_pixel().0 as i32 - 30;
                root.draw(&Rectangle::new(
                    [(left + 1, top), (right, bottom)],
                    RGBColor(248, 248, 248).filled(),
                ))?;
            }
            for (k, ms) in series.ms.iter().copied().filter(positive).enumerate() {
                // A fixed spread (golden ratio steps) keeps equal runs apart
                // and the chart identical from one rendering to the next.
                let jitter = ((k as f64 * 0.618_034) % 1.0 - 0.5) * 0.5;
                let style = if hollow {
                    c.stroke_width(2)
                } else {
                    c.mix(0.8).filled()
                };
                chart.draw_series(std::iter::once(Circle::new((ms, y + jitter), 4, style)))?;
            }
            let median = series.summary.median;
            if positive(&median) {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(median, y - 0.4), (median, y + 0.4)],
                    INK.stroke_width(3),
                )))?;
            }
            if let Some(cold) = s.cold[i] {
                let at = chart.backend_coord(&(cold, y));
                root.draw(&Cross::new(at, 6, INK.stroke_width(2)))?;
            }
            let (left, mid) = chart.backend_coord(&(x_start, y));
            root.draw(&Text::new(
                s.labels[i].to_string(),
                (left - 8, mid),
                font(FONT).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            if positive(&median) {
                // Above the points, beside the median's tick.
                let (x, _) = chart.backend_coord(&(median, y));
                let text = format!("median {} ms", fmt_ms(median));
                // Left of the tick when it would run off the chart.
                let (x, side) = if x + 5 + text_px(&text) > WIDTH as i32 {
                    (x - 5, HPos::Right)
                } else {
                    (x + 5, HPos::Left)
                };
                root.draw(&Text::new(
                    text,
                    (x, mid - STRIP_ROW as i32 / 2 + 7),
                    font(SMALL).pos(Pos::new(side, VPos::Center)),
                ))?;
            }
        }
        draw_legend(&root, upper_h as i32, &s.keys)?;
        root.present()?;
    }
    Ok(svg)
}
